"""Time our DDPMPipeline against diffusers' with the same UNet, scheduler config and steps; study bf16/channels_last.

    .venv/bin/python -m bench.bench_pipeline [--repeats 5] [--ratio-steps 100] [--ddpm-steps 1000]
        [--block-out-channels 32,64,64 --layers-per-block 2 --attention-levels 2] [--model runs/ddpm-pixel/final]

1. parity: at fp32 our images equal diffusers' (same seed), else the timings compare different work;
2. ratio: DDPM-``ratio_steps`` at the batch size, ours (default precision, and fp32) vs diffusers' DDPMPipeline,
   interleaved (rotating who goes first) over ``repeats``; medians compared. Headline:
   ``pipeline throughput ratio ours/diffusers: X`` (images/s ours ÷ images/s diffusers, goal >= 1.0);
3. precision study on DDIM-50 (η = 0, deterministic): fp32, bf16 autocast, channels_last and both, timed
   interleaved, with the max abs difference of each one's images from fp32's (same seed), also for DDPM;
4. images/s for DDPM-``ddpm_steps``, DDIM-50 and latent DDIM-50 (a VAE with 4×7×7 latents);
0. (printed first; alone with ``--precision-only``) what the CPU's flags say about bf16, beside each UNet's
   measured fp32/bf16 ratio of DDIM-``ratio_steps`` sampling at the batch size (``--latent-model`` may name a saved
   LatentDDPMPipeline folder for the latent row).
5. (alone with ``--guide-only``) the bundled latent and pixel models at the app's default sampling (SDE-DPM-Solver++
   12 steps, autoguidance w = 3 in its interval, batch 16): the guide's pass beside the main one in a second thread
   against one after another, interleaved, with the path "auto" takes here and why, and whether the images agree.
The UNet is random unless ``--model`` names a saved DDPMPipeline folder (then differences measure real images).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its thread pool

import diffusers
import numpy as np
import torch
from diffusers import UNet2DModel

from pipelines import guidance
from pipelines.defaults import DEFAULT_SAMPLER, app_sampling_kwargs, app_scheduler
from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline
from pipelines.precision import cpu_bf16_choice
from pipelines.samplers import resolve_sampler
from pipelines.scheduling_ddim import DDIMScheduler
from pipelines.scheduling_ddpm import DDPMScheduler
from pipelines.vae import VAE


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def build_unet(args) -> UNet2DModel:
    """The MNIST UNet of training/train_ddpm.py by default: attention at ``attention_levels``."""
    torch.manual_seed(0)
    levels = range(len(args.block_out_channels))
    down = tuple("AttnDownBlock2D" if i in args.attention_levels else "DownBlock2D" for i in levels)
    up = tuple("AttnUpBlock2D" if i in args.attention_levels else "UpBlock2D" for i in reversed(levels))
    return UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        block_out_channels=args.block_out_channels,
        layers_per_block=args.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        norm_num_groups=8,
    ).eval()


def build_latent_pipeline() -> LatentDDPMPipeline:
    """A VAE with 4×7×7 latents and a one-level UNet on them (7×7 cannot be halved and doubled back)."""
    torch.manual_seed(0)
    vae = VAE(sample_size=28, block_out_channels=(32, 64), latent_type="spatial", latent_channels=4).eval()
    unet = UNet2DModel(
        sample_size=7,
        in_channels=4,
        out_channels=4,
        block_out_channels=(128,),
        layers_per_block=2,
        down_block_types=("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",),
        norm_num_groups=8,
    ).eval()
    return quiet(LatentDDPMPipeline(vae, unet, DDIMScheduler(), None))


def quiet(pipe):
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, steps: int, batch: int, seed: int = 0, **kwargs) -> np.ndarray:
    return pipe(
        batch_size=batch,
        generator=torch.Generator().manual_seed(seed),
        num_inference_steps=steps,
        output_type="np",
        **kwargs,
    ).images


def interleaved(cases: dict, repeats: int) -> dict[str, float]:
    """Median seconds per call of each case, the cases alternated (order rotated) within every repeat."""
    names, times = list(cases), {name: [] for name in cases}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def channels_last(unet: UNet2DModel) -> UNet2DModel:
    return copy.deepcopy(unet).to(memory_format=torch.channels_last)


def precision_decisions(pipes: dict, steps: int, batch: int, repeats: int) -> None:
    """What this CPU's feature flags say about bf16 (pipelines.precision.cpu_bf16_choice) beside the measured fp32 vs
    bf16 sampling times of each UNet: the figures an application's opt-in rests on."""
    choice = cpu_bf16_choice()
    print(f"\n0. CPU bf16: {choice.precision} ({choice.reason}); DDIM-{steps} at batch {batch} (median of {repeats}):")
    for name, pipe in pipes.items():
        medians = interleaved(
            {p: (lambda p=p, pipe=pipe: run(pipe, steps, batch, precision=p)) for p in ("loaded", "bf16")}, repeats
        )
        print(
            f"   {name:8s} fp32 {medians['loaded']:6.2f} s  bf16 {medians['bf16']:6.2f} s  "
            f"bf16 speed-up {medians['loaded'] / medians['bf16']:.2f}x"
        )


def time_guide_paths(pipe, steps: int, batch: int, repeats: int) -> tuple[dict[str, float], bool]:
    """Median seconds of autoguided sampling with the guide's pass side by side and one after another (what
    guide_beside_main decides from the cores it sees), and whether both made the same images."""
    cores = {"side by side": 2 * torch.get_num_threads(), "one after another": 1}
    options = app_sampling_kwargs(pipe)
    images = {}

    def case(mode: str) -> None:
        guidance.available_cores = lambda: cores[mode]
        images[mode] = run(pipe, steps, batch, **options)

    try:
        medians = interleaved({mode: (lambda mode=mode: case(mode)) for mode in cores}, repeats)
    finally:
        guidance.available_cores = AVAILABLE_CORES
    return medians, np.array_equal(*images.values())


AVAILABLE_CORES = guidance.available_cores


def guide_threading(batch: int, repeats: int) -> None:
    """5. The bundled models' autoguided sampling with the guide's pass beside the main one, and after it."""
    choice = guidance.guide_beside_main(torch.device("cpu"))
    steps = resolve_sampler(DEFAULT_SAMPLER).default_steps
    print(
        f"\n5. autoguided {DEFAULT_SAMPLER}-{steps}, batch {batch}, median of {repeats} interleaved runs; "
        f"auto here: {'side by side' if choice.beside else 'one after another'} ({choice.reason})"
    )
    root = Path(__file__).resolve().parents[1] / "models"
    for name, pipeline_class in (("ddpm-latent", LatentDDPMPipeline), ("ddpm-pixel", DDPMPipeline)):
        pipe = quiet(pipeline_class.from_pretrained(root / name))
        pipe.scheduler = app_scheduler(pipe)
        medians, same = time_guide_paths(pipe, steps, batch, repeats)
        beside, after = medians["side by side"], medians["one after another"]
        print(
            f"   {name:12s} side by side {beside:6.3f} s  one after another {after:6.3f} s  "
            f"speed-up {after / beside:.2f}x  same images: {same}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a saved DDPMPipeline folder (its unet and scheduler config are used)")
    parser.add_argument("--block-out-channels", type=ints, default=(32, 64, 64))
    parser.add_argument("--layers-per-block", type=int, default=2)
    parser.add_argument("--attention-levels", type=ints, default=(2,))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ratio-steps", type=int, default=100, help="DDPM steps of the ours/diffusers ratio")
    parser.add_argument("--ddpm-steps", type=int, default=1000, help="DDPM steps of the images/s table (0: skip)")
    parser.add_argument("--ddpm-repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--latent-model", help="a saved LatentDDPMPipeline folder for the precision rows")
    parser.add_argument("--precision-only", action="store_true", help="print only the precision decisions (0.)")
    parser.add_argument("--guide-only", action="store_true", help="print only the guide's threading study (5.)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch = args.batch_size
    if args.guide_only:
        return guide_threading(batch, args.repeats)

    if args.model:
        loaded = DDPMPipeline.from_pretrained(args.model)
        unet, scheduler_config = loaded.unet.eval(), loaded.scheduler.config
    else:
        unet, scheduler_config = build_unet(args), DDPMScheduler().config
    ours = quiet(DDPMPipeline(unet, DDPMScheduler.from_config(scheduler_config), None))
    theirs = quiet(diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler.from_config(scheduler_config)))
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, threads {torch.get_num_threads()}, "
        f"batch {batch}, unet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M params "
        f"({'loaded from ' + args.model if args.model else 'random weights'})"
    )
    latent = quiet(LatentDDPMPipeline.from_pretrained(args.latent_model)) if args.latent_model else None
    latent = latent or build_latent_pipeline()
    latent.scheduler = DDIMScheduler.from_config(latent.scheduler.config)
    ddim = quiet(DDPMPipeline(unet, DDIMScheduler.from_config(scheduler_config), None))
    precision_decisions({"pixel": ddim, "latent": latent}, args.ratio_steps, batch, args.repeats)
    if args.precision_only:
        return

    # 1. parity at fp32: the same images as diffusers' DDPMPipeline
    same = np.array_equal(run(ours, 5, 2, precision="loaded"), run(theirs, 5, 2))
    print(f"\n1. fp32 images equal diffusers' DDPMPipeline (5 steps, same seed): {same}")

    # 2. the headline ratio, DDPM at the batch size
    n = args.ratio_steps
    medians = interleaved(
        {
            "diffusers": lambda: run(theirs, n, batch),
            "ours (fp32)": lambda: run(ours, n, batch),
        },
        args.repeats,
    )
    print(f"\n2. DDPM-{n}, batch {batch}, median of {args.repeats} interleaved runs:")
    for name, seconds in medians.items():
        print(f"   {name:12s} {seconds:7.2f} s   {batch / seconds:7.2f} images/s")
    print(f"   fp32 ratio ours/diffusers: {medians['diffusers'] / medians['ours (fp32)']:.3f}")

    # 3. precision and memory format: speed on DDIM-50, image differences from fp32 on DDIM-50 and DDPM-n
    ddim_cl = quiet(DDPMPipeline(channels_last(unet), DDIMScheduler.from_config(scheduler_config), None))
    ddpm_cl = quiet(DDPMPipeline(ddim_cl.unet, DDPMScheduler.from_config(scheduler_config), None))
    settings = {
        "fp32": (ddim, ours, "loaded"),
        "bf16 autocast": (ddim, ours, "bf16"),
        "fp32 channels_last": (ddim_cl, ddpm_cl, "loaded"),
        "bf16 channels_last": (ddim_cl, ddpm_cl, "bf16"),
    }
    medians = interleaved(
        {k: (lambda p=p, q=q: run(p, 50, batch, precision=q)) for k, (p, _, q) in settings.items()}, args.repeats
    )
    ddim_ref, ddpm_ref = run(ddim, 50, batch, precision="loaded"), run(ours, n, batch, precision="loaded")
    print(
        "\n3. precision / memory format (DDIM-50 timed; |image − fp32 image| max and mean, same seed, images in [0, 1]):"
    )
    print(
        f"   {'setting':20s} {'s/run':>7s} {'images/s':>9s} {'speed-up':>8s} {'DDIM-50 max/mean':>17s} {f'DDPM-{n} max/mean':>17s}"
    )
    for name, (p, q, precision) in settings.items():
        ddim_diff = np.abs(run(p, 50, batch, precision=precision) - ddim_ref)
        ddpm_diff = np.abs(run(q, n, batch, precision=precision) - ddpm_ref)
        print(
            f"   {name:20s} {medians[name]:7.2f} {batch / medians[name]:9.2f} {medians['fp32'] / medians[name]:7.2f}x "
            f"{ddim_diff.max():8.4f}/{ddim_diff.mean():.4f} {ddpm_diff.max():8.4f}/{ddpm_diff.mean():.4f}"
        )

    # 4. images/s of the three samplers at the default precision (and fp32)
    print(f"\n4. images/s, batch {batch}:")
    rows = {
        "DDIM-50 ours (auto)": lambda: run(ddim, 50, batch),
        "DDIM-50 ours (fp32)": lambda: run(ddim, 50, batch, precision="loaded"),
        "DDIM-50 diffusers": lambda: run(
            quiet(diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDIMScheduler.from_config(scheduler_config))),
            50,
            batch,
        ),
        "latent DDIM-50 ours (auto)": lambda: run(latent, 50, batch),
        "latent DDIM-50 ours (fp32)": lambda: run(latent, 50, batch, precision="loaded"),
    }
    for name, seconds in interleaved(rows, args.repeats).items():
        print(f"   {name:28s} {seconds:7.2f} s   {batch / seconds:7.2f} images/s")
    if args.ddpm_steps:
        steps = args.ddpm_steps
        rows = {
            f"DDPM-{steps} ours (auto)": lambda: run(ours, steps, batch),
            f"DDPM-{steps} ours (fp32)": lambda: run(ours, steps, batch, precision="loaded"),
            f"DDPM-{steps} diffusers": lambda: run(theirs, steps, batch),
        }
        for name, seconds in interleaved(rows, args.ddpm_repeats).items():
            print(f"   {name:28s} {seconds:7.2f} s   {batch / seconds:7.2f} images/s")


if __name__ == "__main__":
    main()
