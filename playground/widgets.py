"""Inputs and notices that several tabs share: the test-digit picker with its sketchpad, the missing-model banner."""

from __future__ import annotations

import functools
import inspect

import gradio as gr

from pipelines.checks import MAX_SEED

from . import models
from .limits import HEAVY

NUM_TEST = 500  # the MNIST test split: 50 digits per class
# What the page computes when it opens runs one event at a time, in page order: the Sample tab's first batch gets the
# CPU to itself, the other tabs fill in behind it, and none of it delays a visitor's own requests ("heavy" or live
# ones). The slow results are computed once per server and then kept.
ON_OPEN = {"concurrency_id": "on_open", "concurrency_limit": 1}
DIGIT_HELP = "Test digit # (0–499, from the held-out MNIST test split)"


def missing_banner(*keys: str) -> gr.Markdown:
    """A warning shown at the top of a tab whose model folder is absent (checked when the page is built)."""
    missing = [models.missing_message(k) for k in keys if not models.is_available(k)]
    return gr.Markdown("⚠️ " + "\n\n⚠️ ".join(missing) if missing else "", visible=bool(missing))


def digit_inputs(elem_id: str, label: str = DIGIT_HELP, value: int = 0) -> tuple[gr.Slider, gr.Sketchpad]:
    """A test-digit slider and, folded away below it (it fills a phone's screen), a sketchpad to draw or upload a
    digit, which overrides the test digit when not empty."""
    with gr.Row():
        index = gr.Slider(0, NUM_TEST - 1, value=value, step=1, label=label)
    with gr.Accordion("✏️ Draw or upload your own digit instead", open=False, elem_id=f"{elem_id}-fold"):
        drawing = gr.Sketchpad(
            label="Your digit (overrides the test digit; clear it to go back)",
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
    banner says so), instead of greeting the visitor with an error. A generator (a streamed view) stays one."""

    def bundled() -> bool:
        return all(models.is_available(key) for key in keys)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args, **kwargs):
            yield from fn(*args, **kwargs) if bundled() else [gr.skip()]

        return stream

    @functools.wraps(fn)
    def run(*args, **kwargs):
        return fn(*args, **kwargs) if bundled() else gr.skip()

    return run


def same_value(given, starting) -> bool:
    """Whether an input as the page sends it equals a starting value (numbers as numbers, lists item by item)."""
    if isinstance(given, (list, tuple)) and isinstance(starting, (list, tuple)):
        return len(given) == len(starting) and all(same_value(g, s) for g, s in zip(given, starting))
    numbers = (int, float)
    if isinstance(given, numbers) and isinstance(starting, numbers) and not isinstance(given, bool):
        return float(given) == float(starting)
    return given == starting


def page_open_only(fn, inputs, endpoint: str):
    """``fn`` for an event the page runs when it opens: it answers only the inputs' starting values (pictures
    aside: the page sends an empty canvas, and a picture's size is bounded on its own). A crafted call with other
    values (a 16-frame × 200-step walk) is refused: that work belongs to the public endpoint, in its budget."""
    starting = [(i, c.label or type(c).__name__, c.value) for i, c in enumerate(inputs or []) if not is_picture(c)]

    def check(args) -> None:
        changed = [label for i, label, value in starting if not same_value(args[i], value)]
        if changed:
            raise gr.Error(
                f"The page-open view takes the page's starting values ({', '.join(changed)} differ): "
                f"call /{endpoint} for others."
            )

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args):
            check(args)
            yield from fn(*args)

        return stream

    @functools.wraps(fn)
    def run(*args):
        check(args)
        return fn(*args)

    return run


def is_picture(component) -> bool:
    return isinstance(component, (gr.Image, gr.ImageEditor))  # gr.Sketchpad is an ImageEditor


def endpoint_shown_on_open(
    demo: gr.Blocks,
    triggers: list,
    fn,
    inputs,
    outputs,
    api_name: str,
    needs: tuple[str, ...] = (),
    slow: bool = False,
    **options,
) -> None:
    """``fn`` as the public endpoint ``api_name``, run by ``triggers`` (a button, or the inputs themselves for a
    live view) and once when the page opens, so that no visitor meets an empty box (``needs``: the models it uses).
    A ``slow`` one (seconds) runs in the "heavy" group when asked for; on open, every one runs :data:`ON_OPEN`."""
    on_open = demo.load(
        page_open_only(when_bundled(fn, *needs), inputs, api_name),
        inputs,
        outputs,
        api_name=f"ui_{api_name}_on_open",
        api_visibility="private",
        **{**options, **ON_OPEN},
    )
    heavy = {"concurrency_id": HEAVY} if slow else {}
    # a visitor's own request replaces the on-open one if that has not answered yet (it would overwrite theirs)
    gr.on(triggers, fn, inputs, outputs, api_name=api_name, cancels=[on_open], **heavy, **options)
