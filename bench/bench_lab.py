"""The "Train it yourself" lab: CPU seconds until each live run shows a recognisable result, and its peak memory.

    python bench/bench_lab.py                      # the four preset 2-D targets (20 s each) and the VAE (60 s)
    python bench/bench_lab.py --targets moons --skip-vae

Each run goes through the tab's own stream (engine + the pictures the page gets), in this process with one torch
thread, exactly as the Space runs it. CPU seconds are ``time.process_time`` (the wall clock on a shared machine
overstates them). Recognisable:

- 2-D diffusion: the energy distance of the samples to the target falls below a tenth of that of the N(0, I)
  the sampler starts from ("90% of the way"), or below twice the distance between two draws of the target (the
  estimator's noise floor with these sample sizes), whichever is larger;
- VAE: the decoded grid over the latent plane holds at least MIN_DIGITS different digits that the project's
  MNIST classifier names with ≥ 0.9 confidence (models/mnist-classifier); every snapshot is printed with the
  held-out ELBO and how well the 2-D latent map separates the digits (leave-one-out 5-nearest-neighbour accuracy
  of the held-out μ(x)).

The runs' time budgets count CPU seconds here (the engines' ``clock``), not wall-clock seconds as on the page, so
that a loaded machine still gets the full budget: 20 s for each 2-D target, 60 s for the VAE.

Memory: resident set (VmRSS) sampled every 0.1 s during each run, against the resident set before it. Pictures of
the samples at the recognisable snapshot and every 1000 steps go to bench/out/ (look at them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from bench.bench_load import PeakMemory, resident_bytes
from lab import figures as lab_figures
from lab import toy2d, toy2d_targets, vae2d
from pipelines.digit_classifier import load_classifier
from playground import lab_handlers

OUT = ROOT / "bench" / "out"
MIN_DIGITS = 5
CONFIDENCE = 0.9


def diffusion_row(target: str, cpu_seconds: float) -> dict:
    settings = toy2d.DiffusionSettings(target=target, max_seconds=cpu_seconds)
    points = toy2d_targets.target_points(target, settings.num_points)
    reference = points[: settings.num_samples]
    noise = torch.randn(settings.num_samples, 2, generator=torch.Generator().manual_seed(1))
    floor = toy2d.energy_distance(toy2d_targets.target_points(target, settings.num_samples, seed=1), reference)
    threshold = max(0.1 * toy2d.energy_distance(noise, reference), 2 * floor)
    row = {"target": target, "threshold": threshold, "target_vs_target": floor, "recognisable": None}
    start, before = time.process_time(), resident_bytes(os.getpid())
    shots = {}
    with PeakMemory(os.getpid(), every=0.1) as memory:
        steps = toy2d.train_diffusion(settings, points, clock=time.process_time)
        for *_, run in lab_handlers._diffusion_pictures(steps):
            step, distance = run.distances[-1]
            if step and step % 1000 == 0 and step not in shots:  # a picture per 1000 steps, to judge by eye
                shots[step] = lab_figures.point_cloud(
                    reference, run.samples, f"step {step}, {time.process_time() - start:.1f} s CPU"
                )
            if row["recognisable"] is None and step and distance <= threshold:
                row["recognisable"] = (step, time.process_time() - start, distance)
                lab_figures.point_cloud(reference, run.samples, f"{target}, step {step}").save(
                    OUT / f"lab-{target}-recognisable.png"
                )
    row.update(final=(run.step, time.process_time() - start, run.distances[-1][1]), rss=(before, memory.peak))
    lab_figures.strip(list(shots.values()), count=len(shots)).save(OUT / f"lab-{target}-snapshots.png")
    return row


def vae_row(seconds: float) -> dict:
    classifier = load_classifier(ROOT / "models" / "mnist-classifier").eval()
    vae2d.mnist_splits()  # read before the clock starts, as the page does
    row = {"recognisable": None}
    start, before = time.process_time(), resident_bytes(os.getpid())
    with PeakMemory(os.getpid(), every=0.1) as memory:
        steps = vae2d.train_vae(vae2d.VAESettings(max_seconds=seconds), clock=time.process_time)
        for *_, run in lab_handlers._vae_pictures(steps):
            if run.heldout[-1][0] != run.step:
                continue
            cpu, digits, held = time.process_time() - start, confident_digits(classifier, run.grid), run.heldout[-1][1]
            print(
                f"  VAE step {run.step:5d}  CPU {cpu:5.1f} s  held-out ELBO {held.elbo:7.1f}  KL {held.kl:5.2f}  "
                f"5-NN accuracy of μ {neighbour_accuracy(run.latents, run.labels):.2f}  confident digits {sorted(digits)}"
            )
            if row["recognisable"] is None and len(digits) >= MIN_DIGITS:
                row["recognisable"] = (run.step, cpu, sorted(digits))
                lab_figures.digit_grid(run.grid, run.settings.grid_size).save(OUT / "lab-vae-recognisable.png")
    held = run.heldout[-1][1]
    row.update(final=(run.step, time.process_time() - start, held.elbo, held.kl), rss=(before, memory.peak))
    lab_figures.digit_grid(run.grid, run.settings.grid_size).save(OUT / "lab-vae-final.png")
    lab_figures.latent_map(run.latents, run.labels, 1.645, f"step {run.step}").save(OUT / "lab-vae-map-final.png")
    return row


def neighbour_accuracy(points: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour accuracy: how well the 2-D map separates the digits (0.1 = chance)."""
    distances = torch.cdist(points, points).fill_diagonal_(float("inf"))
    neighbours = labels[distances.topk(k, largest=False).indices]  # (N, k)
    return (neighbours.mode(dim=1).values == labels).float().mean().item()


@torch.no_grad()
def confident_digits(classifier, images: torch.Tensor) -> set[int]:
    probs = torch.softmax(classifier(images), dim=1)
    confidence, predicted = probs.max(1)
    return set(predicted[confidence >= CONFIDENCE].tolist())


def mib(pair: tuple[int, int]) -> str:
    before, peak = pair
    return f"{before / 2**20:.0f} → {peak / 2**20:.0f} MiB (+{(peak - before) / 2**20:.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="*", default=list(toy2d_targets.TARGETS))
    parser.add_argument("--cpu-seconds", type=float, default=20.0, help="CPU budget of each diffusion run")
    parser.add_argument("--vae-seconds", type=float, default=60.0, help="CPU budget of the VAE run")
    parser.add_argument("--skip-vae", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    print(
        "target      recognisable at (step, CPU s, ED ≤ threshold)   threshold  ED target↔target  final (step, CPU s, ED)  RSS"
    )
    for target in args.targets:
        r = diffusion_row(target, args.cpu_seconds)
        hit = (
            "not within the budget"
            if r["recognisable"] is None
            else "step {}, {:.1f} s, {:.4f}".format(*r["recognisable"])
        )
        final = "step {}, {:.1f} s, {:.4f}".format(*r["final"])
        print(
            f"{target:<11} {hit:<48} {r['threshold']:.4f}     {r['target_vs_target']:.4f}            {final}  {mib(r['rss'])}"
        )
    if not args.skip_vae:
        r = vae_row(args.vae_seconds)
        hit = (
            "not within the budget"
            if r["recognisable"] is None
            else "step {}, {:.1f} s CPU, digits {}".format(*r["recognisable"])
        )
        final = "step {}, {:.1f} s CPU, held-out ELBO {:.1f} nats, KL {:.2f}".format(*r["final"])
        print(f"VAE (≥ {MIN_DIGITS} confident digits in the decoded grid): {hit}")
        print(f"VAE final: {final}; RSS {mib(r['rss'])}")


if __name__ == "__main__":
    main()
