"""The Sample tab's stream: the digits come first; the trajectory pictures are decoded while sampling only when
a run is long enough for them to be seen, and otherwise after the digits (playground/tabs/sample.py)."""

from __future__ import annotations

import asyncio
import math

from PIL import Image

from playground.cancel import cancellable
from playground.tabs import sample as sample_tab

STEPS, IMAGES = 6, 2


def run(monkeypatch, interval: float) -> list[tuple]:
    """Every update the endpoint sends the page, as Gradio runs it (playground/cancel.py streams what it emits)."""
    monkeypatch.setattr(sample_tab, "STREAM_INTERVAL_S", interval)

    async def collect():
        return [
            update
            async for update in cancellable(sample_tab.sample_stream)(
                "pixel", "DDIM", STEPS, 0.0, 0, IMAGES, 0, 1.0, 1.0
            )
        ]

    return asyncio.run(collect())


def is_gallery(output) -> bool:
    return isinstance(output, list) and all(isinstance(image, Image.Image) for image in output)


def gif_frames(path: str) -> int:
    with Image.open(path) as animation:
        return animation.n_frames


def test_a_quick_run_shows_its_digits_before_decoding_its_trajectory(monkeypatch):
    outputs = run(monkeypatch, interval=1e9)
    assert len(outputs) == 2  # nothing streamed while sampling
    gallery, trajectory, _, gif = outputs[0]
    assert is_gallery(gallery) and len(gallery) == IMAGES
    assert not isinstance(trajectory, Image.Image) and not isinstance(gif, str)  # not decoded yet
    last_gallery, trajectory, status, gif = outputs[1]
    assert last_gallery == gallery and isinstance(trajectory, Image.Image) and f"{IMAGES} images" in status
    every = math.ceil(STEPS / sample_tab.STREAM_UPDATES)
    assert gif_frames(gif) == len(range(0, STEPS, every)) + (STEPS - 1) % every  # every kept step, and the last


def test_a_long_run_streams_its_pictures_and_the_gif_reuses_them(monkeypatch):
    outputs = run(monkeypatch, interval=0.0)  # every kept step is worth showing at once
    streamed = [frame for gallery, frame, _, _ in outputs if not is_gallery(gallery)]
    assert len(streamed) == gif_frames(outputs[-1][3]) >= 3
    assert outputs[-1][1] is streamed[-1]  # the last picture, not decoded a second time
    quick = run(monkeypatch, interval=1e9)
    assert quick[-1][1].tobytes() == streamed[-1].tobytes()  # the same picture either way
