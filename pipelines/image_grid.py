"""Tile a batch of images into one picture (sample grids, frame strips)."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image


def make_grid(
    images: torch.Tensor | np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0
) -> Image.Image:
    """(N, C, H, W) or (N, H, W, C) images in [0, 1] → one PIL image with ``nrow`` images per row."""
    array = (
        images.detach().float().cpu().numpy()
        if isinstance(images, torch.Tensor)
        else np.asarray(images, dtype=np.float32)
    )
    if array.ndim != 4:
        raise ValueError(f"images must be 4-D (N, C, H, W) or (N, H, W, C), got shape {array.shape}.")
    if array.shape[1] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(0, 2, 3, 1)  # to (N, H, W, C)
    n, h, w, c = array.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), pad_value, dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[top : top + h, left : left + w] = array[i]
    grid = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(grid[..., 0] if c == 1 else grid)
