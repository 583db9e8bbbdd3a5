"""The app server's bounds and manners: upload and request sizes, cache cleanup, error messages and logs.

``harden()`` (called once by app.py) installs the picture bounds (playground/limits.py), keeps server paths out of
error messages and logs a user's error (gr.Error) as one line instead of a traceback. ``launch_options()`` are
the arguments of ``demo.launch`` that bound each request: ``max_file_size`` per uploaded file, FastAPI's
``max_body_size`` per request body (an upload of many files, a component-server call), and a 4xx with a clear
message for the malformed requests that Gradio answered with HTTP 500.

``CacheSweeper`` deletes every file of the app's Gradio cache folder (uploads, served pictures and GIFs) older
than ``CACHE_AGE_S``, every ``CACHE_SWEEP_S``. Gradio's own ``delete_cache`` is not enough: it deletes only files
it recorded on the page's components, and an event that updates a component (``gr.skip()``, ``gr.update()``) gives
that session a fresh copy whose files are recorded nowhere — every /sample result stayed on disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import functools
import gc
import logging
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs

import gradio as gr
from fastapi.responses import JSONResponse
from gradio import queueing, utils
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware

from . import limits

logger = logging.getLogger("playground")


def cache_sweep_setting() -> tuple[float, float]:
    """(sweep every how many seconds, delete files older than how many seconds): ``$PLAYGROUND_CACHE_SWEEP``
    as "300,1800", else that."""
    every, age = os.environ.get("PLAYGROUND_CACHE_SWEEP", "300,1800").split(",")
    return float(every), float(age)


CACHE_SWEEP_S, CACHE_AGE_S = cache_sweep_setting()
SESSION_IDLE_S = float(os.environ.get("PLAYGROUND_SESSION_IDLE", "3600"))  # then a session's state is forgotten
MAX_BODY_BYTES = limits.MAX_UPLOAD_BYTES + 2**20  # one file and the form around it

# Malformed requests Gradio answered with HTTP 500: (the route's path ending, the exception it raised) → the answer
REQUEST_ERRORS = {
    ("/queue/join", KeyError): (404, "no event has this fn_index (the page's /config lists them)."),
    ("/upload", TypeError): (400, "every uploaded file needs a file name."),
    ("/component_server", KeyError): (404, "no component has this id."),
}

# An absolute path of two or more parts (not inside a word or a URL): /tmp/gradio/…/x.png → x.png
SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"(),:]+/)+[^\s/'\"(),:]*")


def without_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its last part (a file's name)."""
    return SERVER_PATH.sub(lambda match: match.group().rstrip("/").rsplit("/", 1)[-1], text)


async def request_error(request, error: Exception):
    """The 4xx of REQUEST_ERRORS for this route and exception; any other exception stays a server error."""
    for (path_ending, kind), (status, message) in REQUEST_ERRORS.items():
        if isinstance(error, kind) and request.url.path.rstrip("/").endswith(path_ending):
            return JSONResponse({"detail": message}, status_code=status)
    raise error


def sweep(folder: Path, age: float, now: float | None = None) -> int:
    """Delete the files under ``folder`` last written or read more than ``age`` seconds ago, and the empty folders
    unchanged for as long (a folder just made is about to get its file); returns how many files went. (Gradio
    touches a cached file when it hands it out again.)"""
    now = time.time() if now is None else now
    deleted = 0
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # files before their folders
        with contextlib.suppress(OSError):  # gone meanwhile, or a folder not empty
            status = path.lstat()
            if now - max(status.st_mtime, status.st_atime) <= age:
                continue
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
                deleted += 1
    return deleted


def forget_idle_sessions(holder, idle_s: float, now: datetime.datetime | None = None) -> int:
    """Forget the sessions of Gradio's ``holder`` (a StateHolder) unused for ``idle_s`` seconds; returns how many.
    Each holds a copy of the page's config (about 0.4 MB) and the lab's trained run, and Gradio forgets one only
    when 10,000 newer ones exist: an API client that opens a session per call grew the server by gigabytes."""
    now = now or datetime.datetime.now()
    with holder.lock:
        idle = [key for key, used in holder.time_last_used.items() if (now - used).total_seconds() > idle_s]
        for key in idle:
            holder.session_data.pop(key, None)
            holder.time_last_used.pop(key, None)
    return len(idle)


class CacheSweeper(threading.Thread):
    """A daemon thread that sweeps the Gradio cache folder every ``every`` seconds (see :func:`sweep`), drops
    the deleted files from the page's records of served files (else those sets grow forever), and forgets the
    sessions idle for ``SESSION_IDLE_S`` (see :func:`forget_idle_sessions`)."""

    def __init__(self, demo: gr.Blocks, every: float = CACHE_SWEEP_S, age: float = CACHE_AGE_S):
        super().__init__(name="cache-sweeper", daemon=True)
        self.demo, self.every, self.age = demo, every, age
        self.folder = Path(get_upload_folder())
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            deleted = sweep(self.folder, self.age)
            for files in self.demo.temp_file_sets:
                files.difference_update([f for f in list(files) if not os.path.exists(f)])
            if deleted:
                logger.info("cache sweep: %d files older than %.0f s deleted", deleted, self.age)
            holder = getattr(self.demo, "state_holder", None)  # set when the server starts
            if holder is not None and (forgotten := forget_idle_sessions(holder, SESSION_IDLE_S)):
                logger.info("cache sweep: %d sessions idle for %.0f s forgotten", forgotten, SESSION_IDLE_S)


class UnknownSessionGuard:
    """ASGI middleware: a ``GET …/queue/data`` (the event stream) for a session the queue does not know is answered
    404 at once. Gradio opened the stream first and raised inside it, logging a 6.6 KB traceback per request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].rstrip("/").endswith("/queue/data"):
            session = parse_qs(scope.get("query_string", b"").decode()).get("session_hash", [None])[0]
            queue = scope["app"].get_blocks()._queue
            if session is not None and session not in queue.pending_messages_per_session:
                detail = "no queued event has this session_hash: join the queue first (POST …/queue/join)."
                await JSONResponse({"detail": detail}, status_code=404)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def launch_options(**overrides) -> dict:
    """``demo.launch`` arguments with the server's bounds (``overrides`` win, e.g. server_name, server_port)."""
    app_kwargs = {
        "max_body_size": MAX_BODY_BYTES,
        "exception_handlers": {kind: request_error for _, kind in REQUEST_ERRORS},
        "middleware": [Middleware(UnknownSessionGuard)],
    }
    return {"show_error": True, "max_file_size": limits.MAX_UPLOAD_BYTES, "app_kwargs": app_kwargs, **overrides}


class MemoryReleaser:
    """Frees what failed requests left once their exception (which holds the request's arrays through its
    traceback) is dropped: the reference cycles (gc) and the heap pages glibc keeps (malloc_trim), ``delays``
    seconds after a failure (the later pass for a request still unwinding on a busy server). One series at a time,
    so that a stream of bad requests costs little."""

    def __init__(self, delays: tuple[float, ...] = (0.5, 5.0)):
        self.delays = delays
        self._pending = threading.Event()

    def soon(self) -> None:
        if not self._pending.is_set():
            self._pending.set()
            threading.Thread(target=self._run, name="memory-releaser", daemon=True).start()

    def _run(self) -> None:
        waited = 0.0
        for delay in self.delays:
            time.sleep(delay - waited)
            waited = delay
            if delay == self.delays[-1]:
                self._pending.clear()  # failures from now on start a new series
            self.release()

    @staticmethod
    def release() -> None:
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL("libc.so.6").malloc_trim(0)


RELEASER = MemoryReleaser()


MAX_ERROR_CHARS = 500  # an error message echoes the input it refuses (Gradio's "not in the list of choices"): bounded


def shortened(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out: a 20 MB bad value must not come back as a
    20 MB error and a 20 MB log line."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters left out)"


def scrubbed(error_payload):
    """Gradio's ``error_payload`` (the error sent to the client, once per failed event) without server paths; a user
    error is logged here as one line, and the failed request's memory released."""

    @functools.wraps(error_payload)
    def payload(error, show_error):
        RELEASER.soon()
        content = error_payload(error, show_error)
        if isinstance(content.get("error"), str):
            content["error"] = without_paths(shortened(content["error"]))
        if isinstance(error, gr.Error):
            logger.warning("user error: %s", content.get("error"))
        return content

    payload.scrubbed = True
    return payload


def quiet(init):
    """``gr.Error.__init__`` that turns off the traceback Gradio prints for each one (it is logged as one line)."""

    @functools.wraps(init)
    def quiet_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.print_exception = False

    quiet_init.quiet = True
    return quiet_init


def share_concurrency(demo: gr.Blocks) -> None:
    """Every event that takes a picture and belongs to no named group joins one concurrency group
    (``limits.IMAGES``), so that decoded pictures are bounded across all of them together, not per event handler. An
    event in a named group keeps it: its work belongs to that budget (heavy sampling, the lab's one training at a
    time, the page-open views), and a quick view must never queue behind it."""
    for block_fn in demo.fns.values():
        takes_picture = any(isinstance(block, (gr.ImageEditor, gr.Image)) for block in block_fn.inputs)
        if takes_picture and in_its_own_group(block_fn):
            block_fn.concurrency_id = limits.IMAGES


def in_its_own_group(block_fn) -> bool:
    """Whether an event has no named concurrency group (Gradio's default: one group per handler)."""
    return block_fn.concurrency_id == str(id(block_fn.fn))


def harden() -> None:
    """Install the picture bounds, path-free error messages and one-line user-error logs; idempotent."""
    limits.bound_image_inputs()
    if not getattr(utils.error_payload, "scrubbed", False):
        utils.error_payload = scrubbed(utils.error_payload)  # routes.py calls it through the module
    queueing.error_payload = utils.error_payload  # queueing.py imported the name itself
    if not getattr(gr.Error.__init__, "quiet", False):
        gr.Error.__init__ = quiet(gr.Error.__init__)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
