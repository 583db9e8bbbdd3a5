"""Inputs and notices that several tabs share: the test-digit picker with its sketchpad, the missing-model banner."""

from __future__ import annotations

import functools

import gradio as gr

from . import models
from .validation import MAX_SEED

NUM_TEST = 500  # the MNIST test split: 50 digits per class
DIGIT_HELP = "Test digit # (0–499, from the held-out MNIST test split)"


def missing_banner(*keys: str) -> gr.Markdown:
    """A warning shown at the top of a tab whose model folder is absent (checked when the page is built)."""
    missing = [models.missing_message(k) for k in keys if not models.is_available(k)]
    return gr.Markdown("⚠️ " + "\n\n⚠️ ".join(missing) if missing else "", visible=bool(missing))


def digit_inputs(elem_id: str, label: str = DIGIT_HELP, value: int = 0) -> tuple[gr.Slider, gr.Sketchpad]:
    """A test-digit slider and a sketchpad (draw, or upload a picture) that overrides it when not empty."""
    with gr.Row():
        index = gr.Slider(0, NUM_TEST - 1, value=value, step=1, label=label)
    drawing = gr.Sketchpad(
        label="…or draw / upload a digit (overrides the test digit; clear it to go back)",
        value=None,
        type="numpy",
        image_mode="RGBA",
        canvas_size=(280, 280),
        height=300,
        brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
        sources=("upload", "clipboard"),
        elem_id=elem_id,
    )
    return index, drawing


def seed_input(label: str = "Seed", value: int = 0) -> gr.Number:
    return gr.Number(value, precision=0, minimum=0, maximum=MAX_SEED, label=label)


def when_bundled(fn, *keys: str):
    """``fn`` for an on-open event: it leaves the outputs as they are when a model it needs is not bundled (the tab's
    banner says so), instead of greeting the visitor with an error."""

    @functools.wraps(fn)
    def run(*args):
        if not all(models.is_available(key) for key in keys):
            return gr.skip()
        return fn(*args)

    return run


def endpoint_shown_on_open(
    demo: gr.Blocks, triggers: list, fn, inputs, outputs, api_name: str, needs: tuple[str, ...] = (), **options
) -> None:
    """``fn`` as the public endpoint ``api_name``, run by ``triggers`` (a button, or the inputs themselves for a
    live view) and once when the page opens, so that no visitor meets an empty box (``needs``: the models it uses)."""
    gr.on(triggers, fn, inputs, outputs, api_name=api_name, **options)
    demo.load(
        when_bundled(fn, *needs),
        inputs,
        outputs,
        api_name=f"ui_{api_name}_on_open",
        api_visibility="private",
        **options,
    )
