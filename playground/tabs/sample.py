"""The Sample tab: pick a DDPM, a sampler and its settings; the pipeline runs in a worker thread and the page is
streamed z_t and x̂_0 as it goes, then the samples and a GIF of the trajectory."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import gradio as gr
import torch
from PIL import Image, ImageDraw

from pipelines.defaults import (
    DEFAULT_AUTOGUIDANCE_SCALE,
    DEFAULT_DDIM_ETA,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_SAMPLER,
    MAX_GUIDANCE_SCALE,
    app_sampling_kwargs,
)
from pipelines.samplers import resolve_sampler, stored_sampling

from .. import models
from ..cancel import cancellable, interrupt_if_stopped
from ..images import gif_file, grid, save_gif, to_pils
from ..limits import HEAVY
from ..steps_grid import GRID_HEADERS, MAX_GRID_IMAGES, STEP_COUNTS, steps_quality
from ..validation import (
    MAX_IMAGES,
    check_choice,
    check_float,
    check_int,
    check_num_images,
    check_seed,
    check_steps,
)
from ..widgets import ON_OPEN, missing_banner, seed_input, when_bundled

TITLE = "Sample"
ID = "sample"
STREAM_UPDATES = 10  # about this many z_t / x̂_0 pictures per run: the trajectory GIF's frames
# while sampling, a picture is decoded and shown only if this long has passed since the last one: a quick run
# shows its digits first and decodes its trajectory after (each picture decodes 2 × N latents through the VAE)
STREAM_INTERVAL_S = 0.3


def trajectory_frame(z_t: torch.Tensor, x0: torch.Tensor | None, t: int, step: int, total: int) -> Image.Image:
    """z_t (left) and the model's x̂_0 at it (right), as grids with a caption."""
    nrow = math.ceil(math.sqrt(z_t.shape[0]))
    left = grid(z_t, nrow, scale=2)
    right = grid(x0 if x0 is not None else torch.zeros_like(z_t), nrow, scale=2)
    header, gap = 22, 12
    frame = Image.new("L", (left.width + gap + right.width, left.height + header), 255)  # grayscale: a cheap GIF
    frame.paste(left, (0, header))
    frame.paste(right, (left.width + gap, header))
    draw = ImageDraw.Draw(frame)
    draw.text((4, 5), f"z after step {step}/{total} (from t = {t})", fill=0)
    draw.text((left.width + gap + 4, 5), f"predicted x^_0 at t = {t}", fill=0)
    return frame


def validate(model, sampler, steps, eta, seed, num_images, digit, guidance, autoguidance=DEFAULT_AUTOGUIDANCE_SCALE):
    """Every Sample input checked; returns them converted. The model must be bundled."""
    model = check_choice("model", model, models.DIFFUSION_MODELS)
    sampler = check_choice("sampler", sampler, models.SAMPLERS)
    if not models.is_available(model):
        raise gr.Error(models.missing_message(model))
    steps = check_steps(sampler, steps, models.num_train_timesteps(model))
    eta = check_float("η (eta)", eta, 0.0, 1.0)
    seed = check_seed(seed)
    num_images = check_num_images(num_images)
    digit = check_int("digit", digit, 0, 9)
    guidance = check_float("guidance scale", guidance, 0.0, MAX_GUIDANCE_SCALE)
    autoguidance = check_float("autoguidance scale", autoguidance, 0.0, MAX_GUIDANCE_SCALE)
    return model, sampler, steps, eta, seed, num_images, digit, guidance, autoguidance


def sample_stream(
    model,
    sampler,
    steps,
    eta,
    seed,
    num_images,
    digit,
    guidance,
    autoguidance=DEFAULT_AUTOGUIDANCE_SCALE,
    progress=gr.Progress(),
    stop: threading.Event | None = None,
    emit=None,
):
    """Yields (gallery, trajectory picture, status, GIF path): the digits, then their trajectory and its GIF.
    ``guidance`` applies to the class-conditional model, ``autoguidance`` to unconditional models that ship a guide.
    While sampling, ``emit`` (given by playground/cancel.py) sends the page z_t and x̂_0 pictures; setting ``stop``
    ends the sampling after its current step."""
    model, sampler, steps, eta, seed, num_images, digit, guidance, autoguidance = validate(
        model, sampler, steps, eta, seed, num_images, digit, guidance, autoguidance
    )
    with models.unavailable_as_gr_error():
        pipe = models.sampling_pipeline(model, sampler)
    conditional = models.is_conditional(model)
    autoguidance = autoguidance if pipe.guide_unet is not None else 1.0
    every = max(1, math.ceil(steps / STREAM_UPDATES))
    kept: list[tuple] = []  # (step, t, z_t, x̂_0) every `every` steps: the trajectory, decoded when shown
    frames: dict[int, Image.Image] = {}  # step → its decoded picture
    last_shown = [time.perf_counter()]

    def picture(step, t, z_t, x0):
        if step not in frames:
            z_t = pipe.decode_latents(z_t).cpu()
            x0 = None if x0 is None else pipe.decode_latents(x0).cpu()
            frames[step] = trajectory_frame(z_t, x0, t, step, steps)
        return frames[step]

    def on_step_end(p, step_index, timestep, kwargs):
        if interrupt_if_stopped(p, stop):
            return kwargs
        if step_index % every == 0 or step_index == steps - 1:
            x0 = kwargs.get("pred_original_sample")
            kept.append(
                (step_index + 1, int(timestep), kwargs["latents"].clone(), None if x0 is None else x0.float().clone())
            )
            if emit is not None and time.perf_counter() - last_shown[0] >= STREAM_INTERVAL_S:
                progress((step_index + 1) / steps, desc=f"{sampler} step {step_index + 1}/{steps}")
                emit((gr.skip(), picture(*kept[-1]), f"{sampler} step {step_index + 1}/{steps} …", gr.skip()))
                last_shown[0] = time.perf_counter()
        return kwargs

    guidance_kwargs = app_sampling_kwargs(pipe, guidance_scale=guidance, autoguidance_scale=autoguidance)
    start = time.perf_counter()
    try:
        output = pipe(
            batch_size=num_images,
            generator=torch.Generator().manual_seed(seed),
            num_inference_steps=steps,
            eta=eta,
            class_labels=digit if conditional else None,
            **guidance_kwargs,
            output_type="pt",
            callback_on_step_end=on_step_end,
            callback_on_step_end_tensor_inputs=["latents", "pred_original_sample"],
        )
    except Exception as error:
        raise gr.Error(f"sampling failed: {error}") from error
    if stop is not None and stop.is_set():  # cancelled: nothing more to show
        return
    seconds = time.perf_counter() - start
    what = f"digit {digit}, guidance w = {guidance:g}" if conditional else "unconditional"
    if pipe.guide_unet is not None:
        what += f", autoguidance w = {autoguidance:g}"
    guided = guidance != 1 if conditional else pipe.guide_unet is not None and autoguidance != 1
    if guided and guidance_kwargs.get("guidance_interval"):  # the model's own interval, for the guidance it has
        low, high = guidance_kwargs["guidance_interval"]
        what += f" where {low:g} < σ_t ≤ {high:g}"
    status = (
        f"**{num_images} images** from the {models.SPECS[model].label} with {sampler} "
        f"({steps} steps{f', η = {eta:g}' if resolve_sampler(sampler).takes_eta else ''}; {what}; seed {seed}) "
        f"in {seconds:.2f} s."
    )
    gallery = to_pils(output.images, scale=1)  # 28 px: the page enlarges them (playground/style.py)
    yield gallery, gr.skip(), status, gr.skip()  # the digits first; then the trajectory, decoded now if not yet
    trajectory = [picture(*entry) for entry in kept]
    yield gallery, trajectory[-1] if trajectory else None, status, save_gif(trajectory)


def default_model() -> str:
    return "latent" if models.is_available("latent") else "pixel"


def shows_autoguidance(model: str | None) -> bool:
    return model in models.DIFFUSION_MODELS and not models.SPECS[model].conditional and models.has_guide(model)


def stored(key: str) -> dict:
    """How bundled model ``key`` samples best, as its folder stores it (read without loading; {} if it stores none)."""
    return stored_sampling(models.model_folder(key)) if models.is_available(key) else {}


def default_inputs() -> dict:
    """The tab's starting values: how the starting model samples best as its folder stores it (the conditional
    model's folder for the guidance weight), else pipelines/defaults.py; the first view samples with them."""
    model = default_model()
    best, conditional = stored(model), stored("conditional")
    sampler = resolve_sampler(best.get("sampler") or DEFAULT_SAMPLER).label
    return {
        "model": model,
        "sampler": sampler,
        "steps": best.get("num_inference_steps", models.default_steps(sampler)),
        "eta": DEFAULT_DDIM_ETA,
        "seed": 0,
        "num_images": 16,
        "digit": 3,
        "guidance": conditional.get("guidance_scale", DEFAULT_GUIDANCE_SCALE),
        "autoguidance": best.get("autoguidance_scale", DEFAULT_AUTOGUIDANCE_SCALE),
    }


_first_views: dict[tuple, tuple] = {}  # the starting values → (gallery, trajectory, status, the GIF's bytes)


def first_view(stop: threading.Event | None = None, emit=None):
    """The first batch at the starting values, streamed to the first visitor, then kept: later visitors see it at once.
    The GIF is kept as bytes and written to a fresh file for each visitor: the cache sweep deletes old files."""
    inputs = tuple(default_inputs().values())
    if inputs in _first_views:
        gallery, trajectory, status, gif = _first_views[inputs]
        yield gallery, trajectory, status, gif_file(gif)
        return
    last = None
    for last in sample_stream(*inputs, progress=lambda *args, **kwargs: None, stop=stop, emit=emit):
        yield last
    if last is None:  # stopped before the end
        return
    gallery, trajectory, status, gif = last
    _first_views[inputs] = (gallery, trajectory, status, Path(gif).read_bytes())


def steps_label() -> str:
    caps = ", ".join(f"{s} ≤ {models.max_steps(s)}" for s in models.SAMPLERS)
    return f"Steps ({caps})"


def build(demo: gr.Blocks) -> None:
    """The Sample tab's layout and events: it opens on a first batch sampled with the starting values."""
    missing_banner(*models.DIFFUSION_MODELS)
    start = default_inputs()
    with gr.Row():
        with gr.Column(scale=1):
            inputs, conditional_inputs, autoguidance_inputs = sample_controls(start)
            run = gr.Button("Sample", variant="primary", elem_id="sample-button")
        with gr.Column(scale=2):
            status = gr.Markdown(label="status", elem_id="sample-status")
            gallery = gr.Gallery(
                format="png", object_fit="contain", label="samples", columns=6, height="auto", elem_id="sample-gallery"
            )
            trajectory = gr.Image(
                label="trajectory", type="pil", format="png", elem_id="sample-trajectory", show_label=False
            )
            gr.Markdown("Reverse process, streamed: z_t (left) and the model's prediction x̂_0 (right).")
            gif = gr.File(label="gif", elem_id="sample-gif")
    outputs = [gallery, trajectory, status, gif]
    model, sampler, steps, eta = inputs["model"], inputs["sampler"], inputs["steps"], inputs["eta"]
    sampler.change(
        lambda s: (
            (gr.update(value=models.default_steps(s)), gr.update(visible=resolve_sampler(s).takes_eta))
            if s in models.SAMPLERS
            else (gr.skip(), gr.skip())
        ),
        sampler,
        [steps, eta],
        api_name="ui_default_steps",
        api_visibility="private",
    )
    model.change(
        lambda m: (
            gr.update(visible=m in models.DIFFUSION_MODELS and models.is_conditional(m)),
            gr.update(visible=shows_autoguidance(m)),
        ),
        model,
        [conditional_inputs, autoguidance_inputs],
        api_name="ui_conditional_inputs",
        api_visibility="private",
    )
    first_batch = demo.load(
        cancellable(when_bundled(first_view, start["model"])),
        None,
        outputs,
        api_name="ui_first_batch",
        api_visibility="private",
        **ON_OPEN,
    )
    run.click(
        cancellable(sample_stream),
        list(inputs.values()),
        outputs,
        api_name="sample",
        concurrency_id=HEAVY,
        cancels=[first_batch],  # a visitor's first click wins over the first batch still on its way
        trigger_mode="always_last",  # a click while the last run decodes its trajectory runs next, not lost
        # no pending overlay: the status line and the streamed trajectory show the progress, and the overlay's
        # animation took CPU from the sampler when page and server share a machine (docs/speed.md)
        show_progress="hidden",
    )
    steps_quality_section(model)


def sample_controls(start: dict) -> tuple[dict, gr.Group, gr.Group]:
    """The inputs of /sample in its order (keys as ``default_inputs``), and the groups shown only for some models."""
    model = gr.Dropdown(
        [(models.SPECS[k].label, k) for k in models.DIFFUSION_MODELS], value=start["model"], label="Model"
    )
    sampler = gr.Radio(list(models.SAMPLERS), value=start["sampler"], label="Sampler")
    steps = gr.Slider(  # the largest cap of any sampler: the API checks a call against it, then each sampler's own
        1,
        max(models.max_steps(s) for s in models.SAMPLERS),
        value=start["steps"],
        step=1,
        label=steps_label(),
        elem_id="sample-steps",
    )
    eta = gr.Slider(
        0,
        1,
        value=start["eta"],
        step=0.05,
        label="DDIM η (0 = deterministic, 1 = DDPM-like noise)",
        visible=resolve_sampler(start["sampler"]).takes_eta,  # shown for the samplers that take it
    )
    num_images = gr.Slider(1, MAX_IMAGES, value=start["num_images"], step=1, label="Number of images")
    seed = seed_input(value=start["seed"])
    with gr.Group(visible=models.SPECS[start["model"]].conditional) as conditional_inputs:
        digit = gr.Slider(0, 9, value=start["digit"], step=1, label="Digit (class-conditional model only)")
        guidance = gr.Slider(
            0,
            MAX_GUIDANCE_SCALE,
            value=start["guidance"],
            step=0.5,
            label="Guidance scale w (class-conditional model only)",
        )
    with gr.Group(visible=shows_autoguidance(start["model"])) as autoguidance_inputs:
        autoguidance = gr.Slider(
            0,
            MAX_GUIDANCE_SCALE,
            value=start["autoguidance"],
            step=0.25,
            elem_id="sample-autoguidance",
            label="Autoguidance w: steer away from a weaker guide model, smaller or trained shorter (1 = off)",
        )
    inputs = {  # the order of /sample's parameters (shown in another order)
        "model": model,
        "sampler": sampler,
        "steps": steps,
        "eta": eta,
        "seed": seed,
        "num_images": num_images,
        "digit": digit,
        "guidance": guidance,
        "autoguidance": autoguidance,
    }
    return inputs, conditional_inputs, autoguidance_inputs


def steps_quality_section(model: gr.Dropdown) -> None:
    """What steps buy: one grid of the same seeds under every sampler and step count, scored by the classifier."""
    with gr.Accordion("What steps buy: samplers × steps, scored by the classifier", open=False):
        gr.Markdown(
            f"The same seeds (so the same z_T) sampled with each sampler at {', '.join(map(str, STEP_COUNTS))} "
            "steps, with the model chosen above. Each cell says which share of its digits the project's "
            "classifier is confident about (probability ≥ 0.9 for one digit, as `training.evaluate` counts)."
        )
        with gr.Row():
            grid_images = gr.Slider(1, MAX_GRID_IMAGES, value=8, step=1, label="Images per cell")
            grid_seed = seed_input()
            grid_run = gr.Button("Compare", variant="primary", elem_id="steps-button")
        cells = gr.Gallery(
            format="png",
            object_fit="contain",
            label="cells",
            columns=len(STEP_COUNTS),
            height="auto",
            elem_id="steps-gallery",
        )
        table = gr.Dataframe(headers=GRID_HEADERS, label="scores", elem_id="steps-table")
    grid_run.click(
        steps_quality,
        [model, grid_images, grid_seed],
        [cells, table],
        api_name="steps_quality",
        concurrency_id=HEAVY,
    )
