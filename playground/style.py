"""The page's own CSS, for phones above all: at 390 px every tab is one tap away and no picture overflows.

Gradio 6 takes CSS in ``launch(css=...)``; a ``<style>`` element in the page itself keeps it with the layout, so
every way of serving ``app.demo`` (``python app.py``, the tests, the benchmarks) gets it.
"""

from __future__ import annotations

import gradio as gr

PAGE_CSS = """
/* the tab bar (Tabs(overflow_behavior="wrap")) and the VAE tab's own sub-tabs: tight enough for one or two rows */
[role="tablist"] { flex-wrap: wrap; row-gap: 2px; }
/* galleries as tall as their pictures (Gradio reserves 450 px even for one row of small frames) */
.grid-wrap.fixed-height { min-height: 0 !important; }
/* samples come at their own 28 px and are enlarged here, each pixel a crisp square */
#sample-gallery img { image-rendering: pixelated; }
@media (max-width: 640px) {
  [role="tablist"] > button { padding-left: 10px; padding-right: 10px; }
  /* galleries: at most four thumbnails a row, each still a visible digit */
  .grid-container { grid-template-columns: repeat(auto-fill, minmax(72px, 1fr)) !important; }
  /* frame strips: a row of small frames that wraps */
  .strip .grid-container { grid-template-columns: repeat(auto-fill, minmax(56px, 1fr)) !important; }
}
"""


def page_style() -> gr.HTML:
    """An invisible element carrying :data:`PAGE_CSS`."""
    return gr.HTML(f"<style>{PAGE_CSS}</style>", padding=False, elem_id="page-style")
