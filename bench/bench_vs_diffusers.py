"""Our DDPMPipeline against diffusers' own DDPMPipeline, fp32, the same UNet and the same scheduler, in one run:
first quiet, then beside other jobs (``--busy`` processes spinning on matrix products), each phase in ``--rounds``
rounds that run both pipelines back to back in alternating order; printed per round and as the median and the worst
of the ratios diffusers' seconds / ours (above 1: ours is faster). Before timing, both must give the same images.

    python -m bench.bench_vs_diffusers [--model models/ddpm-pixel] [--steps 100] [--batch 16] [--rounds 7]
        [--busy 2] [--scheduler ours|diffusers]

``--scheduler`` picks the one scheduler both pipelines get: our DDPMScheduler (default) or diffusers'; both are built
from the model's trained scheduler config. Then ``--profile`` prints where our per-step loop spends its time outside
the UNet (cProfile over one run, our modules only).
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its thread pool, as the other benches

import diffusers
import numpy as np
import torch

from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.scheduling_ddpm import DDPMScheduler

ROOT = Path(__file__).resolve().parents[1]


def spin(stop) -> None:
    """A neighbour's job: one thread of matrix products until told to stop."""
    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    while not stop.is_set():
        a = (a @ a).tanh()


def run(pipe, steps: int, batch: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    images = pipe(
        batch_size=batch, generator=torch.Generator().manual_seed(0), num_inference_steps=steps, output_type="np"
    ).images
    return time.perf_counter() - start, images


def phase(pipes: dict, steps: int, batch: int, rounds: int, label: str) -> list[float]:
    """Ratios diffusers / ours of ``rounds`` back-to-back pairs, the order alternating."""
    ratios = []
    for r in range(rounds):
        order = ["ours", "diffusers"] if r % 2 == 0 else ["diffusers", "ours"]
        seconds = {name: run(pipes[name], steps, batch)[0] for name in order}
        ratios.append(seconds["diffusers"] / seconds["ours"])
        print(
            f"  [{label}] round {r}: ours {seconds['ours']:.2f} s, diffusers {seconds['diffusers']:.2f} s, "
            f"ratio {ratios[-1]:.3f}",
            flush=True,
        )
    print(f"  [{label}] ratio diffusers/ours: median {statistics.median(ratios):.3f}, worst {min(ratios):.3f}")
    return ratios


def profile_ours(pipe, steps: int, batch: int) -> None:
    """Seconds per step of our modules' own work (the UNet's excluded), by function."""
    profiler = cProfile.Profile()
    profiler.runcall(run, pipe, steps, batch)
    stats = pstats.Stats(profiler)
    rows = [
        (tottime, calls, f"{Path(file).name}:{name}")
        for (file, _, name), (_, calls, tottime, _, _) in stats.stats.items()
        if str(ROOT / "pipelines") in file
    ]
    print(f"\nour loop's own work outside the UNet, per step ({steps} steps, batch {batch}):")
    for tottime, calls, where in sorted(rows, reverse=True)[:10]:
        print(f"  {tottime / steps * 1e6:8.1f} µs  {calls:6d} calls  {where}")
    print(f"  {sum(r[0] for r in rows) / steps * 1e6:8.1f} µs  in all")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "ddpm-pixel"))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--busy", type=int, default=2, help="neighbour processes in the second phase (0: none)")
    parser.add_argument("--scheduler", choices=("ours", "diffusers"), default="ours")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    folder = Path(args.model)
    unet = diffusers.UNet2DModel.from_pretrained(folder / "unet").eval()
    config = DDPMScheduler.load_config(folder / "scheduler")  # the trained DDPM config (kept in any sampler's)
    scheduler_class = DDPMScheduler if args.scheduler == "ours" else diffusers.DDPMScheduler
    ours = DDPMPipeline(unet, scheduler_class.from_config(config), None)
    theirs = diffusers.DDPMPipeline(unet=unet, scheduler=scheduler_class.from_config(config))
    pipes = {"ours": ours, "diffusers": theirs}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    same = np.array_equal(run(ours, 5, 2)[1], run(theirs, 5, 2)[1])
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, {torch.get_num_threads()} threads; "
        f"{folder.name} UNet, {args.scheduler} DDPMScheduler in both, DDPM-{args.steps}, batch {args.batch}, fp32; "
        f"same images: {same}"
    )
    if not same:
        raise SystemExit("the two pipelines do not give the same images: nothing to compare")
    run(ours, 2, args.batch), run(theirs, 2, args.batch)  # warm-up
    quiet = phase(pipes, args.steps, args.batch, args.rounds, "quiet")
    busy = []
    if args.busy:
        stop = multiprocessing.Event()
        neighbours = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.busy)]
        for process in neighbours:
            process.start()
        try:
            busy = phase(pipes, args.steps, args.batch, args.rounds, f"beside {args.busy} jobs")
        finally:
            stop.set()
            for process in neighbours:
                process.join()
    print(
        f"\nratio diffusers/ours (≥ 1: ours at least as fast): quiet median {statistics.median(quiet):.3f}"
        + (f", beside jobs median {statistics.median(busy):.3f}" if busy else "")
    )
    if args.profile:
        profile_ours(ours, args.steps, args.batch)


if __name__ == "__main__":
    main()
