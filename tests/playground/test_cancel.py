"""Cancel (playground/cancel.py): a cancelled or closed sampling/inpainting request stops within one denoising step,
and Gradio's cancel returns at once (the request's queue place is free). Tiny random models, UNet calls counted."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time

import pytest

from playground import models
from playground.cancel import cancellable
from playground.tabs import sample as sample_tab
from playground.tabs.inpaint import inpaint
from playground.tabs.sample import sample_stream
from tests.support.app_server import make_tiny_models

STEP_SECONDS = 0.02  # each UNet call is slowed to this, so that 200 steps take seconds, not milliseconds


@pytest.fixture(scope="module")
def tiny_pixel_model(tmp_path_factory):
    folder = make_tiny_models(tmp_path_factory.mktemp("cancel") / "models", keys=("pixel",))
    patch = pytest.MonkeyPatch()
    patch.setenv("PLAYGROUND_MODELS_DIR", str(folder))
    models._load.cache_clear()
    yield models.load("pixel")
    models._load.cache_clear()
    patch.undo()


@pytest.fixture
def unet_calls(tiny_pixel_model, monkeypatch):
    """The times the pixel DDPM's UNet was called (each call slowed to STEP_SECONDS)."""
    calls = []
    forward = tiny_pixel_model.unet.forward

    def counted(*args, **kwargs):
        time.sleep(STEP_SECONDS)
        calls.append(time.perf_counter())
        return forward(*args, **kwargs)

    monkeypatch.setattr(tiny_pixel_model.unet, "forward", counted)
    return calls


def calls_after(calls: list, moment: float, settle: float = 0.5) -> int:
    """UNet calls that began after ``moment`` (waiting ``settle`` seconds for a worker that would go on)."""
    time.sleep(settle)
    return sum(1 for t in calls if t - STEP_SECONDS > moment)


def cancel_after(coroutine_or_stream, calls: list, steps: int = 5) -> tuple[float, float]:
    """Run a cancellable endpoint as Gradio does and cancel its task (Gradio's /cancel) once ``steps`` UNet calls
    were made; returns (the moment of the cancel, seconds until the cancelled task returned)."""

    async def scenario():
        if inspect.isasyncgen(coroutine_or_stream):
            await coroutine_or_stream.__anext__()  # the first streamed frame
            task = asyncio.ensure_future(coroutine_or_stream.__anext__())
        else:
            task = asyncio.ensure_future(coroutine_or_stream)
        deadline = time.monotonic() + 120
        while len(calls) < steps and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        moment = time.perf_counter()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return moment, time.perf_counter() - moment

    return asyncio.run(scenario())


def test_the_cancellable_endpoint_keeps_the_handler_name_and_signature():
    endpoint = cancellable(sample_stream)
    assert endpoint.__name__ == "sample_stream" and inspect.isasyncgenfunction(endpoint)
    assert inspect.signature(endpoint) == inspect.signature(sample_stream)
    assert inspect.iscoroutinefunction(cancellable(inpaint))


def test_a_cancelled_sampling_request_returns_at_once_and_stops_within_one_step(unet_calls):
    stream = cancellable(sample_stream)("pixel", "DDIM", 200, 0.0, 0, 4, 0, 1.0, 1.0)
    moment, seconds = cancel_after(stream, unet_calls, steps=20)
    assert seconds < 1.0  # far less than the ≥ 3 s the remaining steps take: the place is free at once
    assert calls_after(unet_calls, moment) <= 1  # at most the step under way when the cancel came
    assert len(unet_calls) < 100


def test_a_closed_sample_stream_stops_its_worker_within_one_step(unet_calls, monkeypatch):
    monkeypatch.setattr(sample_tab, "STREAM_INTERVAL_S", 0.0)  # a picture at every kept step

    async def scenario():
        stream = cancellable(sample_stream)("pixel", "DDIM", 200, 0.0, 0, 4, 0, 1.0, 1.0)
        await stream.__anext__()  # the first frame
        moment = time.perf_counter()
        await stream.aclose()  # what Gradio does when the client went away
        return moment

    assert calls_after(unet_calls, asyncio.run(scenario())) <= 1


def test_a_cancelled_inpainting_request_stops_within_one_step(unet_calls):
    call = cancellable(inpaint)(7, None, "left half", "DDIM", 200, 1, 2, 0)
    moment, seconds = cancel_after(call, unet_calls)
    assert seconds < 1.0
    assert calls_after(unet_calls, moment) <= 1
