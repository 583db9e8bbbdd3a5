"""DDIM inversion of real digits by the bundled models: how close DDIM brings back x from its inverted noise.

    .venv/bin/python -m bench.bench_inversion [--steps 10 25 50 100] [--digits 10] [--models-dir models]

For each bundled unconditional model and step count: invert ``--digits`` held-out test digits (spread over the split),
decode the noises with DDIM (η = 0, x̂_0 never clipped, as the Walks tab does) and print mean |x̂ − x| and RMSE in
pixels of [0, 1], the inverted noise's std (a draw of N(0, I) has 1) and the seconds for both directions. For the
latent model the VAE alone already loses decode(encode(x)) ≠ x; that floor is printed beside it. One extra row shows
the pixel model decoding with its configured x̂_0 clipping, which the Walks tab turns off.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from pipelines import DDIMScheduler, DDPMPipeline, LatentDDPMPipeline
from pipelines.ddim_inversion import encode_images
from training.data import load_data

MODELS = {"pixel": ("ddpm-pixel", DDPMPipeline), "latent": ("ddpm-latent", LatentDDPMPipeline)}


def round_trip(pipe, x: torch.Tensor, steps: int) -> dict:
    start = time.perf_counter()
    noise = pipe.invert(x, steps).noise
    decoded = pipe(batch_size=len(noise), latents=noise, num_inference_steps=steps, eta=0.0, output_type="pt").images
    return {
        "mae": float((decoded - x).abs().mean()),
        "rmse": float(((decoded - x) ** 2).mean().sqrt()),
        "noise_std": float(noise.std()),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--digits", type=int, default=10)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    torch.set_num_threads(1)
    test = load_data("mnist", "test")
    chosen = torch.arange(args.digits) * (len(test) // args.digits)  # spread over the split
    x = test.images[chosen]
    print(f"{args.digits} test digits #{chosen.tolist()} (labels {test.labels[chosen].tolist()})")
    print(
        f"{'model':8s} {'steps':>5s} {'mean |x̂−x|':>11s} {'RMSE':>7s} {'VAE floor':>9s} {'noise std':>9s} {'seconds':>8s}"
    )
    for name, (folder, pipeline_class) in MODELS.items():
        pipe = pipeline_class.from_pretrained(args.models_dir / folder)
        pipe.set_progress_bar_config(disable=True)
        configured = pipe.scheduler.config
        pipe.scheduler = DDIMScheduler.from_config(configured, clip_sample=False)
        floor = float((pipe.decode_latents(encode_images(pipe, x)) - x).abs().mean()) if name == "latent" else 0.0
        for steps in args.steps:
            r = round_trip(pipe, x, steps)
            print(
                f"{name:8s} {steps:>5d} {r['mae']:11.4f} {r['rmse']:7.4f} {floor:9.4f} {r['noise_std']:9.3f} "
                f"{r['seconds']:8.1f}",
                flush=True,
            )
        if configured.clip_sample:
            pipe.scheduler = DDIMScheduler.from_config(configured)
            steps = 25 if 25 in args.steps else args.steps[0]
            r = round_trip(pipe, x, steps)
            print(
                f"{name:8s} {steps:>5d} {r['mae']:11.4f} {r['rmse']:7.4f} {floor:9.4f} {r['noise_std']:9.3f} "
                f"{r['seconds']:8.1f}  (x̂_0 clipped while decoding)"
            )


if __name__ == "__main__":
    main()
