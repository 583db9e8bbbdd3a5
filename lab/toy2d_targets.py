"""The 2-D lab's choices: toy target distributions (presets or a drawing), the β schedules it offers and its range of T.

Light on purpose (numpy, torch and the project's schedules; no diffusers, sklearn imported when a preset is first
drawn): the app's page is built from these before any model code is imported. The model and its training loop are
in ``lab/toy2d.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from pipelines import schedules

MIN_T, MAX_T = 2, 1000
MIN_DISTINCT_POINTS = 10  # fewer distinct points is no distribution to learn
CLIP_RANGE = 5.0  # standardised targets lie within about ±3
REFERENCE_T = 1000  # the T the default β range (1e-4 … 0.02) was made for (Ho et al. 2020)


def _datasets():
    """sklearn.datasets, imported on first use (a second and more to import; the page does not need it)."""
    from sklearn import datasets

    return datasets


def _eight_gaussians(n: int, seed: int) -> np.ndarray:
    angles = np.arange(8) * 2 * np.pi / 8
    centers = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 4
    points, _ = _datasets().make_blobs(n, centers=centers, cluster_std=0.4, random_state=seed)
    return points


def _moons(n: int, seed: int) -> np.ndarray:
    return _datasets().make_moons(n, noise=0.06, random_state=seed)[0]


def _swiss_roll(n: int, seed: int) -> np.ndarray:
    return _datasets().make_swiss_roll(n, noise=0.4, random_state=seed)[0][:, [0, 2]]  # the roll seen end-on


def _rings(n: int, seed: int) -> np.ndarray:
    return _datasets().make_circles(n, noise=0.04, factor=0.5, random_state=seed)[0]


TARGETS: dict[str, Callable[[int, int], np.ndarray]] = {
    "gaussians": _eight_gaussians,
    "moons": _moons,
    "swiss_roll": _swiss_roll,
    "rings": _rings,
}
TARGET_LABELS = {
    "gaussians": "8 Gaussians",
    "moons": "two moons",
    "swiss_roll": "Swiss roll",
    "rings": "rings",
    "drawn": "your drawing",
}


def standardize(points: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit overall standard deviation: x ← (x − mean) / √(mean ‖x − mean‖² / 2)."""
    centred = points - points.mean(dim=0)
    return centred / centred.square().sum(dim=1).mean().div(2).sqrt()


def check_points(points: torch.Tensor, name: str = "points") -> torch.Tensor:
    """Raise ValueError unless ``points`` is a finite (n, 2) set with at least MIN_DISTINCT_POINTS distinct points."""
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != 2:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"{name} must be a tensor of shape (n, 2), got {shape}.")
    if not torch.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    distinct = len(torch.unique(points, dim=0))
    if distinct < MIN_DISTINCT_POINTS:
        raise ValueError(
            f"{name} holds {distinct} distinct point(s); a distribution needs at least {MIN_DISTINCT_POINTS} "
            "(draw a longer stroke or pick a preset target)."
        )
    return points


def target_points(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` standardised points of a preset target (one of TARGETS)."""
    if not isinstance(name, str) or name not in TARGETS:
        raise ValueError(f"target must be one of {tuple(TARGETS)}, got {name!r}.")
    return standardize(torch.from_numpy(TARGETS[name](n, seed)).float())


MAX_DRAWING_SIDE = 512  # a drawing is pooled to at most this many cells a side before its points are taken


def painted_pixels(image: np.ndarray) -> np.ndarray:
    """Where a canvas is painted: opaque and dark pixels (the lab's brush is black), as a boolean (H, W) mask."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"drawing must be an RGB or RGBA image, got shape {array.shape}.")
    dark = array[..., :3].astype(np.float32).mean(axis=2) < 128
    return dark & (array[..., 3] > 127) if array.shape[2] == 4 else dark


def painted_cells(image: np.ndarray) -> np.ndarray:
    """:func:`painted_pixels`, pooled to at most ``MAX_DRAWING_SIDE`` cells a side (a cell is painted where any of
    its pixels is): a huge canvas then costs what a 512² one does, and a smaller one is left as it is."""
    mask = painted_pixels(image)
    k = math.ceil(max(mask.shape) / MAX_DRAWING_SIDE)
    if k == 1:
        return mask
    height, width = mask.shape
    padded = np.zeros((-(-height // k) * k, -(-width // k) * k), dtype=bool)
    padded[:height, :width] = mask
    return padded.reshape(padded.shape[0] // k, k, padded.shape[1] // k, k).any(axis=(1, 3))


def points_from_drawing(image: np.ndarray, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` standardised points spread over the painted cells of a canvas (:func:`painted_cells`), y pointing up:
    each a painted cell drawn uniformly, plus uniform jitter within the cell."""
    rows, cols = np.nonzero(painted_cells(image))
    if len(rows) == 0:
        raise ValueError("drawing is empty: draw the shape to learn on the canvas, or pick a preset target.")
    pixels = torch.from_numpy(np.stack([cols, -rows], axis=1)).float()  # (x, y) with y up
    check_points(pixels, "drawing")
    generator = torch.Generator().manual_seed(seed)
    chosen = pixels[torch.randint(len(pixels), (n,), generator=generator)]
    return standardize(chosen + torch.rand(n, 2, generator=generator))


def scaled_beta_range(num_train_timesteps: int) -> tuple[float, float]:
    """(β_start, β_end) = (1000/T)·(10⁻⁴, 0.02): any T then ends near ᾱ_T ≈ 0, like T = 1000 does.

    The linear-schedule scaling of Nichol & Dhariwal 2021 (https://arxiv.org/abs/2102.09672), improved-diffusion's
    ``get_named_beta_schedule``; the cosine schedule ignores it.
    """
    scale = REFERENCE_T / num_train_timesteps
    return 1e-4 * scale, min(0.02 * scale, 0.999)


def ends_in_noise(beta_schedule: str) -> bool:
    """Whether z_T is (nearly) pure noise under this schedule: √ᾱ_T < 0.03 at the reference T. Sampling starts from
    N(0, I), so a schedule that leaves signal in z_T (diffusers' Laplace schedule keeps √ᾱ_T ≈ 0.18) cannot be
    learned from it; the lab does not offer those."""
    betas = schedules.make_betas(beta_schedule, REFERENCE_T, *scaled_beta_range(REFERENCE_T))
    return bool(schedules.alphas_cumprod(betas)[-1].sqrt() < 0.03)  # √ᾱ_T: what is left of x in z_T


SCHEDULES = tuple(name for name in schedules.BETA_SCHEDULES if ends_in_noise(name))  # the lab's choices
