"""The VAE & diffusion playground: a Gradio app (and a Hugging Face Space) on the bundled MNIST models.

    python app.py          # serves on $GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT (default 127.0.0.1:7860)

Models are read from $PLAYGROUND_MODELS_DIR (default ./models), lazily, once. Every action is a named API
endpoint (see the page's "Use via API" link), queued; all sampling and inpainting share one concurrency limit
(PLAYGROUND_CONCURRENCY); inputs are validated, pictures bounded before they are decoded (playground/limits.py),
uploads and requests bounded in size and the cache cleaned (playground/server.py).

Building and serving the page imports no diffusers (seconds): once the server is up, a warm-up thread imports the
model code and loads the bundled models (pipelines/deferred.py, playground/models.py), so that the page's first
results do not wait for them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "playground-cache"))  # ours to sweep
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr
import torch

from pipelines import deferred
from playground import models, server, visitors
from playground.atomic_cache import make_gradio_cache_writes_atomic
from playground.style import page_style
from playground.tabs import TABS

make_gradio_cache_writes_atomic()  # concurrent identical answers must not serve a half-written picture
server.harden()  # pictures bounded before decoding, no server paths in errors, one log line per user error
CONCURRENCY_LIMIT = int(os.environ.get("PLAYGROUND_CONCURRENCY", "2"))


def build_demo() -> gr.Blocks:
    """The page: a header, then one tab per module of playground.tabs (each holds its layout and handlers)."""
    with gr.Blocks(title="VAE & diffusion playground") as demo:
        page_style()
        gr.Markdown("# VAE & diffusion playground\nSee and touch every quantity of a VAE and a DDPM trained on MNIST.")
        with gr.Tabs(overflow_behavior="wrap"):  # on a phone the tab bar wraps: every tab stays one tap away
            for tab in TABS:
                with gr.Tab(tab.TITLE, id=tab.ID):
                    tab.build(demo)
    server.share_concurrency(demo)  # heavy events share one limit; so do the other events that take a picture
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=visitors.QUEUE_SIZE)
    visitors.bound_queue(demo)  # one visitor cannot fill the queue; quick views are never refused for heavy ones
    return demo


demo = build_demo()


def warm_up() -> None:
    """Import the model code the handlers import on first use and load the bundled models; log how long it took."""
    start = time.perf_counter()
    try:
        deferred.import_all()
        loaded = models.warm_up()
    except Exception as error:  # a broken model folder: the request that needs it reports it to the visitor
        server.logger.warning("warm-up stopped after %.1f s: %s", time.perf_counter() - start, error)
        return
    server.logger.info("warm-up: model code and %d models loaded in %.1f s", len(loaded), time.perf_counter() - start)


def launch(**options) -> None:
    """Serve the page with the server's bounds (upload and request sizes; playground/server.py), then warm up in a
    thread; ``options`` are more ``demo.launch`` arguments (server_name, server_port, ...). Like ``demo.launch``, it
    blocks a script until the server stops, unless ``prevent_thread_lock=True``."""
    server.CacheSweeper(demo).start()
    block = not options.pop("prevent_thread_lock", False) and not (hasattr(sys, "ps1") or sys.flags.interactive)
    demo.launch(**server.launch_options(**options), prevent_thread_lock=True)
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    if block:
        demo.block_thread()


if __name__ == "__main__":
    # One torch thread per request: two oversubscribe a shared 2-vCPU machine (docs/speed.md#threads), and two
    # queued requests then run side by side.
    torch.set_num_threads(int(os.environ.get("PLAYGROUND_TORCH_THREADS", "1")))
    launch()
