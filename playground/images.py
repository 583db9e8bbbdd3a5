"""Pictures for the page: digits from the test set, uploads or drawings → 28×28; grids, strips and GIFs."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from gradio.utils import get_upload_folder
from PIL import Image

from pipelines.image_grid import make_grid

from .limits import check_picture
from .models import test_digits
from .validation import MAX_UPLOAD_SIDE, check_int

SIZE = 28  # MNIST
DISPLAY_SCALE = 4  # 28 px digits are shown at 112 px (nearest neighbour keeps the pixels crisp)
WORK_SIDE = 560  # larger pictures are shrunk to this before they are processed (twice the 280 px canvas)


def upscale(image: Image.Image, scale: int = DISPLAY_SCALE) -> Image.Image:
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def grid(images: torch.Tensor, nrow: int | None = None, scale: int = DISPLAY_SCALE) -> Image.Image:
    """(N, 1, H, W) in [0, 1] → one upscaled PIL grid."""
    return upscale(make_grid(images.float().clamp(0, 1), nrow=nrow), scale)


def to_pils(images: torch.Tensor, scale: int = DISPLAY_SCALE) -> list[Image.Image]:
    """(N, 1, H, W) in [0, 1] → upscaled grayscale PIL images."""
    arrays = (images.float().clamp(0, 1)[:, 0].cpu().numpy() * 255).round().astype(np.uint8)
    return [upscale(Image.fromarray(a), scale) for a in arrays]


def gif_bytes(frames: list[Image.Image], duration_ms: int = 120) -> bytes:
    """The frames as a looping GIF, in memory: what a cached result keeps (a file of the swept cache would go)."""
    if not frames:
        raise gr.Error("nothing to animate.")
    frames = [f if f.mode == "L" else f.convert("P", palette=Image.ADAPTIVE) for f in frames]  # L needs no palette
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return buffer.getvalue()


def gif_file(data: bytes) -> str:
    """A fresh file of Gradio's cache folder holding ``data``; returns its path (the page offers it for download).

    Written for every answer, never kept: Gradio serves it without a copy and ``CacheSweeper``
    (playground/server.py) deletes it with the rest of the cache, so the disk stays flat and no cached result names
    a file that the sweep has removed."""
    folder = Path(get_upload_folder()) / "playground-gifs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.gif"
    path.write_bytes(data)
    return str(path)


def save_gif(frames: list[Image.Image], duration_ms: int = 120) -> str:
    """Write the frames as a looping GIF into a fresh cache file (:func:`gif_file`); returns its path."""
    return gif_file(gif_bytes(frames, duration_ms))


def test_digit(index) -> tuple[torch.Tensor, int]:
    """Test digit number ``index`` as (1, 1, 28, 28) in [0, 1], and its label."""
    data = test_digits()
    index = check_int("test digit index", index, 0, len(data) - 1)
    return data.images[index : index + 1].clone(), int(data.labels[index])


def editor_array(value) -> np.ndarray | None:
    """The picture of an ImageEditor/Sketchpad value (dict with composite/background/layers), an array or a path."""
    if value is None:
        return None
    if isinstance(value, dict):
        picture = value.get("composite")
        if picture is None:
            picture = value.get("background")
        value = picture
    if value is None:
        return None
    if isinstance(value, str):
        name = Path(value).name
        check_picture(value, "the drawing/upload", name)  # its size, before it is decoded
        try:
            value = Image.open(value)
            value.load()  # read the whole file now, so a truncated one fails here with a clear message
        except OSError:
            raise gr.Error(f"the uploaded file {name!r} is not a readable image.") from None
    if isinstance(value, Image.Image):
        value = np.asarray(value.convert("RGBA"))
    array = np.asarray(value)
    if array.ndim not in (2, 3) or array.size == 0:
        raise gr.Error(f"the image must be 2-D (gray) or 3-D (colour), got shape {array.shape}.")
    if max(array.shape[:2]) > MAX_UPLOAD_SIDE:
        raise gr.Error(
            f"the image must be at most {MAX_UPLOAD_SIDE}×{MAX_UPLOAD_SIDE} pixels, got {array.shape[1]}×{array.shape[0]}."
        )
    return shrunk(array)


def shrunk(array: np.ndarray) -> np.ndarray:
    """A large 8-bit picture shrunk (box filter, aspect kept) to WORK_SIDE pixels on its longer side before any
    float copy of it is made (every digit ends 28×28, and a 2048² RGBA picture is 64 MB per float32 copy)."""
    colours = array.ndim == 2 or array.shape[-1] in (3, 4)
    if array.dtype != np.uint8 or not colours or max(array.shape[:2]) <= WORK_SIDE:
        return array
    image = Image.fromarray(array)
    image.thumbnail((WORK_SIDE, WORK_SIDE), Image.BOX)
    return np.asarray(image)


def to_gray(array: np.ndarray) -> np.ndarray:
    """Any picture → float gray in [0, 1]; transparent pixels count as background."""
    array = array.astype(np.float32)
    if array.max() > 1.0:
        array = array / 255.0
    if array.ndim == 2:
        return array
    if array.shape[-1] == 4:  # RGBA: strokes on a transparent canvas
        alpha = array[..., 3]
        if alpha.min() < 0.99:  # composite the strokes over white paper
            rgb = array[..., :3] * alpha[..., None] + (1 - alpha[..., None])
            return rgb.mean(-1)
        array = array[..., :3]
    return array[..., :3].mean(-1) if array.shape[-1] >= 3 else array[..., 0]


def to_mnist(array: np.ndarray) -> torch.Tensor:
    """A drawing/upload → a white-on-black 28×28 digit centred like MNIST's (20×20 box), (1, 1, 28, 28)."""
    gray = to_gray(array)
    if gray.mean() > 0.5:  # dark ink on light paper → MNIST's light ink on black
        gray = 1.0 - gray
    if gray.shape == (SIZE, SIZE):
        return torch.from_numpy(gray.clip(0, 1)).float()[None, None]
    ink = gray > 0.1
    if not ink.any():
        raise gr.Error("the drawing/upload is empty: draw a digit (or clear it to use the test digit).")
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    crop = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS
    )
    canvas = Image.new("L", (SIZE, SIZE), 0)
    canvas.paste(small, ((SIZE - small.width) // 2, (SIZE - small.height) // 2))
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)[None, None]


def has_drawing(value) -> bool:
    """Whether an editor value holds a picture with any content (a blank canvas does not count)."""
    array = editor_array(value)
    if array is None:
        return False
    gray = to_gray(array)
    return bool(gray.max() - gray.min() > 0.05)


def input_digit(test_index, drawing) -> tuple[torch.Tensor, str]:
    """The drawn/uploaded digit when there is one, else test digit ``test_index``; and a caption."""
    if has_drawing(drawing):
        return to_mnist(editor_array(drawing)), "your drawing/upload"
    image, label = test_digit(test_index)
    return image, f"test digit #{int(test_index)} (a {label})"
