"""The "Train it yourself" tab: a visitor trains a 2-D diffusion model and a 2-D-latent VAE on the server and
watches them learn (after Diffusion Explorer, https://arxiv.org/abs/2507.01178, and GAN Lab,
https://arxiv.org/abs/1809.01587).

Both training events share the ``lab-train`` concurrency group with a limit of 1: one job at a time, the others
wait in the queue and see their place. Each job is bounded (≤ 60 s) and stoppable: Stop cancels the event and
sets the session's stop flag, which the loop checks at every step. Rendering afterwards is ``heavy`` work.
"""

from __future__ import annotations

import gradio as gr

from lab import toy2d_targets
from lab.budget import MAX_SECONDS
from pipelines.schedules import schedule_label

from .. import lab_handlers as handlers
from ..limits import HEAVY, LAB_TRAIN
from ..widgets import seed_input

TITLE = "Train it yourself"
ID = "lab"

INTRO = """Train the course notes' two models yourself, on this server, in under a minute, and watch them learn.
One training job runs at a time (others wait in the queue); each stops at its time limit or when you press Stop."""

DIFFUSION_HELP = """A small MLP g_θ(z_t, t) learns to predict the noise ε in z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε, with the
notes' loss ‖g_θ(z_t, t) − ε‖² (our `DDPMScheduler.add_noise` and `diffusion_loss_target`). Every few hundred steps
it samples with `DDPMScheduler.step`, from z_T ~ N(0, I) back to z_0 (blue), over the target (grey)."""

VAE_HELP = """The project's VAE with a **2-D latent** trains on 4,000 MNIST digits by maximising the ELBO =
E_q[ln p(x|z)] − β·KL[q(z|x) ‖ N(0, I)] (in nats, on continuous intensities). Left: the posterior means μ(x) of
500 held-out digits; right: the decoder's mean over a grid of z covering the prior's central 90% on each axis.
Try β = 0 (an autoencoder: no pull towards the prior) and β = 8 (posterior collapse: KL → 0, every z decodes alike)."""


def _private(name: str, **more) -> dict:
    return {"api_name": name, "api_visibility": "private", **more}


def _picture(elem_id: str, label: str, **more) -> gr.Image:
    """An output picture whose title is drawn inside it (so Gradio's label badge would only hide it); ``label`` is its
    name in the API."""
    return gr.Image(label=label, show_label=False, type="pil", format="png", elem_id=elem_id, **more)


def _seconds(default: int, elem_id: str) -> gr.Slider:
    return gr.Slider(1, MAX_SECONDS, value=default, step=1, label="Train for at most (seconds)", elem_id=elem_id)


def _train_and_stop(prefix: str) -> tuple[gr.Button, gr.Button]:
    with gr.Row():
        return (
            gr.Button("Train", variant="primary", elem_id=f"lab-{prefix}-train"),
            gr.Button("Stop", variant="stop", elem_id=f"lab-{prefix}-stop"),
        )


def _diffusion_inputs():
    target = gr.Radio(
        [(toy2d_targets.TARGET_LABELS[k], k) for k in (*toy2d_targets.TARGETS, handlers.DRAWN)],
        value="moons",
        label="Target distribution",
        elem_id="lab-target",
    )
    drawing = gr.Sketchpad(
        label="Draw the target with black strokes",
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
        [(schedule_label(n), n) for n in toy2d_targets.SCHEDULES], value="linear", label="β schedule"
    )
    num_steps = gr.Slider(toy2d_targets.MIN_T, toy2d_targets.MAX_T, value=100, step=1, label="T (diffusion steps)")
    max_seconds = _seconds(20, "lab-diffusion-seconds")
    seed = seed_input()
    return target, drawing, schedule, num_steps, max_seconds, seed


def _diffusion_results():
    """The trained model's section: (animation, its seed, its button, the download, frames, t, the field)."""
    gr.Markdown("### The trained model: the reverse process, the forward process and the learned field")
    with gr.Row():
        with gr.Column(scale=1):
            animation = gr.Image(label="animation", show_label=False, type="filepath", elem_id="lab-animation")
            anim_seed = seed_input("Sampling seed", 1)
            animate = gr.Button("Sample and animate again", elem_id="lab-animate")
            download = gr.File(label="trained_model", elem_id="lab-file")
        with gr.Column(scale=2):
            frames = _picture("lab-frames", "frames")
            # the API's bound is the largest T a run may have; the page narrows it to the trained run's T, and the
            # handler checks t against that run (a client that trained with T = 1000 may ask for t = 1000)
            t = gr.Slider(
                1, toy2d_targets.MAX_T, value=5, step=1, label="t: the forward process q(z_t | x) and the field at t"
            )
            field = _picture("lab-field", "field")
    return animation, anim_seed, animate, download, frames, t, field


def _diffusion_lab(demo: gr.Blocks):
    """The 2-D diffusion lab; returns (its training event, its Stop button, its status)."""
    gr.Markdown(DIFFUSION_HELP)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            inputs = _diffusion_inputs()
            train, stop = _train_and_stop("diffusion")
        with gr.Column(scale=2):
            status = gr.Markdown(
                "Pick a target and press **Train**.", label="diffusion_status", elem_id="lab-diffusion-status"
            )
            with gr.Row():
                samples = _picture("lab-samples", "samples")
                curves = _picture("lab-loss", "training_curves")
    animation, anim_seed, animate, download, frames, t, field = _diffusion_results()
    run = gr.State(None)
    target, drawing, _, num_steps, _, _ = inputs
    training = train.click(
        handlers.train_diffusion,
        list(inputs),
        [status, samples, curves, run],
        api_name="lab_train_diffusion",
        concurrency_id=LAB_TRAIN,
        concurrency_limit=1,
        show_progress="minimal",
    )
    results = [animation, frames, download]
    # after training ends or is stopped (a cancelled event runs its .then too): animate, draw the field, offer the file
    training.then(
        handlers.reverse_process, [run, anim_seed], results, **_private("ui_lab_animate", concurrency_id=HEAVY)
    ).then(handlers.forward_and_field, [run, t], field, **_private("ui_lab_field", concurrency_id=HEAVY))
    animate.click(
        handlers.reverse_process, [run, anim_seed], results, api_name="lab_reverse_process", concurrency_id=HEAVY
    )
    t.release(handlers.forward_and_field, [run, t], field, api_name="lab_forward_and_field", concurrency_id=HEAVY)
    num_steps.change(handlers.t_slider_range, [num_steps, t], t, **_private("ui_lab_t_range"))
    _preview_events(demo, target, drawing, samples)
    return training, stop, status


def _preview_events(demo: gr.Blocks, target, drawing, samples) -> None:
    """Show the canvas only for a drawn target, and the target itself before training (on load and on change)."""
    target.change(lambda name: gr.update(visible=name == handlers.DRAWN), target, drawing, **_private("ui_lab_canvas"))
    gr.on(
        [target.change, drawing.change],
        handlers.preview_target,
        [target, drawing],
        samples,
        **_private("ui_lab_preview", trigger_mode="always_last", show_progress="hidden"),
    )
    demo.load(handlers.preview_target, [target, drawing], samples, **_private("ui_lab_preview_load"))
    gr.Button(visible=False).click(handlers.preview_target, [target, drawing], samples, api_name="lab_target")


def _vae_lab():
    """The 2-D-latent VAE lab; returns (its training event, its Stop button, its status)."""
    gr.Markdown(VAE_HELP)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            beta = gr.Slider(0, 8, value=1, step=0.25, label="β (KL weight; 1 = the ELBO)", elem_id="lab-beta")
            max_seconds = _seconds(60, "lab-vae-seconds")
            seed = seed_input()
            train, stop = _train_and_stop("vae")
            download = gr.File(label="trained_vae", elem_id="lab-vae-file")
        with gr.Column(scale=3):
            status = gr.Markdown("Press **Train**.", label="vae_status", elem_id="lab-vae-status")
            curves = _picture("lab-elbo", "elbo_curves")
    with gr.Row():
        latent = _picture("lab-latent", "latent_map")
        grid = _picture("lab-grid", "decoded_grid")
    run = gr.State(None)
    training = train.click(
        handlers.train_vae,
        [beta, max_seconds, seed],
        [status, curves, latent, grid, run],
        api_name="lab_train_vae",
        concurrency_id=LAB_TRAIN,
        concurrency_limit=1,
        show_progress="minimal",
    )
    training.then(handlers.save_vae, run, download, **_private("ui_lab_save_vae"))  # also after a Stop
    return training, stop, status


def build(demo: gr.Blocks) -> None:
    """The tab's layout and events (called inside ``with gr.Tab(TITLE, id=ID):`` of the app's Blocks)."""
    gr.Markdown(INTRO)
    with gr.Tabs():
        with gr.Tab("Diffusion in 2-D", id="lab-diffusion"):
            diffusion_training, diffusion_stop, diffusion_status = _diffusion_lab(demo)
        with gr.Tab("VAE with a 2-D latent (MNIST)", id="lab-vae"):
            vae_training, vae_stop, vae_status = _vae_lab()
    trainings, statuses = [diffusion_training, vae_training], [diffusion_status, vae_status]
    diffusion_stop.click(handlers.stop_training, None, statuses, cancels=trainings, api_name="lab_stop")
    vae_stop.click(handlers.stop_training, None, statuses, cancels=trainings, **_private("ui_lab_stop"))
