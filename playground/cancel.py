"""Cancellable, streamed handlers: the one home of stopping heavy work and of streaming its progress to the page.

Gradio runs a sync handler, and each ``next()`` of a sync generator, in a worker thread it cannot interrupt: a
cancelled sampling job held its queue place and a CPU until its next streamed frame (figures: docs/limits.md).
``cancellable(handler)`` gives Gradio an async handler instead. It runs the whole of ``handler(..., stop=stop)`` in
one worker thread that Gradio's cancel abandons at once (the place in the queue is free immediately), and sends the
page every update the handler yields. A handler that also takes ``emit`` can send an update from inside a blocking
call, e.g. a picture from a pipeline's ``callback_on_step_end`` while the pipeline runs.

``stop`` (a ``threading.Event``) is set whenever the request ends early: Gradio's cancel (the page's Stop button,
``gradio_client``'s ``job.cancel()``), a closed stream (a client that went away), or an error. The handler passes
:func:`stop_callback` (or calls :func:`interrupt_if_stopped` in its own ``callback_on_step_end``), which sets the
pipeline's ``_interrupt`` so that its loop ends after the current step.
"""

from __future__ import annotations

import asyncio
import contextlib
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


def with_stop(handler, args: tuple, kwargs: dict, stop: threading.Event, emit=None) -> functools.partial:
    """``handler`` bound to its arguments with ``stop`` (and ``emit``, if it takes one) set."""
    signature = inspect.signature(handler)
    bound = signature.bind(*args, **kwargs)
    bound.arguments["stop"] = stop
    if emit is not None and "emit" in signature.parameters:
        bound.arguments["emit"] = emit
    return functools.partial(handler, *bound.args, **bound.kwargs)


def cancellable(handler):
    """An async Gradio handler for ``handler`` (a function or a generator function taking ``stop=``, and maybe
    ``emit=``); its name, signature and docstring stay ``handler``'s, so the endpoint's API is unchanged."""
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        async def stream(*args, **kwargs):
            loop, stop, updates = asyncio.get_running_loop(), threading.Event(), asyncio.Queue()
            taken = threading.Semaphore(0)  # the page side took a yielded update and asks for the next

            def send(update, yielded: bool) -> None:  # in the worker: hand one update to the page's side
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                    loop.call_soon_threadsafe(updates.put_nowait, (update, yielded))

            def run() -> None:  # in the worker: the whole handler, each update sent as it comes
                try:
                    for update in with_stop(handler, args, kwargs, stop, lambda u: send(u, False))():
                        if stop.is_set():
                            return
                        send(update, True)
                        # as a generator does, go on only once the page took it: what comes next (decoding the
                        # trajectory) must not take the CPU from sending this (the digits)
                        while not taken.acquire(timeout=0.1):
                            if stop.is_set():
                                return
                finally:
                    send(_DONE, False)

            worker = asyncio.ensure_future(_in_thread(run))
            try:
                while (item := await updates.get())[0] is not _DONE:
                    update, yielded = item
                    yield update
                    if yielded:
                        taken.release()
                await worker  # the handler's error, if it failed
            finally:  # finished, failed, cancelled or closed: the worker stops after its current step
                stop.set()
                worker.cancel()

        return stream

    @functools.wraps(handler)
    async def call(*args, **kwargs):
        stop = threading.Event()
        try:
            return await _in_thread(with_stop(handler, args, kwargs, stop))
        finally:
            stop.set()

    return call
