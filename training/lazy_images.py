"""A folder of images or a Hugging Face Hub data set, read through 🤗 ``datasets`` (``imagefolder`` for a folder, as
diffusers' ``--train_data_dir``; the Hub for ``--dataset_name``) and decoded lazily, image by image, in the
DataLoader's workers: a data set larger than memory trains.

Each image is converted to the data set's channel count, its shorter side resized to ``size`` and a square cropped,
at the centre or at a place drawn from (seed, batch number, image): a resumed run crops exactly as an uninterrupted
one. Nothing is held out unless ``validation_split`` asks; the counts found, used and held out are printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels → PIL mode
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F", "P")  # "P": a palette, grey unless its colours say otherwise
MAX_LABEL = 99_999  # the largest class label a folder name may give
HOLDOUT_SEED = 0  # the fixed shuffle that picks the held-out images


@dataclass
class LazyImages(torch.utils.data.Dataset):
    """Some rows of a 🤗 data set, decoded on demand. Indexed by (batch number, row): the batch number seeds a random
    crop; a negative one takes the centre (what a latent DDPM encodes once)."""

    dataset: object  # datasets.Dataset with the image column left undecoded ({"bytes", "path"})
    image_key: str
    rows: np.ndarray
    labels: torch.Tensor
    files: list[str] | None
    channels: int
    size: int
    crop: Literal["random", "center"] = "random"
    seed: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        batch_number, i = key
        row = int(self.rows[i])
        image = _square(self.decode(row), self.size, self._crop_draw(batch_number, row))
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(pixels)), int(self.labels[i])

    def decode(self, row: int):
        from .data import read_image

        cell = self.dataset[row][self.image_key]
        return read_image(cell.get("path") or f"row {row}", cell.get("bytes"), MODES[self.channels])

    def _crop_draw(self, batch_number: int, row: int) -> np.random.Generator | None:
        if self.crop == "center" or batch_number < 0:
            return None
        return np.random.default_rng([self.seed, batch_number, row])


def _square(image, size: int, draw: np.random.Generator | None):
    """The shorter side resized to ``size`` (bilinear), then a size × size crop: centred, or where ``draw`` says."""
    from PIL import Image

    width, height = image.size
    scale = size / min(width, height)
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    if new != image.size:
        image = image.resize(new, Image.BILINEAR)
    spare_x, spare_y = new[0] - size, new[1] - size
    if draw is None:
        left, top = round(spare_x / 2), round(spare_y / 2)
    else:
        left, top = int(draw.integers(0, spare_x + 1)), int(draw.integers(0, spare_y + 1))
    return image.crop((left, top, left + size, top + size))


def collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([image for image, _ in items]), torch.tensor([label for _, label in items])


def open_images(
    source: str,
    size: int | None,
    *,
    channels: int = 0,
    crop: Literal["random", "center"] = "random",
    validation_split: float = 0.0,
    seed: int = 0,
    dataset_config: str = "",
    cache_dir: str = "",
) -> tuple[LazyImages, LazyImages | None]:
    """The training images and the held-out ones (None when validation_split is 0) of a folder or "hf:<name>"."""
    hub = source.startswith("hf:")
    dataset = _hub(source[3:], dataset_config, cache_dir) if hub else _folder(Path(source), cache_dir)
    image_key = next((k for k, v in dataset.features.items() if type(v).__name__ == "Image"), None)
    if image_key is None:
        raise ValueError(f"data source {source!r} has no image column (features: {sorted(dataset.features)}).")
    if len(dataset) == 0:
        raise ValueError(f"data source {source!r} holds no images.")
    from datasets import Image as ImageFeature

    dataset = dataset.cast_column(image_key, ImageFeature(decode=False))
    files = None if hub else [cell["path"] for cell in dataset[image_key]]
    labels = _labels(dataset, source, files, hub)
    if files is not None or channels == 0 or size is None:
        channels, size = _scan(dataset, image_key, files, channels, size)
    found = len(dataset)
    held = min(found - 1, max(1, round(validation_split * found))) if validation_split > 0 else 0
    order = np.random.default_rng(HOLDOUT_SEED).permutation(found)
    parts = [np.sort(order[held:]), np.sort(order[:held])]
    if os.environ.get("RANK", "0") == "0":  # once, not once per process
        print(
            f"{source}: found {found} images ({channels} channel{'s' * (channels > 1)}, {size}×{size}); training on "
            f"{len(parts[0])}, holding out {held} (validation_split={validation_split})."
        )

    def part(rows: np.ndarray) -> LazyImages:
        kept = [files[r] for r in rows] if files is not None else None
        return LazyImages(dataset, image_key, rows, labels[rows], kept, channels, size, crop, seed)

    return part(parts[0]), part(parts[1]) if held else None


def _folder(path: Path, cache_dir: str):
    if not path.is_dir():
        raise ValueError(
            f"data source {str(path)!r} is neither a known name (mnist, sklearn-digits, sklearn-patches, hf:<name>) "
            "nor a folder."
        )
    from .data import IMAGE_SUFFIXES, read_image

    files = {p.absolute() for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    if not files:
        raise ValueError(f"image folder {str(path)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    import datasets

    datasets.disable_progress_bars()
    try:
        dataset = datasets.load_dataset("imagefolder", data_dir=str(path), split="train", cache_dir=cache_dir or None)
    except Exception as err:  # a folder datasets cannot index
        raise ValueError(f"cannot read image folder {str(path)!r}: {err}") from err
    indexed = {
        Path(cell["path"]).absolute() for cell in dataset.cast_column("image", datasets.Image(decode=False))["image"]
    }
    for missing in sorted(files - indexed):  # e.g. a dangling link, which imagefolder skips without a word
        read_image(str(missing), mode=None)
        raise ValueError(f"image folder {str(path)!r}: 🤗 datasets' imagefolder did not index {str(missing)!r}.")
    return dataset


def _hub(name: str, config: str, cache_dir: str):
    import datasets

    try:
        return datasets.load_dataset(name, config or None, split="train", cache_dir=cache_dir or None)
    except Exception as err:  # offline, unknown name, ...
        raise ValueError(f"cannot load Hugging Face dataset {name!r}: {err}") from err


def _labels(dataset, source: str, files: list[str] | None, hub: bool) -> torch.Tensor:
    """A Hub data set's label column as it is; a folder's subfolder named by an integer 0..MAX_LABEL gives its
    images that label, any other image is unlabelled (−1)."""
    if hub:
        key = next((k for k in ("label", "labels") if k in dataset.features), None)
        return torch.tensor(dataset[key] if key else [-1] * len(dataset), dtype=torch.long)
    labels, root = [], Path(source).resolve()
    for file in files:
        parent = Path(file).resolve().parent
        name = parent.name
        if parent == root or not (name.isascii() and name.isdecimal()):
            labels.append(-1)
        elif int(name) <= MAX_LABEL:
            labels.append(int(name))
        else:
            raise ValueError(f"image {file!r} lies in subfolder {name!r}: a class label must be 0..{MAX_LABEL}.")
    return torch.tensor(labels, dtype=torch.long)


def _scan(dataset, image_key: str, files: list[str] | None, channels: int, size: int | None) -> tuple[int, int]:
    """Every file's header (a folder: unreadable or oversized images are refused before training) or a Hub data
    set's first images: the channel count (3 if any image has colour) and the size (the largest shorter side)."""
    from .data import read_image

    colour, shorter = False, []
    cells = (
        ({"path": f, "bytes": None} for f in files)
        if files is not None
        else dataset.select(range(min(64, len(dataset))))[image_key]
    )
    for cell in cells:
        header = read_image(cell.get("path") or "a Hub image", cell.get("bytes"), None)
        colour = colour or header.mode not in GREY_MODES or (header.mode == "P" and _palette_has_colour(header))
        shorter.append(min(header.size))
    return channels or (3 if colour else 1), size or max(shorter)


def _palette_has_colour(image) -> bool:
    palette = np.asarray(image.getpalette() or [], dtype=np.int64).reshape(-1, 3)
    return bool((palette != palette[:, :1]).any())
