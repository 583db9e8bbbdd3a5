"""Shared widgets (playground/widgets.py): the page-open views answer only the page's starting values."""

from __future__ import annotations

import gradio as gr
import pytest

from playground.widgets import page_open_only


def walk(model, frames, steps, drawing):
    return f"{model} {int(frames)}×{int(steps)}"


def walk_stream(model, frames, steps, drawing):
    yield walk(model, frames, steps, drawing)


def inputs():
    with gr.Blocks():
        return [
            gr.Radio(["latent", "pixel"], value="latent", label="Model"),
            gr.Slider(2, 16, value=8, step=1, label="Frames"),
            gr.Slider(1, 200, value=20, step=1, label="DDIM steps"),
            gr.Sketchpad(label="Your digit"),
        ]


@pytest.mark.parametrize("fn", [walk, walk_stream])
def test_a_page_open_view_answers_the_starting_values_whatever_the_drawing(fn):
    view = page_open_only(fn, inputs(), "walk_seeds")
    for drawing in (None, {"composite": "any"}):
        result = view("latent", 8.0, 20, drawing)
        assert (next(result) if fn is walk_stream else result) == "latent 8×20"


@pytest.mark.parametrize("fn", [walk, walk_stream])
def test_a_page_open_view_refuses_other_values_and_names_the_endpoint_that_takes_them(fn):
    view = page_open_only(fn, inputs(), "walk_seeds")
    with pytest.raises(gr.Error, match=r"Frames, DDIM steps differ\): call /walk_seeds"):
        result = view("latent", 16, 200, None)
        next(result) if fn is walk_stream else result
