"""The "Train it yourself" tab: a visitor trains a 2-D diffusion model and a 2-D-latent VAE on the server and
watches them learn (after Diffusion Explorer, https://arxiv.org/abs/2507.01178, and GAN Lab,
https://arxiv.org/abs/1809.01587).

Training events share the ``lab-train`` concurrency group with a limit of 1: one job at a time, the others wait
in the queue and see their place. Each job is bounded (≤ 60 s) and stoppable: Stop cancels the event and sets
the session's stop flag, which the loop checks at every step. The engines are ``training.toy2d`` and
``training.lab_vae``; this module only draws.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from pipelines.schedules import BETA_SCHEDULES
from training import lab_vae, toy2d
from training.live import MAX_SECONDS, MAX_SEED, check_number

from .. import lab_figures as figures
from ..images import save_gif

TITLE = "Train it yourself"
ID = "lab"
DRAWN = "drawn"
NUM_SHOWN = 1000  # target points drawn behind the samples
NUM_ANIMATED = 600  # points in the reverse-process animation
NUM_FRAMES = 40  # frames of the animation (the last one is held)
FIELD_GRID = 17  # arrows per side of the vector field
SCHEDULE_LABELS = {
    "linear": "linear",
    "scaled_linear": "scaled linear",
    "squaredcos_cap_v2": "cosine",
    "sigmoid": "sigmoid",
}
STATE_TEXT = {
    "running": "training…",
    "stopped": "stopped by you",
    "time limit": "time limit reached",
    "step limit": "step limit reached",
}
_STOP_FLAGS: dict[tuple[str, str], threading.Event] = {}  # (session, lab) → the flag its running job checks


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "no-session"


def _errors_as_gr_error(fn):
    """Run ``fn``; a ValueError from the engine becomes a gr.Error with the same message."""
    try:
        return fn()
    except ValueError as error:
        raise gr.Error(str(error)) from None


def _stream_with_stop_flag(request, lab: str, start):
    """Register a fresh stop flag for (session, ``lab``), then yield from ``start(flag)`` until it ends."""
    key, flag = (_session(request), lab), threading.Event()
    _STOP_FLAGS[key] = flag
    try:
        yield from _errors_as_gr_error(lambda: start(flag))
    finally:
        if _STOP_FLAGS.get(key) is flag:
            del _STOP_FLAGS[key]


def stop_training(request: gr.Request):
    """Set this session's stop flags; each lab's status says whether it had a job to stop."""
    said = []
    for lab in ("diffusion", "vae"):
        flag = _STOP_FLAGS.get((_session(request), lab))
        if flag is not None:
            flag.set()
        said.append("**Stopped.** The model trained so far is kept below." if flag is not None else gr.skip())
    return tuple(said)


def _temporary_path(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix="lab-")) / name


def _seed(seed) -> int:
    return check_number("seed", seed, 0, MAX_SEED, integer=True)


# ---------------------------------------------------------------- diffusion in 2-D


def _drawing_array(drawing) -> np.ndarray | None:
    """The composite picture of a Sketchpad value (a dict of arrays), or None when nothing is there."""
    if isinstance(drawing, dict):
        drawing = drawing.get("composite")
    return None if drawing is None else np.asarray(drawing)


def target_points(target: str, drawing, num_points: int, seed: int) -> torch.Tensor:
    if target == DRAWN:
        picture = _drawing_array(drawing)
        if picture is None:
            raise ValueError("drawing is empty: draw the shape to learn on the canvas, or pick a preset target.")
        return toy2d.points_from_drawing(picture, num_points, seed)
    return toy2d.target_points(target, num_points, seed)


def preview_target(target, drawing):
    """The target distribution before training (a note in the title instead of an error while drawing)."""
    try:
        return figures.point_cloud(target_points(target, drawing, NUM_SHOWN, 0), None, "target distribution")
    except ValueError as error:
        return figures.point_cloud(torch.zeros(0, 2), None, str(error).split(":")[0])


def _diffusion_status(run: toy2d.DiffusionRun) -> str:
    loss = f" · loss {run.losses[-1][1]:.3f}" if run.losses else ""
    distance = run.distances[-1][1]
    head = f"**Step {run.step}** · {run.elapsed_s:.1f} s{loss} · energy distance to the target {distance:.4f}"
    return f"{head} — {STATE_TEXT[run.state]}"


def train_diffusion(target, drawing, beta_schedule, num_steps, max_seconds, seed, request: gr.Request):
    """Stream (status, loss curves, samples over the target, run) while the ε-predictor trains."""

    def start(flag):
        settings = toy2d.DiffusionSettings(
            target=target,
            beta_schedule=beta_schedule,
            num_train_timesteps=num_steps,
            max_seconds=max_seconds,
            seed=seed,
        )
        points = target_points(target, drawing, settings.num_points, settings.seed)
        return _diffusion_updates(toy2d.train_diffusion(settings, points, flag))

    yield from _stream_with_stop_flag(request, "diffusion", start)


def _diffusion_updates(steps):
    shown = None  # the step whose samples are on the page
    for run in steps:
        snapshot = run.distances[-1][0]
        samples = gr.skip()
        if snapshot != shown:
            title = f"samples at step {snapshot}" if snapshot else "samples of the untrained model"
            samples = figures.point_cloud(run.points[:NUM_SHOWN], run.samples, title)
            shown = snapshot
        yield _diffusion_status(run), figures.loss_curves(run.losses, run.distances), samples, run


def _require(run, what: str):
    if run is None:
        raise gr.Error(f"train a {what} first (press Train).")
    return run


def reverse_process(run, seed):
    """Animate ancestral sampling from z_T ~ N(0, I) to z_0 with every DDPMScheduler step; offer the model file."""
    run = _require(run, "diffusion model")
    seed = _errors_as_gr_error(lambda: _seed(seed))
    model = toy2d.frozen_model(run)
    trajectory = toy2d.sample(model, run.scheduler, NUM_ANIMATED, seed=seed, keep_trajectory=True)
    T = run.scheduler.config.num_train_timesteps
    chosen = np.unique(np.linspace(0, T, NUM_FRAMES).round().astype(int))  # indices into z_T … z_0
    labels = [f"reverse process: z_{T - i}" for i in chosen]
    frames = figures.trajectory_frames(trajectory[chosen], run.points[:NUM_SHOWN], labels)
    gif = save_gif(frames + [frames[-1]] * 10, duration_ms=100)  # hold the result for a second
    path = _temporary_path(f"toy-diffusion-{run.settings.target}-T{T}.safetensors")
    return gif, figures.strip(frames), str(toy2d.save_toy_model(run, path))


def forward_and_field(run, t):
    """q(z_t | x) of the target points and the learned score field at step t (1 ≤ t ≤ T)."""
    run = _require(run, "diffusion model")
    T = run.scheduler.config.num_train_timesteps
    t = _errors_as_gr_error(lambda: check_number("t", t, 1, T, integer=True))
    noisy = toy2d.forward_samples(run.scheduler, run.points[:NUM_SHOWN], t - 1)
    axis = torch.linspace(-figures.LIMIT * 0.94, figures.LIMIT * 0.94, FIELD_GRID)
    grid = torch.cartesian_prod(axis, axis)
    field = toy2d.denoising_direction(toy2d.frozen_model(run), run.scheduler, grid, t - 1)
    return figures.forward_and_field(noisy, grid, field, t, float(run.scheduler.alphas_cumprod[t - 1]))


# ---------------------------------------------------------------- VAE with a 2-D latent


def _vae_status(run: lab_vae.VAERun) -> str:
    held = run.heldout[-1][1]
    head = (
        f"**Step {run.step}** · {run.elapsed_s:.1f} s · held-out ELBO {held.elbo:.1f} nats "
        f"= reconstruction {held.reconstruction:.1f} − KL {held.kl:.2f} (step {run.heldout[-1][0]})"
    )
    return f"{head} — {STATE_TEXT[run.state]}"


def train_vae(beta, max_seconds, seed, request: gr.Request):
    """Stream (status, ELBO curves, latent map, decoded grid, run) while the VAE trains."""

    def start(flag):
        settings = lab_vae.VAESettings(beta=beta, max_seconds=max_seconds, seed=seed)
        return _vae_updates(lab_vae.train_vae(settings, flag))

    yield "Loading MNIST…", gr.skip(), gr.skip(), gr.skip(), gr.skip()
    yield from _stream_with_stop_flag(request, "vae", start)


def _vae_updates(steps):
    shown = None
    extent = float(lab_vae.grid_axis(2)[-1])
    for run in steps:
        snapshot = run.heldout[-1][0]
        picture, grid = gr.skip(), gr.skip()
        if snapshot != shown:
            title = f"μ(x) of 500 held-out digits, step {snapshot} (dashed: the decoded grid)"
            picture = figures.latent_map(run.latents, run.labels, extent, title)
            grid = figures.digit_grid(run.grid, run.settings.grid_size)
            shown = snapshot
        yield _vae_status(run), figures.elbo_curves(run.train, run.heldout), picture, grid, run


def save_vae(run):
    run = _require(run, "VAE")
    path = _temporary_path(f"vae-2d-beta{run.settings.beta:g}.safetensors")
    return str(lab_vae.save_vae(run, path))


# ---------------------------------------------------------------- layout and events

INTRO = """Train the course notes' two models yourself, on this server, in under a minute, and watch them learn.
One training job runs at a time (others wait in the queue); each stops at its time limit or when you press Stop."""

DIFFUSION_HELP = """A small MLP g_θ(z_t, t) learns to predict the noise ε in z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε, with the
notes' loss ‖g_θ(z_t, t) − ε‖² (our `DDPMScheduler.add_noise` and `diffusion_loss_target`). Every few hundred steps
it samples with `DDPMScheduler.step`, from z_T ~ N(0, I) back to z_0 (blue), over the target (grey)."""

VAE_HELP = """The project's VAE with a **2-D latent** trains on 4,000 MNIST digits by maximising the ELBO =
E_q[ln p(x|z)] − β·KL[q(z|x) ‖ N(0, I)] (in nats, on continuous intensities). Left: the posterior means μ(x) of
500 held-out digits; right: the decoder's mean over a grid of z covering the prior's central 90% on each axis.
Try β = 0 (an autoencoder: no pull towards the prior) and β = 8 (posterior collapse: KL → 0, every z decodes alike)."""


def _diffusion_lab(demo: gr.Blocks):
    gr.Markdown(DIFFUSION_HELP)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            target = gr.Radio(
                [(toy2d.TARGET_LABELS[k], k) for k in (*toy2d.TARGETS, DRAWN)],
                value="moons",
                label="Target distribution",
                elem_id="lab-target",
            )
            drawing = gr.Sketchpad(
                label="Draw the target (black strokes; used when the target is 'your drawing')",
                value=None,
                type="numpy",
                image_mode="RGBA",
                canvas_size=(300, 300),
                height=320,
                brush=gr.Brush(default_size=12, colors=["#000000"], color_mode="fixed"),
                sources=(),
                visible=False,
                elem_id="lab-drawing",
            )
            schedule = gr.Dropdown(
                [(SCHEDULE_LABELS[n], n) for n in BETA_SCHEDULES], value="linear", label="β schedule"
            )
            num_steps = gr.Slider(toy2d.MIN_T, toy2d.MAX_T, value=100, step=1, label="T (diffusion steps)")
            max_seconds = gr.Slider(1, MAX_SECONDS, value=20, step=1, label="Train for at most (seconds)")
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_id="lab-diffusion-train")
                stop = gr.Button("Stop", variant="stop", elem_id="lab-diffusion-stop")
        with gr.Column(scale=2):
            status = gr.Markdown("Pick a target and press **Train**.", elem_id="lab-diffusion-status")
            with gr.Row():
                samples = gr.Image(label="Samples over the target", type="pil", format="png", elem_id="lab-samples")
                curves = gr.Image(label="Training curves", type="pil", format="png", elem_id="lab-loss")
    gr.Markdown("### The trained model: the reverse process, the forward process and the learned field")
    with gr.Row():
        with gr.Column(scale=1):
            animation = gr.Image(
                label="Reverse process z_T → z_0 (orange: paths of 40 points)",
                type="filepath",
                elem_id="lab-animation",
            )
            anim_seed = gr.Number(1, precision=0, minimum=0, maximum=MAX_SEED, label="Sampling seed")
            animate = gr.Button("Sample and animate again", elem_id="lab-animate")
            download = gr.File(label="The trained model (safetensors, with its scheduler config)", elem_id="lab-file")
        with gr.Column(scale=2):
            frames = gr.Image(label="Frames of the reverse process", type="pil", format="png", elem_id="lab-frames")
            t = gr.Slider(1, 100, value=30, step=1, label="t: the forward process q(z_t | x) and the field at t")
            field = gr.Image(
                label="Forward process and learned denoising direction", type="pil", format="png", elem_id="lab-field"
            )
    run = gr.State(None)

    inputs = [target, drawing, schedule, num_steps, max_seconds, seed]
    training = train.click(
        train_diffusion,
        inputs,
        [status, curves, samples, run],
        api_name="lab_train_diffusion",
        concurrency_id="lab-train",
        concurrency_limit=1,
        show_progress="minimal",
    )
    results = [animation, frames, download]

    def after_training(event) -> None:  # when training ends or is stopped: animate, draw the field, offer the file
        event.then(reverse_process, [run, anim_seed], results, **_private_heavy("ui_lab_animate")).then(
            forward_and_field, [run, t], field, **_private_heavy("ui_lab_field")
        )

    after_training(training)
    animate.click(reverse_process, [run, anim_seed], results, api_name="lab_reverse_process", concurrency_id="heavy")
    t.release(forward_and_field, [run, t], field, api_name="lab_forward_and_field", concurrency_id="heavy")
    num_steps.change(
        lambda T, now: gr.update(maximum=int(T), value=min(int(now), int(T))),
        [num_steps, t],
        t,
        api_name="ui_lab_t_range",
        api_visibility="private",
    )
    target.change(
        lambda name: gr.update(visible=name == DRAWN),
        target,
        drawing,
        api_name="ui_lab_canvas",
        api_visibility="private",
    )
    for trigger in (target.change, drawing.change):
        trigger(
            preview_target,
            [target, drawing],
            samples,
            api_name="ui_lab_preview",
            api_visibility="private",
            trigger_mode="always_last",
            show_progress="hidden",
        )
    demo.load(preview_target, [target, drawing], samples, api_name="ui_lab_preview_load", api_visibility="private")
    preview = gr.Button(visible=False)
    preview.click(preview_target, [target, drawing], samples, api_name="lab_target")
    return training, stop, status, after_training


def _private_heavy(name: str) -> dict:
    return {**_private(name), "concurrency_id": "heavy"}


def _vae_lab():
    gr.Markdown(VAE_HELP)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            beta = gr.Slider(0, 8, value=1, step=0.25, label="β (KL weight; 1 = the ELBO)", elem_id="lab-beta")
            max_seconds = gr.Slider(1, MAX_SECONDS, value=45, step=1, label="Train for at most (seconds)")
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
            with gr.Row():
                train = gr.Button("Train", variant="primary", elem_id="lab-vae-train")
                stop = gr.Button("Stop", variant="stop", elem_id="lab-vae-stop")
            download = gr.File(label="The trained VAE (safetensors)", elem_id="lab-vae-file")
        with gr.Column(scale=3):
            status = gr.Markdown("Press **Train**.", elem_id="lab-vae-status")
            curves = gr.Image(label="ELBO and its terms", type="pil", format="png", elem_id="lab-elbo")
    with gr.Row():
        latent = gr.Image(label="Latent map (held-out digits)", type="pil", format="png", elem_id="lab-latent")
        grid = gr.Image(label="Decoded grid over the latent plane", type="pil", format="png", elem_id="lab-grid")
    run = gr.State(None)
    training = train.click(
        train_vae,
        [beta, max_seconds, seed],
        [status, curves, latent, grid, run],
        api_name="lab_train_vae",
        concurrency_id="lab-train",
        concurrency_limit=1,
        show_progress="minimal",
    )

    def after_training(event) -> None:  # when training ends or is stopped: offer the file
        event.then(save_vae, run, download, api_name="ui_lab_save_vae", api_visibility="private")

    after_training(training)
    return training, stop, status, after_training


def build(demo: gr.Blocks) -> None:
    """The tab's layout and events (called inside ``with gr.Tab(TITLE, id=ID):`` of the app's Blocks)."""
    gr.Markdown(INTRO)
    with gr.Tabs():
        with gr.Tab("Diffusion in 2-D", id="lab-diffusion"):
            diffusion = _diffusion_lab(demo)
        with gr.Tab("VAE with a 2-D latent (MNIST)", id="lab-vae"):
            vae = _vae_lab()
    trainings, statuses = [diffusion[0], vae[0]], [diffusion[2], vae[2]]
    for (_, button, _, after_training), api in zip(
        (diffusion, vae), ({"api_name": "lab_stop"}, _private("ui_lab_stop"))
    ):
        stopping = button.click(stop_training, None, statuses, cancels=trainings, **api)
        after_training(stopping)


def _private(name: str) -> dict:
    return {"api_name": name, "api_visibility": "private"}
