"""Serve a Blocks holding only the "Train it yourself" tab, in this process, on a free port (API and browser tests)."""

from __future__ import annotations

import contextlib

import gradio as gr

from playground.tabs import lab
from tests.support.app_server import free_port


@contextlib.contextmanager
def serve_lab_tab():
    """Yield the URL of a queued Blocks with only the lab tab (as the app builds it); close it afterwards."""
    with gr.Blocks() as demo, gr.Tab(lab.TITLE, id=lab.ID):
        lab.build(demo)
    demo.queue(default_concurrency_limit=2, max_size=32)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, show_error=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
