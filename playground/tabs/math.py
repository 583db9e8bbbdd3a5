"""The Math tab: the course notes' equations, each next to the function of this repository that computes it."""

from __future__ import annotations

import gradio as gr

from ..math_text import LATEX_DELIMITERS, math_markdown

TITLE = "Math"
ID = "math"


def build(demo: gr.Blocks) -> None:
    gr.Markdown(math_markdown(), latex_delimiters=LATEX_DELIMITERS, elem_id="math-text")
