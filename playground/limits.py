"""Bounds on what one visitor can make the server hold: pictures refused before they are decoded, editor layers,
canvas blobs; and the one concurrency group that all heavy work shares.

Gradio decodes every image-editor input (background, composite and each layer, to RGBA arrays) before the app's
handlers see it: a PNG of tens of KB can decode to gigabytes of arrays (docs/limits.md), and the editor's
``accept_blobs`` call kept any bytes (and a layer list as long as any index asked for) until an event used them.
:func:`bound_image_inputs` changes ``gr.ImageEditor`` (so also ``gr.Sketchpad``) and ``gr.Image`` in place:

- every picture's header is read first (PIL reads the size without decoding the pixels) and a picture of more than
  ``MAX_IMAGE_PIXELS`` pixels, a side over ``MAX_IMAGE_SIDE``, an unreadable file or more than ``MAX_LAYERS`` layers
  is refused with a gr.Error naming the input, before anything is decoded;
- canvas blobs live in one :class:`BlobStore` shared by all editors: at most ``MAX_LAYERS`` layers per canvas,
  ``BLOB_BUDGET_BYTES`` in all (the oldest canvas is dropped first) and ``BLOB_LIFETIME_S`` seconds each;
- ``PIL.Image.MAX_IMAGE_PIXELS`` is lowered to the same bound, for any other place that opens a picture.

The classes are changed rather than subclassed: Gradio makes a fresh ``gr.ImageEditor`` per session when an event
updates one, and a subclass defined here would make Gradio write a ``.pyi`` file next to this module.
"""

from __future__ import annotations

import base64
import functools
import io
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import fastapi
import gradio as gr
from gradio.components.base import server
from gradio.components.image_editor import EditorDataBlobs
from PIL import Image

from .validation import MAX_UPLOAD_SIDE

MAX_IMAGE_SIDE = MAX_UPLOAD_SIDE  # pixels, each side of any picture sent to the app
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE**2  # 4.2 MP: 16 MiB once decoded to RGBA
MAX_LAYERS = 4  # editor layers per picture (the page makes one)
MAX_UPLOAD_BYTES = 20 * 2**20  # one uploaded file (Gradio's max_file_size); a 2048² RGBA PNG of noise is 16.8 MB
BLOB_BUDGET_BYTES = 64 * 2**20  # canvas blobs held for all visitors together
BLOB_LIFETIME_S = 120.0  # the page sends the blobs, then at once the event that uses them
BLOB_KINDS = ("background", "composite", "layer")
HEAVY = "heavy"  # the concurrency group of every sampling/inpainting/training event (one shared limit)
IMAGES = "images"  # the concurrency group of the other events that take a picture (playground/server.py)
LAB_TRAIN = "lab-train"  # the lab's trainings: one at a time


def picture_size(source: str | bytes) -> tuple[int, int]:
    """(width, height) of a picture file or its bytes, read from the header only: OSError if it is not a picture,
    PIL's DecompressionBombError if it has more than twice ``Image.MAX_IMAGE_PIXELS`` pixels."""
    try:
        with Image.open(source if isinstance(source, str) else io.BytesIO(source)) as image:
            return image.size
    except (ValueError, SyntaxError) as error:  # what some of PIL's header parsers raise on garbage
        raise OSError(str(error)) from None


def check_picture(source: str | bytes, field: str, name: str) -> None:
    """A gr.Error naming ``field`` and the file ``name`` unless ``source`` is a picture within the size bounds."""
    too_large = f"{field}: the image {name!r} is {{}} pixels; at most {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} are accepted."
    try:
        width, height = picture_size(source)
    except OSError:
        raise gr.Error(
            f"{field}: the uploaded file {name!r} is not a readable image (PNG, JPEG, GIF, WebP, …)."
        ) from None
    except Image.DecompressionBombError:
        raise gr.Error(too_large.format(f"more than {2 * Image.MAX_IMAGE_PIXELS:,}")) from None
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise gr.Error(too_large.format(f"{width}×{height}"))


class BlobStore:
    """The editors' canvas blobs, from ``accept_blobs`` until the event that uses them (Gradio pops them then).

    Holds at most ``budget`` bytes in all: a new blob drops the oldest canvases first; a canvas older than
    ``lifetime`` seconds is dropped unread. Used by Gradio's ``ImageEditor.preprocess`` through ``get``, ``in`` and
    ``pop``; filled by :meth:`put`. Thread-safe (component-server calls run in worker threads). The keys of the
    last ``MAX_DROPPED`` canvases dropped unread are kept (:meth:`was_dropped`): Gradio reads a missing canvas as an
    empty one, and the app would have drawn its test digit in place of the visitor's drawing.
    """

    MAX_DROPPED = 4096

    def __init__(self, budget: int, lifetime: float, clock=time.monotonic):
        self.budget, self.lifetime, self.clock = budget, lifetime, clock
        self._canvases: OrderedDict[str, tuple[float, EditorDataBlobs]] = OrderedDict()
        self._dropped: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def _forget(self, key: str) -> None:
        """Drop canvas ``key`` unread, remembering that it was (lock held)."""
        del self._canvases[key]
        self._dropped[key] = None
        while len(self._dropped) > self.MAX_DROPPED:
            self._dropped.popitem(last=False)

    def was_dropped(self, key) -> bool:
        """Whether canvas ``key`` was dropped before any event read it (the budget or its lifetime)."""
        with self._lock:
            return key in self._dropped

    @staticmethod
    def size_of(blobs: EditorDataBlobs) -> int:
        return sum(len(b) for b in (blobs.background, blobs.composite, *blobs.layers) if b is not None)

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self.size_of(blobs) for _, blobs in self._canvases.values())

    def _drop_expired(self) -> None:
        now = self.clock()
        for key in [k for k, (born, _) in self._canvases.items() if now - born > self.lifetime]:
            self._forget(key)

    def put(self, key: str, kind: str, index: int | None, data: bytes) -> None:
        """Store one blob of canvas ``key``: its background, composite or layer ``index`` (< MAX_LAYERS)."""
        if len(data) > self.budget:
            raise ValueError(f"a blob of {len(data)} bytes exceeds the budget of {self.budget}.")
        with self._lock:
            self._drop_expired()
            born, blobs = self._canvases.pop(key, (self.clock(), None))
            blobs = blobs or EditorDataBlobs(background=None, layers=[], composite=None)
            if kind == "layer":
                blobs.layers.extend([None] * (index + 1 - len(blobs.layers)))
                blobs.layers[index] = data
            else:
                setattr(blobs, kind, data)
            total = sum(self.size_of(b) for _, b in self._canvases.values()) + self.size_of(blobs)
            while total > self.budget and self._canvases:  # the oldest canvases go first
                oldest = next(iter(self._canvases))
                total -= self.size_of(self._canvases[oldest][1])
                self._forget(oldest)
            self._canvases[key] = (born, blobs)
            if total > self.budget:  # this canvas alone is over the budget
                self._forget(key)
                raise ValueError(f"a canvas of {total} bytes exceeds the budget of {self.budget}.")

    def get(self, key, default=None):
        with self._lock:
            self._drop_expired()
            entry = self._canvases.get(key)
        return default if entry is None else entry[1]

    def __contains__(self, key) -> bool:
        return self.get(key) is not None

    def pop(self, key, default=None):
        with self._lock:
            entry = self._canvases.pop(key, None)
        return default if entry is None else entry[1]

    def __len__(self) -> int:
        with self._lock:
            self._drop_expired()
            return len(self._canvases)


BLOBS = BlobStore(BLOB_BUDGET_BYTES, BLOB_LIFETIME_S)


def field_name(component) -> str:
    label = getattr(component, "label", None)
    return f"the {type(component).__name__} {str(label)!r:.80}" if label else f"the {type(component).__name__}"


def editor_sources(payload) -> list[tuple[str | bytes, str]]:
    """(file path or bytes, a name to show) of every picture in an ImageEditor payload (its blobs when it has an id)."""
    if payload.id is not None:
        blobs = BLOBS.get(payload.id)
        pictures = [] if blobs is None else [blobs.background, blobs.composite, *blobs.layers]
        return [(p, "canvas") for p in pictures if p is not None]
    pictures = [payload.background, payload.composite, *payload.layers]
    return [(p.path, Path(p.orig_name or p.path).name) for p in pictures if p is not None and p.path]


def image_sources(payload) -> list[tuple[str | bytes, str]]:
    """The picture of a gr.Image payload: an uploaded file or a base64 data URL."""
    if payload.url and payload.url.startswith("data:"):
        try:
            return [(base64.b64decode(payload.url.split(",", 1)[-1], validate=False), "data URL")]
        except ValueError:
            return [(b"", "data URL")]
    return [(payload.path, Path(payload.orig_name or payload.path).name)] if payload.path else []


def count_layers(payload) -> int:
    if getattr(payload, "id", None) is not None:
        blobs = BLOBS.get(payload.id)
        return 0 if blobs is None else len(blobs.layers)
    return len(getattr(payload, "layers", None) or [])


def bounded(preprocess, sources):
    """``preprocess`` of an image component, preceded by the checks (layers, each picture's header) and with any
    decoding failure turned into a gr.Error naming the input (Gradio's own message shows server paths)."""

    @functools.wraps(preprocess)
    def checked(self, payload):
        if payload is None:
            return preprocess(self, payload)
        field = field_name(self)
        if getattr(payload, "id", None) is not None and BLOBS.was_dropped(payload.id):
            raise gr.Error(
                f"{field}: your drawing was dropped before it could be used (the server keeps "
                f"{BLOB_BUDGET_BYTES // 2**20} MB of drawings for all visitors, each for {BLOB_LIFETIME_S:.0f} s): "
                "send it again."
            )
        if count_layers(payload) > MAX_LAYERS:
            raise gr.Error(f"{field}: at most {MAX_LAYERS} layers are accepted, got {count_layers(payload)}.")
        for source, name in sources(payload):
            check_picture(source, field, name)
        try:
            return preprocess(self, payload)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise gr.Error(f"{field}: the picture could not be decoded ({type(error).__name__}).") from None

    checked.bounded = True
    return checked


def http_error(status: int, message: str) -> fastapi.HTTPException:
    return fastapi.HTTPException(status_code=status, detail=message)


@server
def accept_blobs(self, data):
    """Gradio's ``ImageEditor.accept_blobs`` with its inputs checked: a known kind, a layer index below MAX_LAYERS,
    one picture within the size bounds; stored in the shared bounded :data:`BLOBS` (HTTP 4xx otherwise)."""
    fields, files = data.data, data.files
    kind, key, index = fields.get("type"), fields.get("id"), fields.get("index")
    if kind not in BLOB_KINDS:
        raise http_error(400, f"type must be one of {list(BLOB_KINDS)}.")
    if not isinstance(key, str) or not 0 < len(key) <= 64:
        raise http_error(400, "id must be a string of 1 to 64 characters.")
    if kind == "layer":
        digits = isinstance(index, str) and index.isascii() and index.isdigit() and len(index) <= 3
        if not (digits and int(index) < MAX_LAYERS):
            raise http_error(400, f"a layer index must be a whole number in [0, {MAX_LAYERS - 1}].")
        index = int(index)
    if len(files) != 1:
        raise http_error(400, "send exactly one file.")
    blob = files[0][1]
    try:
        check_picture(blob, "the canvas", kind)
        BLOBS.put(key, kind, index if kind == "layer" else None, blob)
    except gr.Error as error:
        raise http_error(400, error.message) from None
    except ValueError as error:
        raise http_error(413, str(error)) from None


def bound_image_inputs() -> None:
    """Install the bounds on gr.ImageEditor (with its templates gr.Sketchpad, gr.ImageMask, gr.Paint) and gr.Image;
    idempotent."""
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # PIL refuses larger pictures anywhere (twice this raises)
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # check_picture says it, once
    editor, image = gr.ImageEditor, gr.Image
    if not getattr(editor.preprocess, "bounded", False):
        editor.preprocess = bounded(editor.preprocess, editor_sources)
    if not getattr(image.preprocess, "bounded", False):
        image.preprocess = bounded(image.preprocess, image_sources)
    editor.accept_blobs = accept_blobs
    # Gradio's __init__ gives each editor its own unbounded dict; this data descriptor replaces it with the store
    editor.blob_storage = property(lambda self: BLOBS, lambda self, value: None)
