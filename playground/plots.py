"""Matplotlib figures: the noise schedules (one figure or one per panel), and the VAE's 2-D latent map of the test set."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

MAP_PIXELS = 480  # the latent map is a square image; its axes fill it exactly (pixel ↔ latent coordinates)


SCHEDULE_PANELS = {  # curve key → (title, y scale)
    "beta": ("β_t", "log"),
    "alpha_bar": ("ᾱ_t", "linear"),
    "log_snr": ("log SNR(t) = log ᾱ_t/(1−ᾱ_t)", "linear"),
}


def draw_schedule_panel(ax, curves: dict[str, dict[str, np.ndarray]], key: str) -> None:
    """One panel: curve ``key`` of every schedule against t (``curves[name] = {"beta", "alpha_bar", "log_snr"}``)."""
    title, yscale = SCHEDULE_PANELS[key]
    for name, curve in curves.items():
        t = np.arange(1, len(curve[key]) + 1)
        ax.plot(t, curve[key], label=name, lw=1.8)
    ax.set_title(title)
    ax.set_xlabel("t")
    ax.set_yscale(yscale)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def schedule_figure(curves: dict[str, dict[str, np.ndarray]]):
    """Three panels side by side: β_t, ᾱ_t and log SNR(t), one line per schedule."""
    fig = Figure(figsize=(13, 3.6), layout="constrained")  # not pyplot's: nothing keeps it alive once shown
    axes = fig.subplots(1, 3)
    for ax, key in zip(axes, SCHEDULE_PANELS):
        draw_schedule_panel(ax, curves, key)
    return fig


def schedule_panel_figure(curves: dict[str, dict[str, np.ndarray]], key: str):
    """One panel as its own figure (the page shows three, which stack on a narrow screen)."""
    fig = Figure(figsize=(4.4, 3.3), layout="constrained")
    ax = fig.subplots()
    draw_schedule_panel(ax, curves, key)
    return fig


def latent_map_image(points: np.ndarray, labels: np.ndarray, limits: tuple[float, float, float, float]):
    """Scatter of 2-D ``points`` coloured by digit, axes filling the whole square image; returns a PIL image.

    ``limits`` = (x_min, x_max, y_min, y_max). The pixel (px, py) maps to latent coordinates with
    :func:`pixel_to_coords`; :func:`mark_point` marks a point on it.
    """
    dpi = 100
    fig = plt.figure(figsize=(MAP_PIXELS / dpi, MAP_PIXELS / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=12, alpha=0.85)
    for digit in range(10):  # a label at each class's centre
        chosen = points[labels == digit]
        if len(chosen):
            cx, cy = np.median(chosen, axis=0)
            ax.text(
                cx,
                cy,
                str(digit),
                fontsize=15,
                weight="bold",
                ha="center",
                va="center",
                color=scatter.cmap(scatter.norm(digit)),
                path_effects=_outline(),
            )
    ax.set_xlim(limits[0], limits[1])
    ax.set_ylim(limits[2], limits[3])
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.text(0.01, 0.01, "PC 1 →", transform=ax.transAxes, fontsize=9, color="gray")
    ax.text(0.01, 0.97, "↑ PC 2", transform=ax.transAxes, fontsize=9, color="gray", va="top")
    ax.set_xticks([])
    ax.set_yticks([])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _outline():
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=3, foreground="white")]


def map_limits(points: np.ndarray, margin: float = 0.1) -> tuple[float, float, float, float]:
    """Square-ish limits around the points with a margin."""
    low, high = points.min(axis=0), points.max(axis=0)
    pad = (high - low) * margin
    return float(low[0] - pad[0]), float(high[0] + pad[0]), float(low[1] - pad[1]), float(high[1] + pad[1])


def coords_to_pixel(x: float, y: float, limits, size: int = MAP_PIXELS) -> tuple[float, float]:
    """Latent-map coordinates → image pixel (column, row), the inverse of :func:`pixel_to_coords`."""
    x_min, x_max, y_min, y_max = limits
    return (x - x_min) / (x_max - x_min) * size - 0.5, (y_max - y) / (y_max - y_min) * size - 0.5


def mark_point(image: Image.Image, x: float, y: float, limits) -> Image.Image:
    """A copy of a latent map with a black cross at coordinates (x, y)."""
    marked = image.copy()
    px, py = coords_to_pixel(x, y, limits, marked.width)
    draw, arm = ImageDraw.Draw(marked), 8
    draw.line([(px - arm, py - arm), (px + arm, py + arm)], fill="black", width=4)
    draw.line([(px - arm, py + arm), (px + arm, py - arm)], fill="black", width=4)
    return marked


def pixel_to_coords(px: float, py: float, limits, size: int = MAP_PIXELS) -> tuple[float, float]:
    """Image pixel (column px, row py; row 0 at the top) → latent-map coordinates."""
    x_min, x_max, y_min, y_max = limits
    return x_min + (px + 0.5) / size * (x_max - x_min), y_max - (py + 0.5) / size * (y_max - y_min)
