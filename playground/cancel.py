"""Cancellable handlers: heavy work stops within one denoising step of a cancel, and frees its place at once.

Gradio runs a sync handler, and each ``next()`` of a sync generator, in a worker thread it cannot interrupt: a
cancelled sampling job held its queue place and a CPU until its next streamed frame (figures: docs/limits.md).
``cancellable(handler)`` gives Gradio an async handler instead. It runs ``handler(..., stop=stop)`` in a thread
that Gradio's cancel abandons at once (the place in the queue is free immediately), and sets the
``threading.Event`` ``stop`` whenever the request ends early: Gradio's cancel (the page's Stop button,
``gradio_client``'s ``job.cancel()``), a closed generator (a client that went away), or an error. The handler
passes :func:`stop_callback` (or checks ``stop`` in its own ``callback_on_step_end``), which sets the pipeline's
``_interrupt`` so its loop ends after the current step.
"""

from __future__ import annotations

import functools
import inspect
import threading

import anyio.to_thread

_DONE = object()


def stop_callback(stop: threading.Event | None):
    """A ``callback_on_step_end`` that ends the pipeline's loop after the step during which ``stop`` was set."""

    def on_step_end(pipe, step_index, timestep, callback_kwargs):
        interrupt_if_stopped(pipe, stop)
        return callback_kwargs

    return on_step_end


def interrupt_if_stopped(pipe, stop: threading.Event | None) -> bool:
    """Set ``pipe._interrupt`` (the loop then stops after this step) when ``stop`` is set; returns whether it is."""
    if stop is not None and stop.is_set():
        pipe._interrupt = True
        return True
    return False


async def _in_thread(function, *args):
    """``function(*args)`` in a worker thread that a cancel abandons at once (the thread sees ``stop`` and ends)."""
    return await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=True)


def with_stop(handler, args: tuple, kwargs: dict, stop: threading.Event) -> functools.partial:
    """``handler`` bound to its arguments with ``stop`` set (Gradio passes the defaults of all parameters too)."""
    bound = inspect.signature(handler).bind(*args, **kwargs)
    bound.arguments["stop"] = stop
    return functools.partial(handler, *bound.args, **bound.kwargs)


def cancellable(handler):
    """An async Gradio handler for ``handler`` (a function or a generator function taking ``stop=``); its name,
    signature and docstring stay ``handler``'s, so the endpoint's API is unchanged."""
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        async def stream(*args, **kwargs):
            stop = threading.Event()
            updates = with_stop(handler, args, kwargs, stop)()
            try:
                while (update := await _in_thread(next, updates, _DONE)) is not _DONE:
                    yield update
            finally:  # finished, failed, cancelled or closed: the worker stops after its current step
                stop.set()

        return stream

    @functools.wraps(handler)
    async def call(*args, **kwargs):
        stop = threading.Event()
        try:
            return await _in_thread(with_stop(handler, args, kwargs, stop))
        finally:
            stop.set()

    return call
