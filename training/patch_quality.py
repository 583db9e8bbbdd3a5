"""Score a colour model trained on ``sklearn-patches`` against real patches: the Fréchet distance, in a fixed
feature space, between its samples and the training patches, beside the same distance for the held-out real
patches (the anchor: what real patches the model never saw score).

    python -m training.patch_quality runs/recipes/colour-pixel/ddpm --num_samples 500
    python -m training.patch_quality --real                 # the held-out anchor, noise and blur
    python -m training.patch_quality runs/... --grid docs/images/colour-pixel.png   # 64 samples | 64 real patches

The feature space involves no trained network: each patch's 8×8 average-pooled colours projected on the 32 leading
principal components of the training patches, plus the log standard deviation of its horizontal and vertical pixel
differences per channel (texture, which pooling drops). Writes ``patch_quality.json`` into the folder.
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import load_data
from .evaluate import frechet_distance, load_pipeline

COMPONENTS = 32


@cache
def _projection() -> tuple[np.ndarray, np.ndarray]:
    pooled = _pooled(load_data("sklearn-patches", "train").images)
    mean = pooled.mean(0)
    _, _, vt = np.linalg.svd(pooled - mean, full_matrices=False)
    return mean, vt[:COMPONENTS].T


def _pooled(images: torch.Tensor) -> np.ndarray:
    return F.avg_pool2d(images.double(), 4).flatten(1).numpy()


def patch_features(images: torch.Tensor) -> np.ndarray:
    """(N, 3, 32, 32) in [0, 1] → (N, 38) features."""
    mean, basis = _projection()
    x = images.double()
    dx, dy = x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]
    texture = torch.cat([dx.flatten(2).std(-1), dy.flatten(2).std(-1)], 1).clamp_min(1e-4).log().numpy()
    return np.concatenate([(_pooled(images) - mean) @ basis, texture], 1)


@cache
def train_features() -> np.ndarray:
    return patch_features(load_data("sklearn-patches", "train").images)


def held_out_anchor(num_samples: int, resamples: int = 10, seed: int = 0) -> dict:
    """The distance of ``num_samples`` held-out real patches (drawn ``resamples`` times) to the training patches."""
    test = patch_features(load_data("sklearn-patches", "test").images)
    rng = np.random.default_rng(seed)
    draws = [
        frechet_distance(test[rng.permutation(len(test))[:num_samples]], train_features()) for _ in range(resamples)
    ]
    return {"held_out_frechet_mean": float(np.mean(draws)), "held_out_frechet_std": float(np.std(draws, ddof=1))}


def controls(num_samples: int, seed: int = 0) -> dict:
    """What the distance reads for uniform noise and for held-out patches blurred to 4×4 blocks of 8×8 pixels."""
    test = load_data("sklearn-patches", "test").images
    real = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:num_samples]]
    noise = torch.rand(num_samples, *real.shape[1:], generator=torch.Generator().manual_seed(seed))
    blurred = F.interpolate(F.avg_pool2d(real, 8), scale_factor=8, mode="nearest")
    return {
        "noise_frechet": frechet_distance(patch_features(noise), train_features()),
        "blurred_held_out_frechet": frechet_distance(patch_features(blurred), train_features()),
    }


def sample_patches(folder: Path, num_samples: int, steps: int, seed: int = 0, batch: int = 100) -> torch.Tensor:
    """``num_samples`` samples of the pipeline in ``folder`` with DDIM (η = 0) in ``steps`` steps, as the grids."""
    from pipelines.scheduling_ddim import DDIMScheduler

    pipe = load_pipeline(folder)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    generator, images = torch.Generator().manual_seed(seed), []
    for first in range(0, num_samples, batch):
        size = min(batch, num_samples - first)
        out = pipe(batch_size=size, generator=generator, num_inference_steps=steps, output_type="pt").images
        images.append(out.float().cpu())
    return torch.cat(images)


def side_by_side(samples: torch.Tensor, seed: int = 0):
    """64 samples (left) beside 64 held-out real patches drawn with ``seed`` (right), as one PIL image."""
    from PIL import Image

    from pipelines.image_grid import make_grid

    test = load_data("sklearn-patches", "test").images
    real = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:64]]
    left, right = make_grid(samples[:64], nrow=8), make_grid(real, nrow=8)
    image = Image.new("RGB", (left.width + right.width + 16, left.height), "white")
    image.paste(left.convert("RGB"), (0, 0))
    image.paste(right.convert("RGB"), (left.width + 16, 0))
    return image


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="a pipeline trained on sklearn-patches")
    parser.add_argument("--real", action="store_true", help="only the held-out anchor and the controls")
    parser.add_argument("--num_samples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=25, help="DDIM sampling steps")
    parser.add_argument("--grid", help="also save 64 samples beside 64 held-out real patches as this PNG")
    args = parser.parse_args(argv)
    if not args.real and not args.folder:
        parser.error("give a pipeline folder, or --real")
    result = {"num_samples": args.num_samples, **held_out_anchor(args.num_samples)}
    if args.real:
        result |= controls(args.num_samples)
    if args.folder:
        samples = sample_patches(Path(args.folder), args.num_samples, args.steps)
        result["model_frechet"] = frechet_distance(patch_features(samples), train_features())
        result["steps"] = args.steps
        (Path(args.folder) / "patch_quality.json").write_text(json.dumps(result, indent=2))
        if args.grid:
            side_by_side(samples).save(args.grid)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
