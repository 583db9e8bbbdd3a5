"""Training throughput (images/s) of our loop (training.loop.train with the DDPM task) against a plain
diffusers train_unconditional-style loop, and the fraction of the CPU's matmul peak that training reaches.

    .venv/bin/python -m bench.bench_training [--rounds 3] [--steps 10] [--batch-size 64] [--threads 2]
        [--block-out-channels 32,64,64 --layers-per-block 2 --attention-levels 2] [--precisions no,bf16]

Both loops train the same UNet2DModel (ε-prediction, 1,000 linear-β steps) on the same MNIST batch size, with
AdamW, gradient clipping at 1.0, a cosine LR schedule and EMA (diffusers' EMAModel) — the features
train_unconditional.py has with --use_ema; the plain one uses diffusers' DDPMScheduler.add_noise, plain
``torch.autocast`` for bf16 and no Accelerate. Per precision and round, the two run interleaved (rotating who
goes first); each times ``steps`` steps one by one after ``steps`` warm-up steps and keeps the fastest (as timeit does: the
machine is shared, and slower steps measure the neighbours); the ratio is the median of the per-round ratios. Headline:
``training throughput ratio ours/plain: X`` (goal >= 1.0). Peak: a 2048³ matmul in fp32 and bf16 (best of each round's); training
FLOPs per image (forward + backward) by torch.utils.flop_counter.FlopCounterMode.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its thread pool

import torch
import torch.nn.functional as F
from accelerate.state import AcceleratorState
from diffusers import DDPMScheduler as DiffusersDDPMScheduler
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.utils.flop_counter import FlopCounterMode

from training.config import DDPMTrainConfig
from training.loop import train
from training.train_ddpm import DDPMTask, build_unet

DTYPES = {"no": torch.float32, "bf16": torch.bfloat16}


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """Best-of-``repeats`` FLOP/s of an n×n by n×n matmul (2n³ FLOPs)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def training_flops_per_image(cfg: DDPMTrainConfig, batch: int = 8) -> float:
    """FLOPs of one forward + backward of the UNet per image (FlopCounterMode counts matmuls and convolutions)."""
    unet = build_unet(cfg, 28, 1)
    x, t = torch.randn(batch, 1, 28, 28), torch.randint(0, 1000, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.mse_loss(unet(x, t).sample, x).backward()
    return counter.get_total_flops() / batch


def ours(task: DDPMTask, cfg: DDPMTrainConfig, steps: int) -> float:
    """Best per-step images/s of training.loop.train over the second half of 2·steps steps (its own metrics log)."""
    AcceleratorState._reset_state(True)  # a fresh Accelerator per run, whatever precision came before
    with tempfile.TemporaryDirectory() as tmp:
        task.config = dataclasses.replace(cfg, output_dir=tmp, max_steps=2 * steps, log_every=1)
        train(task)
        records = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    return max(r["images_per_s"] for r in records if r.get("step", 0) > steps and "images_per_s" in r)


def plain(images: torch.Tensor, cfg: DDPMTrainConfig, steps: int) -> float:
    """Best per-step images/s of a train_unconditional-style loop (no Accelerate) over ``steps`` after ``steps`` warm-up."""
    torch.manual_seed(cfg.seed)
    unet = build_unet(cfg, 28, 1)
    noise_scheduler = DiffusersDDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule
    )
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    lr_scheduler = get_scheduler(
        cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps, num_training_steps=2 * steps
    )
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay)
    unet.train()
    rates = []
    for _step in range(2 * steps):
        start = time.perf_counter()
        clean = images[torch.randint(0, len(images), (cfg.batch_size,))] * 2 - 1
        noise = torch.randn(clean.shape)
        timesteps = torch.randint(0, cfg.num_train_timesteps, (cfg.batch_size,))
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.mixed_precision == "bf16"):
            loss = F.mse_loss(unet(noisy, timesteps).sample.float(), noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(unet.parameters())
        loss.item()  # as the loop's progress bar does
        rates.append(cfg.batch_size / (time.perf_counter() - start))
    return max(rates[steps:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--block-out-channels", default="32,64,64")
    parser.add_argument("--layers-per-block", type=int, default=2)
    parser.add_argument("--attention-levels", default="2")
    parser.add_argument("--precisions", default="no,bf16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ints = lambda text: tuple(int(v) for v in text.split(",") if v)
    base = DDPMTrainConfig(
        data="mnist",
        batch_size=args.batch_size,
        block_out_channels=ints(args.block_out_channels),
        layers_per_block=args.layers_per_block,
        attention_levels=ints(args.attention_levels),
        sample_every=0,
        checkpoint_every=10**9,
        keep_checkpoints=1,
        lr_warmup_steps=2,
        ema_decay=0.999,
        num_threads=args.threads,
    )
    task = DDPMTask(base)
    images = task.data.images
    flops = training_flops_per_image(base)
    print(
        f"threads {args.threads}, batch {args.batch_size}, UNet {args.block_out_channels} x{args.layers_per_block} "
        f"attn {args.attention_levels}: {flops / 1e9:.3f} GFLOP per training image (forward + backward)"
    )
    ratios = {}
    for precision in args.precisions.split(","):
        cfg = dataclasses.replace(base, mixed_precision=precision)
        peak, results = 0.0, {"ours": [], "plain": []}
        for r in range(args.rounds):
            peak = max(peak, matmul_peak(DTYPES[precision]))  # the best over rounds: the machine is shared
            order = ("ours", "plain") if r % 2 == 0 else ("plain", "ours")
            for name in order:
                results[name].append(ours(task, cfg, args.steps) if name == "ours" else plain(images, cfg, args.steps))
            o, p = results["ours"][-1], results["plain"][-1]
            print(f"  [{precision}] round {r}: ours {o:.1f} img/s, plain {p:.1f} img/s, ratio {o / p:.3f}", flush=True)
        med = {k: statistics.median(v) for k, v in results.items()}
        ratios[precision] = statistics.median(o / p for o, p in zip(results["ours"], results["plain"]))
        print(
            f"[{precision}] median images/s: ours {med['ours']:.1f}, plain {med['plain']:.1f}; median ratio {ratios[precision]:.3f}"
        )
        print(
            f"[{precision}] matmul peak {peak / 1e9:.1f} GFLOP/s; training reaches ours {med['ours'] * flops / 1e9:.1f} GFLOP/s "
            f"= {med['ours'] * flops / peak:.1%} of peak (plain {med['plain'] * flops / peak:.1%})"
        )
    first = args.precisions.split(",")[0]
    print(
        f"training throughput ratio ours/plain: {ratios[first]:.3f}  ({first}; "
        + ", ".join(f"{p}: {v:.3f}" for p, v in ratios.items())
        + ")"
    )


if __name__ == "__main__":
    main()
