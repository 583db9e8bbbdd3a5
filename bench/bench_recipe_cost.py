"""What a recipe costs in CPU time, without training it to the end: each stage's CPU seconds per optimizer step, over
steps 100–300 of a fresh run on one thread (this process's time, so a neighbour's load barely moves it), times the
stage's max_steps.

    python -m bench.bench_recipe_cost --recipe ddpm-latent [--stages ddpm]

The estimate leaves out what a step does not do: the VAE's held-out evaluations, checkpoints and snapshots (a few
seconds each). docs/models.md gives the bundled models' figures from it, beside those the time-to-quality bench
measured whole (``bench/bench_time_to_quality.py``) for stages that a fast recipe shares.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch

from training import train as recipes
from training.loop import train

FIRST, LAST = 100, 300  # past the first steps' warm-up (allocations, the LR warm-up's first updates)


def seconds_per_step(kind: str, config) -> float:
    """CPU seconds per optimizer step of ``config``'s stage, measured over steps FIRST..LAST."""
    marks = {}

    def mark(run):
        if run.step in (FIRST, LAST):
            marks[run.step] = time.process_time()

    short = dataclasses.replace(config, max_steps=LAST, checkpoint_every=0, snapshot_steps=(), eval_every=0)
    train(recipes.make_task(kind, short), after_step=mark)
    return (marks[LAST] - marks[FIRST]) / (LAST - FIRST)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--stages", help="comma-separated stages to measure (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    wanted = set(args.stages.split(",")) if args.stages else None
    minutes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage, (kind, config) in recipes.stage_configs(args.recipe, tmp).items():
            if wanted is not None and stage not in wanted:  # still trained briefly: a later stage may need its export
                brief = dataclasses.replace(config, max_steps=2, eval_every=0, snapshot_steps=())
                train(recipes.make_task(kind, brief))
                continue
            per_step = seconds_per_step(kind, config)
            minutes[stage] = per_step * config.max_steps / 60
            print(
                f"[{args.recipe}] {stage}: {1000 * per_step:.0f} ms CPU per step × {config.max_steps} steps "
                f"= {minutes[stage]:.1f} CPU-minutes",
                flush=True,
            )
    print(f"[{args.recipe}] estimated total: {sum(minutes.values()):.1f} CPU-minutes on one thread")
    return minutes


if __name__ == "__main__":
    main()
