"""The Math tab: the course notes' equations, each next to the function of this repository that computes it,
rendered from the one list in pipelines/equations.py (which the tests check against the code)."""

from __future__ import annotations

import os

import gradio as gr

from pipelines.equations import LATEX_DELIMITERS, math_markdown

TITLE = "Math"
ID = "math"


def build(demo: gr.Blocks) -> None:
    # on a Hugging Face Space (SPACE_ID set) each source file becomes a link to it
    gr.Markdown(math_markdown(os.environ.get("SPACE_ID")), latex_delimiters=LATEX_DELIMITERS, elem_id="math-text")
