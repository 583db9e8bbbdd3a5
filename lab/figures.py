"""Small, fast matplotlib pictures for the "Train it yourself" lab: curves, point clouds, a vector field, frames.

Every figure is drawn on its own Agg canvas (no pyplot state, safe from several threads) and returned as a PIL
image. Point clouds are standardised 2-D data, drawn in the fixed square [−LIMIT, LIMIT]².
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from pipelines.image_grid import make_grid

LIMIT = 3.2  # half-width of the square the 2-D point clouds are drawn in
DPI = 80
TARGET_COLOR, SAMPLE_COLOR, PATH_COLOR = "#c8c8c8", "#3b5bdb", "#f08c00"
DIGIT_COLORS = "tab10"
HALO = [patheffects.withStroke(linewidth=3, foreground="white")]  # keeps a label readable over the points


def _figure(width: float, height: float, rows: int = 1, columns: int = 1, **margins) -> tuple[Figure, list]:
    """A figure with fixed margins (``subplots_adjust`` keywords): much faster to draw than a constrained layout."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**{"left": 0.1, "right": 0.97, "bottom": 0.08, "top": 0.92, **margins})
    return fig, [fig.add_subplot(rows, columns, i + 1) for i in range(rows * columns)]


def _image(fig: Figure) -> Image.Image:
    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")


def _square(ax, title: str) -> None:
    ax.set_xlim(-LIMIT, LIMIT)
    ax.set_ylim(-LIMIT, LIMIT)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=7)


def point_cloud(target: torch.Tensor, samples: torch.Tensor | None, title: str) -> Image.Image:
    """The target points (grey) and, if given, the model's samples (blue) on top."""
    fig, (ax,) = _figure(3.6, 3.6, left=0.1, bottom=0.07, top=0.92)
    ax.scatter(*target.T.numpy(), s=3, c=TARGET_COLOR, label="target", linewidths=0)
    if samples is not None:
        ax.scatter(*samples.T.numpy(), s=3, c=SAMPLE_COLOR, label="samples", linewidths=0)
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
    _square(ax, title)
    return _image(fig)


def loss_curves(losses: list[tuple[int, float]], distances: list[tuple[int, float]]) -> Image.Image:
    """Top: the ε loss per report; bottom: the energy distance from the samples to the target (log scale)."""
    fig, (top, bottom) = _figure(3.6, 3.6, rows=2, left=0.16, bottom=0.11, top=0.93, hspace=0.45)
    if losses:
        top.plot(*zip(*losses), color="#e8590c", lw=1.5)
    top.set_title("loss ‖g_θ − ε‖², mean per report", fontsize=9)
    if distances:
        bottom.semilogy(*zip(*distances), "o-", color=SAMPLE_COLOR, ms=3, lw=1.2)
    bottom.set_title("energy distance samples ↔ target", fontsize=9)
    bottom.set_xlabel("step", fontsize=8)
    for ax in (top, bottom):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return _image(fig)


def trajectory_frames(
    trajectory: torch.Tensor, target: torch.Tensor, labels: list[str], paths: int = 12, trail: int = 6
) -> list:
    """One picture per z_t of ``trajectory`` (frames, n, 2): the cloud at that step over the target (grey), and
    ``paths`` points (orange) with the last ``trail`` frames of their way from N(0, I) to the data."""
    fig, (ax,) = _figure(3.6, 3.6, left=0.1, bottom=0.07, top=0.92)
    ax.scatter(*target.T.numpy(), s=3, c=TARGET_COLOR, linewidths=0)
    cloud = ax.scatter(*trajectory[0].T.numpy(), s=3, c=SAMPLE_COLOR, linewidths=0)
    lines = [ax.plot([], [], lw=1.0, color=PATH_COLOR, alpha=0.8)[0] for _ in range(paths)]
    heads = ax.scatter(*trajectory[0, :paths].T.numpy(), s=18, c=PATH_COLOR, zorder=3)
    _square(ax, "")
    frames = []
    for i, (points, label) in enumerate(zip(trajectory, labels)):
        cloud.set_offsets(points.numpy())
        heads.set_offsets(points[:paths].numpy())
        recent = trajectory[max(0, i - trail) : i + 1]
        for k, line in enumerate(lines):
            line.set_data(recent[:, k, 0].numpy(), recent[:, k, 1].numpy())
        ax.set_title(label, fontsize=10)
        frames.append(_image(fig))
    return frames


def strip(frames: list[Image.Image], count: int = 6) -> Image.Image:
    """``count`` evenly spaced frames side by side."""
    chosen = [frames[round(i)] for i in np.linspace(0, len(frames) - 1, count)]
    width = sum(f.width for f in chosen)
    out = Image.new("RGB", (width, chosen[0].height), "white")
    for i, frame in enumerate(chosen):
        out.paste(frame, (i * frame.width, 0))
    return out


def forward_and_field(
    noisy: torch.Tensor, grid: torch.Tensor, field: torch.Tensor, t: int, alpha_bar: float
) -> Image.Image:
    """Left: q(z_t | x) of the target points; right: the learned denoising direction s_θ(z, t) on a grid
    (arrows of unit length, coloured by |s_θ|) over the same cloud."""
    fig, (left, right) = _figure(7.2, 3.7, columns=2, left=0.05, right=0.98, bottom=0.07, top=0.91, wspace=0.15)
    left.scatter(*noisy.T.numpy(), s=3, c=SAMPLE_COLOR, linewidths=0)
    _square(left, f"forward: z_t ~ q(z_t | x), t = {t}, ᾱ_t = {alpha_bar:.3f}")
    right.scatter(*noisy.T.numpy(), s=2, c=TARGET_COLOR, linewidths=0)
    norm = field.norm(dim=1, keepdim=True).clamp_min(1e-8)
    unit = field / norm
    right.quiver(*grid.T.numpy(), *unit.T.numpy(), norm.squeeze(1).log().numpy(), cmap="viridis", scale=28, width=0.005)
    _square(right, f"learned score s_θ(z, t) = −ε̂/√(1−ᾱ_t), t = {t}")
    return _image(fig)


def elbo_curves(train: list, heldout: list) -> Image.Image:
    """Left: the ELBO (training batches and held-out digits) and the held-out reconstruction term; right: the KL
    term; all in nats per image. ``train`` and ``heldout`` are lists of (step, Terms)."""
    fig, (left, right) = _figure(9.6, 2.8, columns=2, left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.15)
    for runs, name, style in ((train, "train", "-"), (heldout, "held-out", "o-")):
        if runs:
            steps = [s for s, _ in runs]
            left.plot(steps, [t.elbo for _, t in runs], style, ms=3, lw=1.3, label=f"ELBO ({name})")
            right.plot(steps, [t.kl for _, t in runs], style, ms=3, lw=1.3, label=f"KL ({name})")
    if heldout:
        steps = [s for s, _ in heldout]
        left.plot(steps, [t.reconstruction for _, t in heldout], ":", lw=1.3, label="E_q ln p(x|z) (held-out)")
        if len(heldout) > 1:  # leave out the untrained model's ELBO (≈ −560 nats), which would flatten the curve
            left.set_ylim(min(t.elbo for _, t in heldout[1:]) - 10, max(t.elbo for _, t in train + heldout[1:]) + 5)
    left.set_title("ELBO = reconstruction − KL (nats)", fontsize=9)
    right.set_title("KL[q(z|x) ‖ p(z)] (nats)", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _image(fig)


def latent_map(latents: torch.Tensor, labels: torch.Tensor, grid_extent: float, title: str) -> Image.Image:
    """The held-out digits' μ(x) in the 2-D latent plane, coloured by digit, with the decoded grid's square."""
    fig, (ax,) = _figure(4.4, 4.4, left=0.1, bottom=0.1, top=0.93)
    points = latents.numpy()
    scatter = ax.scatter(*points.T, c=labels.numpy(), cmap=DIGIT_COLORS, vmin=-0.5, vmax=9.5, s=7, linewidths=0)
    for digit in range(10):  # each digit's label at the median of its points
        chosen = points[labels.numpy() == digit]
        if len(chosen):
            color = scatter.cmap(scatter.norm(digit))
            ax.text(*np.median(chosen, axis=0), str(digit), fontsize=12, weight="bold", color=color, path_effects=HALO)
    e = grid_extent
    ax.plot([-e, e, e, -e, -e], [-e, -e, e, e, -e], "k--", lw=0.8)
    reach = max(3.5, float(np.abs(points).max()) * 1.05) if len(points) else 3.5
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    ax.set_aspect("equal")
    ax.set_xlabel("z₁", fontsize=8)
    ax.set_ylabel("z₂", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    return _image(fig)


def digit_grid(images: torch.Tensor, grid_size: int, scale: int = 2) -> Image.Image:
    """The decoded grid (grid_size² images, row-major) as one picture, upscaled with nearest neighbours."""
    picture = make_grid(images.clamp(0, 1), nrow=grid_size, padding=1)
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
