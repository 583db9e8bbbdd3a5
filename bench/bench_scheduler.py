"""Time our DDPM/DDIM schedulers against diffusers' on the same tensors, interleaved, and print the ratio.

    .venv/bin/python -m bench.bench_scheduler [--repeats 15]

Per scheduler and batch shape it times: a whole sampling loop (``set_timesteps(50)`` then 50 ``step`` calls
on a fixed model output), a single ``step`` call, and ``add_noise``. Each measurement alternates ours and
diffusers' within every repeat, and the medians over repeats are compared. The headline ratio is the
geometric mean of ours/diffusers over the sampling loops; the goal is <= 1.0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its thread pool

import diffusers
import torch

from pipelines.scheduling_ddim import DDIMScheduler
from pipelines.scheduling_ddpm import DDPMScheduler

SHAPES = ((16, 1, 28, 28), (64, 4, 7, 7))
NUM_INFERENCE_STEPS = 50


def sampling_loop(scheduler, model_output, sample, step_kwargs, generator):
    """set_timesteps + one step per timestep, the network replaced by a fixed output."""
    scheduler.set_timesteps(NUM_INFERENCE_STEPS)
    for t in scheduler.timesteps:
        sample = scheduler.step(model_output, t, sample, generator=generator, **step_kwargs).prev_sample
    return sample


def timed(fn, inner: int) -> float:
    """Seconds per call of ``fn``, over ``inner`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def bench_case(name, ours, theirs, shape, step_kwargs, repeats):
    """Median seconds per op for ours and theirs: {op: (ours, theirs)}."""
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(shape, generator=g)
    model_output = torch.randn(shape, generator=g)
    timesteps = torch.randint(0, ours.config.num_train_timesteps, (shape[0],), generator=g)
    for s in (ours, theirs):
        s.set_timesteps(NUM_INFERENCE_STEPS)
    t_mid = int(ours.timesteps[NUM_INFERENCE_STEPS // 2])

    def ops(s):
        gen = torch.Generator()
        return {
            "sampling loop (50 steps)": (
                lambda: sampling_loop(s, model_output, sample, step_kwargs, gen.manual_seed(0)),
                3,
            ),
            "step (one call)": (lambda: s.step(model_output, t_mid, sample, generator=gen, **step_kwargs), 200),
            "add_noise": (lambda: s.add_noise(sample, model_output, timesteps), 200),
        }

    ours_ops, theirs_ops = ops(ours), ops(theirs)
    # same tensors out of both (the benchmark is only meaningful if they agree)
    a = sampling_loop(ours, model_output, sample, step_kwargs, torch.Generator().manual_seed(0))
    b = sampling_loop(theirs, model_output, sample, step_kwargs, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

    results = {}
    for op in ours_ops:
        fo, inner = ours_ops[op]
        ft, _ = theirs_ops[op]
        fo(), ft()  # warm up
        t_ours, t_theirs = [], []
        for r in range(repeats):  # interleave, alternating who goes first
            pair = ((fo, t_ours), (ft, t_theirs)) if r % 2 == 0 else ((ft, t_theirs), (fo, t_ours))
            for fn, out in pair:
                out.append(timed(fn, inner))
        results[op] = (statistics.median(t_ours), statistics.median(t_theirs))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repeats per measurement (median taken)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cases = [
        ("DDPM", DDPMScheduler, diffusers.DDPMScheduler, {}),
        ("DDIM eta=0", DDIMScheduler, diffusers.DDIMScheduler, {"eta": 0.0}),
        ("DDIM eta=1", DDIMScheduler, diffusers.DDIMScheduler, {"eta": 1.0}),
    ]
    loop_ratios = []
    print(
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, threads {torch.get_num_threads()}, "
        f"repeats {args.repeats} (medians, microseconds per call)"
    )
    print(f"{'scheduler':<12} {'shape':<16} {'op':<26} {'ours':>10} {'diffusers':>10} {'ratio':>7}")
    for name, ours_cls, theirs_cls, step_kwargs in cases:
        for shape in SHAPES:
            ours = ours_cls()
            theirs = theirs_cls.from_config(ours.config)
            for op, (t_ours, t_theirs) in bench_case(name, ours, theirs, shape, step_kwargs, args.repeats).items():
                ratio = t_ours / t_theirs
                if op.startswith("sampling loop"):
                    loop_ratios.append(ratio)
                shape_s = "x".join(map(str, shape))
                print(f"{name:<12} {shape_s:<16} {op:<26} {t_ours * 1e6:>10.1f} {t_theirs * 1e6:>10.1f} {ratio:>7.3f}")
    geo_mean = statistics.geometric_mean(loop_ratios)
    print(f"scheduler step time ratio ours/diffusers: {geo_mean:.3f}")


if __name__ == "__main__":
    main()
