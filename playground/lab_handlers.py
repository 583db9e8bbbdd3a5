"""What the "Train it yourself" tab's events do: start a live run and stream its pictures, stop it, animate the
trained diffusion model, draw its forward process and field, and write the download files.

The engines (``lab.toy2d``, ``lab.vae2d``) raise ValueError on bad input; here it becomes a gr.Error.
A run's stop flag is registered under (session, lab), so Stop, from the page or the API, reaches the session's job.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
import numpy as np
import torch
from gradio.utils import get_upload_folder

from lab import figures, toy2d_targets
from pipelines.deferred import lazy_module

from .images import save_gif
from .validation import check_int, check_seed

if TYPE_CHECKING:
    from lab import toy2d, vae2d
else:
    toy2d, vae2d = lazy_module("lab.toy2d"), lazy_module("lab.vae2d")  # they import diffusers

DRAWN = "drawn"  # the target choice that trains on the visitor's drawing
NUM_SHOWN = 1000  # target points drawn behind the samples
NUM_ANIMATED = 600  # points in the reverse-process animation
NUM_FRAMES = 30  # frames of the animation (the last one is then held for a second)
FIELD_GRID = 17  # arrows per side of the vector field
REDRAW_SECONDS = 0.5  # the curves are redrawn at most this often (each picture costs CPU the run could use)
STATE_TEXT = {
    "running": "training…",
    "stopped": "stopped by you",
    "time limit": "time limit reached",
    "step limit": "step limit reached",
}
_STOP_FLAGS: dict[tuple[str, str], threading.Event] = {}  # (session, lab) → the flag its running job checks


def _as_gr_error(fn):
    """Call ``fn``; a ValueError from the engine becomes a gr.Error with the same message."""
    try:
        return fn()
    except ValueError as error:
        raise gr.Error(str(error)) from None


def _stream_with_stop_flag(request: gr.Request | None, lab: str, start):
    """Register a fresh stop flag for (session, ``lab``), then yield from ``start(flag)`` until it ends."""
    key, flag = (getattr(request, "session_hash", None) or "", lab), threading.Event()
    _STOP_FLAGS[key] = flag
    try:
        yield from _as_gr_error(lambda: start(flag))
    finally:
        if _STOP_FLAGS.get(key) is flag:
            del _STOP_FLAGS[key]


def _throttled(runs, snapshot_step):
    """Pass on each run with a new snapshot (``snapshot_step(run)`` changed), the final one, and the others at most
    every REDRAW_SECONDS."""
    last_time, last_snapshot = 0.0, None
    for run in runs:
        snapshot = snapshot_step(run)
        if run.state != "running" or snapshot != last_snapshot or time.monotonic() - last_time >= REDRAW_SECONDS:
            last_time, last_snapshot = time.monotonic(), snapshot
            yield run


def stop_training(request: gr.Request = None):
    """Set this session's stop flags; each lab's status says whether it had a job to stop."""
    session = getattr(request, "session_hash", None) or ""
    said = []
    for lab in ("diffusion", "vae"):
        flag = _STOP_FLAGS.get((session, lab))
        if flag is not None:
            flag.set()
        said.append("**Stopped.** The model trained so far is kept below." if flag is not None else gr.skip())
    return tuple(said)


def download_path(name: str) -> Path:
    """A fresh path named ``name`` for a file the page offers for download, inside Gradio's cache folder: the cache
    sweep (playground/server.py) deletes it with the rest, so a stream of downloads leaves the disk flat."""
    folder = Path(get_upload_folder()) / "playground-lab" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder / name


def _require(run, what: str):
    if run is None:
        raise gr.Error(f"train a {what} first (press Train).")
    return run


# ---------------------------------------------------------------- diffusion in 2-D


def target_points(target: str, drawing, num_points: int, seed: int = 0) -> torch.Tensor:
    """The standardised target: a preset, or the strokes of the Sketchpad (a dict with a "composite" picture)."""
    if target != DRAWN:
        return toy2d_targets.target_points(target, num_points, seed)
    picture = drawing.get("composite") if isinstance(drawing, dict) else drawing
    if picture is None:
        raise ValueError("drawing is empty: draw the shape to learn on the canvas, or pick a preset target.")
    return toy2d_targets.points_from_drawing(np.asarray(picture), num_points, seed)


def preview_target(target="moons", drawing=None):
    """The target before training (a short note in the title instead of an error while the canvas is empty; an
    unknown target is an error)."""
    if target != DRAWN and (not isinstance(target, str) or target not in toy2d_targets.TARGETS):
        raise gr.Error(f"target must be one of {[*toy2d_targets.TARGETS, DRAWN]}, got {target!r:.40}.")
    try:
        return figures.point_cloud(target_points(target, drawing, NUM_SHOWN), None, "the target distribution")
    except ValueError as error:
        return figures.point_cloud(torch.zeros(0, 2), None, str(error).split(":")[0])


def _diffusion_status(run: toy2d.DiffusionRun) -> str:
    loss = f" · loss {run.losses[-1][1]:.3f}" if run.losses else ""
    step, distance = run.distances[-1]
    return (
        f"**Step {run.step}** · {run.elapsed_s:.1f} s{loss} · energy distance of the samples to the target "
        f"{distance:.4f} (step {step}) — {STATE_TEXT[run.state]}"
    )


def train_diffusion(
    target="moons",
    drawing=None,
    beta_schedule="linear",
    num_steps=100,
    max_seconds=20,
    seed=0,
    request: gr.Request = None,
):
    """Stream (status, samples over the target, training curves, run) while the ε-predictor trains."""

    def start(flag):
        settings = toy2d.DiffusionSettings(
            target=target,
            beta_schedule=beta_schedule,
            num_train_timesteps=num_steps,
            max_seconds=max_seconds,
            seed=seed,
        )
        points = target_points(target, drawing, settings.num_points, settings.seed)
        return _diffusion_pictures(toy2d.train_diffusion(settings, points, flag))

    yield from _stream_with_stop_flag(request, "diffusion", start)


def _diffusion_pictures(runs):
    shown = None  # the step whose samples are on the page
    for run in _throttled(runs, lambda run: run.distances[-1][0]):
        samples, snapshot = gr.skip(), run.distances[-1][0]
        if snapshot != shown:
            title = f"samples at step {snapshot}" if snapshot else "samples of the untrained model"
            samples, shown = figures.point_cloud(run.points[:NUM_SHOWN], run.samples, title), snapshot
        yield _diffusion_status(run), samples, figures.loss_curves(run.losses, run.distances), run


def reverse_process(run, seed=1):
    """Animate ancestral sampling from z_T ~ N(0, I) to z_0 with every DDPMScheduler step; offer the model file."""
    run = _require(run, "diffusion model")
    seed = check_seed(seed)
    trajectory = toy2d.sample(toy2d.frozen_model(run), run.scheduler, NUM_ANIMATED, seed, keep_trajectory=True)
    T = run.scheduler.config.num_train_timesteps
    chosen = np.unique(np.linspace(0, T, NUM_FRAMES).round().astype(int))  # indices into z_T … z_0
    labels = [f"reverse process: z_{T - i}" for i in chosen]
    frames = figures.trajectory_frames(trajectory[chosen], run.points[:NUM_SHOWN], labels)
    gif = save_gif(frames + [frames[-1]] * 10, duration_ms=100)  # hold the result for a second
    path = download_path(f"toy-diffusion-{run.settings.target}-T{T}.safetensors")
    return gif, figures.strip(frames), str(toy2d.save_toy_model(run, path))


def t_slider_range(num_steps, t):
    """The t slider narrowed to T steps, keeping t within them (a crafted NaN or string is a clear error)."""
    T = check_int("T (diffusion steps)", num_steps, toy2d_targets.MIN_T, toy2d_targets.MAX_T)
    return gr.update(maximum=T, value=min(check_int("t", t, 1, toy2d_targets.MAX_T), T))


def forward_and_field(run, t=5):
    """q(z_t | x) of the target points and the learned score field at step t (1 ≤ t ≤ T)."""
    run = _require(run, "diffusion model")
    T = run.scheduler.config.num_train_timesteps
    t = check_int("t", t, 1, T)
    noisy = toy2d.forward_samples(run.scheduler, run.points[:NUM_SHOWN], t - 1)
    axis = torch.linspace(-figures.LIMIT * 0.94, figures.LIMIT * 0.94, FIELD_GRID)
    grid = torch.cartesian_prod(axis, axis)
    field = toy2d.denoising_direction(toy2d.frozen_model(run), run.scheduler, grid, t - 1)
    return figures.forward_and_field(noisy, grid, field, t, float(run.scheduler.alphas_cumprod[t - 1]))


# ---------------------------------------------------------------- VAE with a 2-D latent


def _vae_status(run: vae2d.VAERun) -> str:
    step, held = run.heldout[-1]
    return (
        f"**Step {run.step}** · {run.elapsed_s:.1f} s · held-out ELBO {held.elbo:.1f} nats = reconstruction "
        f"{held.reconstruction:.1f} − KL {held.kl:.2f} (step {step}) — {STATE_TEXT[run.state]}"
    )


def train_vae(beta=1.0, max_seconds=60, seed=0, request: gr.Request = None):
    """Stream (status, ELBO curves, latent map, decoded grid, run) while the VAE trains."""

    def start(flag):
        settings = vae2d.VAESettings(beta=beta, max_seconds=max_seconds, seed=seed)
        return _vae_pictures(vae2d.train_vae(settings, flag))

    yield "Reading MNIST…", gr.skip(), gr.skip(), gr.skip(), gr.skip()
    yield from _stream_with_stop_flag(request, "vae", start)


def _vae_pictures(runs):
    shown = None
    extent = float(vae2d.grid_axis(2)[-1])
    for run in _throttled(runs, lambda run: run.heldout[-1][0]):
        picture, grid, snapshot = gr.skip(), gr.skip(), run.heldout[-1][0]
        if snapshot != shown:
            title = f"μ(x) of {len(run.latents)} held-out digits, step {snapshot} (dashed: the decoded grid)"
            picture = figures.latent_map(run.latents, run.labels, extent, title)
            grid, shown = figures.digit_grid(run.grid, run.settings.grid_size), snapshot
        yield _vae_status(run), figures.elbo_curves(run.train, run.heldout), picture, grid, run


def save_vae(run):
    run = _require(run, "VAE")
    return str(vae2d.save_vae(run, download_path(f"vae-2d-beta{run.settings.beta:g}.safetensors")))
