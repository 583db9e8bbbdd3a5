"""The VAE & diffusion playground: a Gradio app (and a Hugging Face Space) on the bundled MNIST models.

    python app.py          # serves on $GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT (default 127.0.0.1:7860)

Models are read from $PLAYGROUND_MODELS_DIR (default ./models), lazily, once. Every action is a named API
endpoint (see the page's "Use via API" link), queued with a concurrency limit; inputs are validated.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr
import torch

from playground.atomic_cache import make_gradio_cache_writes_atomic
from playground.style import page_style
from playground.tabs import TABS

make_gradio_cache_writes_atomic()  # concurrent identical answers must not serve a half-written picture
CONCURRENCY_LIMIT = int(os.environ.get("PLAYGROUND_CONCURRENCY", "2"))
QUEUE_SIZE = 32


def build_demo() -> gr.Blocks:
    """The page: a header, then one tab per module of playground.tabs (each holds its layout and handlers)."""
    with gr.Blocks(title="VAE & diffusion playground") as demo:
        page_style()
        gr.Markdown("# VAE & diffusion playground\nSee and touch every quantity of a VAE and a DDPM trained on MNIST.")
        with gr.Tabs(overflow_behavior="wrap"):  # on a phone the tab bar wraps: every tab stays one tap away
            for tab in TABS:
                with gr.Tab(tab.TITLE, id=tab.ID):
                    tab.build(demo)
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    return demo


demo = build_demo()

if __name__ == "__main__":
    # One torch thread per request: far faster than 2 on a shared 2-vCPU machine (no oversubscription; measured
    # 20× on the forward chain under load), and two queued requests then run side by side.
    torch.set_num_threads(int(os.environ.get("PLAYGROUND_TORCH_THREADS", "1")))
    demo.launch(show_error=True)
