"""Does torch.compile speed up a training step? The same UNet2DModel trained eagerly and compiled, one step at a
time, interleaved in one run, on the process's CPU time (user + sys: neighbours on the machine count less).

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_compile [--space latent] [--block-out-channels 64]
        [--attention-levels ""] [--batch-size 128] [--rounds 3] [--steps 20]

Prints the compile time (the first compiled step) and the median CPU-seconds per step of each, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its thread pool

import torch
import torch.nn.functional as F

from training.config import DDPMTrainConfig
from training.train_ddpm import build_unet

SHAPES = {"latent": (4, 7), "pixel": (1, 28)}  # (channels, size) of what the UNet denoises


def stepper(config: DDPMTrainConfig, space: str, batch_size: int, compiled: bool):
    """One optimizer step of ε-prediction MSE on a fixed batch, and how long the first one took (CPU-s)."""
    channels, size = SHAPES[space]
    torch.manual_seed(0)
    unet = build_unet(config, size, channels)
    optimizer = torch.optim.AdamW(unet.parameters(), 1e-3)
    forward = torch.compile(unet) if compiled else unet
    x, t = torch.randn(batch_size, channels, size, size), torch.randint(0, 1000, (batch_size,))

    def step() -> float:
        start = time.process_time()
        F.mse_loss(forward(x, t).sample, x).backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.process_time() - start

    return step, step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=tuple(SHAPES), default="latent")
    parser.add_argument("--block-out-channels", default="64")
    parser.add_argument("--attention-levels", default="")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    config = DDPMTrainConfig(
        space=args.space,
        block_out_channels=tuple(int(c) for c in args.block_out_channels.split(",")),
        attention_levels=tuple(int(a) for a in args.attention_levels.split(",") if a),
        norm_num_groups=16,
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.space} UNet {args.block_out_channels}"
    )
    steppers = {}
    for name, compiled in (("eager", False), ("compiled", True)):
        steppers[name], first = stepper(config, args.space, args.batch_size, compiled)
        print(f"{name}: first step {first:.1f} CPU-s")
    times = {name: [] for name in steppers}
    for _ in range(args.rounds):
        for name, step in steppers.items():  # interleaved: both see the same neighbours
            times[name] += [step() for _ in range(args.steps)]
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    for name, median in medians.items():
        print(f"{name}: median {median:.3f} CPU-s per step (batch {args.batch_size})")
    print(f"speed-up of torch.compile: {medians['eager'] / medians['compiled']:.2f}x")


if __name__ == "__main__":
    main()
