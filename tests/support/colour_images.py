"""A folder of real colour images (scikit-learn's sample-photo patches) and a tiny network's flags: the own-images
training tests' inputs, shared with the multi-process test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.data import sklearn_patches

TINY = ["--block_out_channels", "8,16", "--attention_levels", "", "--layers_per_block", "1", "--norm_num_groups", "4"]
TINY += ["--ddpm_num_steps", "50", "--ddpm_num_inference_steps", "2", "--num_threads", "1", "--lr_warmup_steps", "1"]


def colour_folder(folder: Path, count: int = 20, size: int = 32, nested: bool = False) -> Path:
    """``count`` real colour patches as PNGs (some 40×36, cropped back to ``size`` by the run)."""
    patches = sklearn_patches("train").images[:: 1350 // count][:count]
    folder.mkdir(parents=True)
    for i, patch in enumerate(patches):
        image = Image.fromarray((patch.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        if i % 3 == 0:
            image = image.resize((size + 8, size + 4))
        target = folder / (f"{i % 2}" if nested else "") / f"{i:03d}.png"
        target.parent.mkdir(exist_ok=True)
        image.save(target)
    return folder
