"""Time to quality: train a recipe from scratch and score its model at fixed CPU-time intervals.

    python -m bench.bench_time_to_quality --recipe ddpm-latent-fast [--every 2] [--threads 1]
    python -m bench.bench_time_to_quality --recipe ddpm-latent-fast --compare my-latent.yaml   # side by side
    python -m bench.bench_time_to_quality --recipe ddpm-latent-fast --rescore   # score a finished training again

The clock is this process's CPU time (user + sys, ``time.process_time``): it counts every stage of the recipe
(VAE, guide, the model itself) and leaves out the snapshots' exports and all scoring, which happen after training.
Neighbours on a shared machine move it less than wall-clock time, but they still do (shared caches and memory
bandwidth; docs/time-to-quality.md#measured-on-the-way): compare recipes side by side (``--compare``). Every
``--every`` CPU-minutes of the exported stage, its EMA weights are exported;
afterwards each snapshot gets the recipe's guide from the step at which it exists (a guide stage trained before
the model: always; ``guide: <stage>@<s>``, the model's own snapshot at step s: from s on; a stage trained after
the model: at the end only) and is scored at the app's default sampler in fp32 (``training.evaluate.evaluate_sampler``):
the classifier's confident fraction, the digit shares and the Fréchet distance to the test digits. The last point
is the recipe's own export, scored on ``--final-samples``.

Writes ``<output_root>/<recipe>/time_to_quality.json`` (the curve) and ``.png`` (confident fraction and Fréchet
distance against CPU-minutes); with ``--compare`` both recipes train at once in two processes and one plot
``<output_root>/compare-<a>-vs-<b>.png`` holds both curves. Prints the first CPU-minute at which each target was met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads must not spin on a shared machine

import torch

from training.config import export_path
from training.train import (
    finish_recipe,
    guide_folder,
    load_recipe,
    make_task,
    recipe_stem,
    stage_configs,
)

TARGET_CONFIDENT = 0.9
TARGET_DIGITS = (0.07, 0.13)  # every digit's share of the samples


class CpuClock:
    """CPU-seconds of this process (user + sys) spent on training: paused time is taken out."""

    def __init__(self):
        self.start, self.paused = time.process_time(), 0.0

    def minutes(self) -> float:
        return (time.process_time() - self.start - self.paused) / 60

    @contextlib.contextmanager
    def pause(self):
        """CPU time spent inside this block is not counted."""
        start = time.process_time()
        try:
            yield
        finally:
            self.paused += time.process_time() - start


@dataclass
class Snapshots:
    """The loop's after_step hook: exports the EMA model each time the clock passes another ``every`` minutes."""

    clock: CpuClock
    folder: Path
    every: float
    next_mark: float
    taken: list[dict] = field(default_factory=list)  # {cpu_minutes, step, folder}

    def __call__(self, run) -> None:
        from training.loop import export_snapshot

        if self.clock.minutes() < self.next_mark or run.step >= run.cfg.max_steps:  # the last step: the export
            return
        folder = self.folder / f"step-{run.step:07d}"
        self.taken.append({"cpu_minutes": self.clock.minutes(), "step": run.step, "folder": str(folder)})
        with self.clock.pause():
            export_snapshot(run, folder)
        self.next_mark += self.every


def trained_record(recipe: str, root: Path) -> Path:
    """Where a finished training writes its snapshots and stage CPU-minutes, so that ``--rescore`` can score them
    again without training (after a crash while scoring, or with another sampler)."""
    return root / recipe_stem(recipe) / "trained.json"


def train_with_snapshots(recipe: str, root: Path, every: float, overrides: dict) -> tuple[list[dict], dict]:
    """Train every stage; snapshot the exported stage every ``every`` CPU-minutes. Returns the snapshots
    [{cpu_minutes, step, folder}] and the CPU-minutes each stage took (also written to ``trained.json``)."""
    from training.loop import train

    spec, configs = load_recipe(recipe), stage_configs(recipe, root, overrides)
    clock, stage_minutes, snapshots = CpuClock(), {}, None
    for stage, (kind, config) in configs.items():
        before = clock.minutes()
        if stage == spec["export"]:
            snapshots = Snapshots(clock, root / recipe_stem(recipe) / "snapshots", every, before + every)
        train(make_task(kind, config), after_step=snapshots if stage == spec["export"] else None)
        end = clock.minutes()
        stage_minutes[stage] = end - before
        print(f"[{recipe}] stage {stage}: {stage_minutes[stage]:.2f} CPU-minutes", flush=True)
    final = configs[spec["export"]][1]
    snapshots.taken.append({"cpu_minutes": end, "step": final.max_steps, "folder": str(export_path(final))})
    record = {"snapshots": snapshots.taken, "stage_cpu_minutes": stage_minutes}
    trained_record(recipe, root).write_text(json.dumps(record, indent=2))
    return snapshots.taken, stage_minutes


def score(folder: Path, guide: Path | None, num_samples: int) -> dict:
    """The app's default sampler on ``folder`` (with ``guide`` attached in place, if any), scored by the classifier."""
    from pipelines.defaults import DEFAULT_DDIM_ETA, DEFAULT_GUIDANCE_SCALE, DEFAULT_SAMPLER, DEFAULT_STEPS
    from training.attach_guide import attach_guide
    from training.evaluate import evaluate_sampler, load_pipeline, sampler_summary

    if guide is not None and not (folder / "guide_unet").is_dir():
        attach_guide(folder, guide)
    pipe = load_pipeline(folder)
    metrics = evaluate_sampler(
        pipe, num_samples, DEFAULT_SAMPLER, DEFAULT_STEPS, DEFAULT_DDIM_ETA, DEFAULT_GUIDANCE_SCALE
    )
    keys = ("confident_fraction", "min_digit_fraction", "max_digit_fraction", "frechet_distance", "num_samples")
    keys += ("class_accuracy",) if "class_accuracy" in metrics else ()  # a conditional model: the digit asked for
    return {k: metrics[k] for k in keys} | {"sampler": sampler_summary(metrics)}


def meets(point: dict, digits: bool) -> bool:
    ok = point["confident_fraction"] >= TARGET_CONFIDENT
    if digits:
        ok = ok and TARGET_DIGITS[0] <= point["min_digit_fraction"] and point["max_digit_fraction"] <= TARGET_DIGITS[1]
    return ok


def first_meeting(points: list[dict], digits: bool) -> float | None:
    return next((p["cpu_minutes"] for p in points if meets(p, digits)), None)


def run_recipe_curve(args, overrides: dict) -> Path:
    """Train, score every snapshot, write and return the curve's JSON."""
    torch.set_num_threads(args.threads)
    root = Path(args.output_root)
    if args.rescore:
        record = json.loads(trained_record(args.recipe, root).read_text())
        snapshots, stage_minutes = record["snapshots"], record["stage_cpu_minutes"]
    else:
        snapshots, stage_minutes = train_with_snapshots(args.recipe, root, args.every, overrides)
    configs = stage_configs(args.recipe, root, overrides)
    guide = guide_folder(args.recipe, configs)  # (folder, the model's first step that has it) or None
    points = []
    for i, snap in enumerate(snapshots):
        n = args.final_samples if i == len(snapshots) - 1 else args.samples
        guided = guide is not None and snap["step"] >= guide[1]
        point = {**snap, **score(Path(snap["folder"]), guide[0] if guided else None, n), "guided": guided}
        points.append(point)
        print(
            f"[{args.recipe}] {point['cpu_minutes']:6.2f} CPU-min, step {point['step']}: "
            f"confident {point['confident_fraction']:.1%}, digits {point['min_digit_fraction']:.1%}–"
            f"{point['max_digit_fraction']:.1%}, Fréchet {point['frechet_distance']:.2f} ({n} samples)",
            flush=True,
        )
    curve = {
        "recipe": recipe_stem(args.recipe),
        "threads": args.threads,
        "cpu": _cpu_name(),
        "stage_cpu_minutes": stage_minutes,
        "points": points,
        "first_confident": first_meeting(points, digits=False),
        "first_confident_and_balanced": first_meeting(points, digits=True),
    }
    out = root / recipe_stem(args.recipe) / "time_to_quality.json"
    out.write_text(json.dumps(curve, indent=2))
    final = points[-1]
    finish_recipe(
        args.recipe,
        configs,
        cpu_minutes=round(final["cpu_minutes"], 1),
        stage_cpu_minutes={k: round(v, 2) for k, v in stage_minutes.items()},
        threads=args.threads,
        measured_by=f"python -m bench.bench_time_to_quality --recipe {recipe_stem(args.recipe)} --threads {args.threads}",
        final_scores={k: v for k, v in final.items() if k not in ("cpu_minutes", "step", "folder")},
    )
    return out


def _cpu_name() -> str:
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
        return line.partition(":")[2].strip()
    except (OSError, StopIteration):
        return "unknown"


def plot(curves: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for curve in curves:
        x = [p["cpu_minutes"] for p in curve["points"]]
        top.plot(x, [100 * p["confident_fraction"] for p in curve["points"]], "o-", label=curve["recipe"])
        bottom.plot(x, [p["frechet_distance"] for p in curve["points"]], "o-", label=curve["recipe"])
    top.axhline(100 * TARGET_CONFIDENT, color="gray", ls="--", lw=1, label=f"target {TARGET_CONFIDENT:.0%}")
    for curve in curves:  # where each stage before the model's own ended (VAE, guide): the model starts there
        end = 0.0
        for stage, minutes in list(curve["stage_cpu_minutes"].items())[:-1]:
            end += minutes
            for axis in (top, bottom):
                axis.axvline(end, color="lightgray", ls=":", lw=1)
            top.annotate(
                f"{curve['recipe']}: {stage} done",
                (end, top.get_ylim()[0]),
                rotation=90,
                fontsize=7,
                color="gray",
                va="bottom",
                ha="right",
            )
    top.set_ylabel("confident samples (%)")
    bottom.set_ylabel("Fréchet distance (classifier features)")
    bottom.set_xlabel("CPU-minutes (user + sys), all stages")
    bottom.set_yscale("log")
    top.legend()
    top.set_title("Time to quality at the app's default sampler")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def summarize(curve: dict) -> str:
    fmt = lambda v: "not reached" if v is None else f"{v:.1f} CPU-min"
    last = curve["points"][-1]
    return (
        f"{curve['recipe']}: {last['cpu_minutes']:.1f} CPU-min in all ({curve['threads']} thread(s), {curve['cpu']}); "
        f"at the end {last['confident_fraction']:.1%} confident on {last['num_samples']} samples, digits "
        f"{last['min_digit_fraction']:.1%}–{last['max_digit_fraction']:.1%}, Fréchet {last['frechet_distance']:.2f}; "
        f"≥ {TARGET_CONFIDENT:.0%} confident first at {fmt(curve['first_confident'])}, and with every digit "
        f"{TARGET_DIGITS[0]:.0%}–{TARGET_DIGITS[1]:.0%} at {fmt(curve['first_confident_and_balanced'])}"
    )


def parse_overrides(pairs: list[str]) -> dict:
    """``--set ddpm.max_steps=20`` → {"ddpm": {"max_steps": 20}} (values read as YAML)."""
    import yaml

    overrides: dict[str, dict] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        task, dot, field = key.partition(".")
        if not (sep and dot and field):
            raise ValueError(f"--set takes task.field=value (e.g. ddpm.max_steps=20), got {pair!r}.")
        overrides.setdefault(task, {})[field] = yaml.safe_load(value)
    return overrides


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, help="a recipe's name (training/recipes/<name>.yaml) or a YAML file")
    parser.add_argument("--compare", help="a second recipe, trained at the same time in another process")
    parser.add_argument("--every", type=float, default=2.0, help="CPU-minutes between snapshots")
    parser.add_argument("--samples", type=int, default=500, help="samples scored per snapshot")
    parser.add_argument("--final-samples", type=int, default=1000, help="samples scored for the final export")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    parser.add_argument("--output-root", default="runs/time-to-quality")
    parser.add_argument("--set", action="append", default=[], help="task.field=value: overrides every such stage")
    parser.add_argument(
        "--rescore", action="store_true", help="score a finished training's snapshots again (its trained.json)"
    )
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    for task in ("vae", "ddpm", "classifier"):
        overrides.setdefault(task, {}).setdefault("num_threads", args.threads)
    root = Path(args.output_root)
    if args.compare:
        shared = [
            "--every",
            str(args.every),
            "--samples",
            str(args.samples),
            "--final-samples",
            str(args.final_samples),
        ]
        shared += ["--threads", str(args.threads), "--output-root", args.output_root]
        shared += [arg for pair in args.set for arg in ("--set", pair)] + (["--rescore"] if args.rescore else [])
        procs = [
            subprocess.Popen([sys.executable, __file__, "--recipe", recipe, *shared])
            for recipe in (args.recipe, args.compare)
        ]
        if any(p.wait() for p in procs):
            raise SystemExit("a recipe's run failed: see its output above.")
        names = (recipe_stem(args.recipe), recipe_stem(args.compare))
        png = root / f"compare-{names[0]}-vs-{names[1]}.png"
    else:
        run_recipe_curve(args, overrides)
        names = (recipe_stem(args.recipe),)
        png = root / names[0] / "time_to_quality.png"
    curves = [json.loads((root / name / "time_to_quality.json").read_text()) for name in names]
    plot(curves, png)
    for curve in curves:
        print(summarize(curve))
    print(f"curve(s): {', '.join(str(root / n / 'time_to_quality.json') for n in names)}; plot: {png}")
    return curves


if __name__ == "__main__":
    main()
