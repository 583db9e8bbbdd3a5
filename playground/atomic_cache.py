"""Gradio's image cache written atomically, so concurrent identical answers never serve a half-written file.

Gradio saves every output picture under a folder named by the hash of its bytes and rewrites the file each time
(``processing_utils.save_pil_to_cache``): two users getting the same picture at once (same seed, same test
digit) made one download read the file while the other request truncated it — an empty or cut image (the load
test's failures: docs/limits.md). Here a picture whose hashed file already exists is not rewritten (same hash, same
bytes), and a new one is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

from gradio import processing_utils


def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    if path.exists():  # handed out again: its access time tells the cache sweep (playground/server.py) it is in use
        with contextlib.suppress(OSError):
            os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))
    else:
        temporary = path.with_name(f".{uuid.uuid4().hex}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)  # atomic: a reader sees the old file or the whole new one
    return str(path)


def make_gradio_cache_writes_atomic() -> None:
    """Install :func:`save_pil_to_cache` in place of Gradio's (its callers look it up on the module)."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
