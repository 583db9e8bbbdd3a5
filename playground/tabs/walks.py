"""The Walks tab: the diffusion model's own latent walks, decoded by deterministic DDIM (η = 0).

DDIM with η = 0 maps each noise z_T to one image, so the noise is the model's latent: a path between two noises
(slerp, pipelines.interpolation.slerp) morphs one generated digit into another, and DDIM inversion
(pipelines/ddim_inversion.py) finds the noise of a real digit, so that two real digits can be walked between too,
next to the VAE's walk of the same two digits.
"""

from __future__ import annotations

from functools import lru_cache

import gradio as gr
import torch
from PIL import Image

from pipelines.interpolation import slerp

from .. import models
from ..images import gif_bytes, gif_file, grid, has_drawing, input_digit, test_digit, to_pils
from ..validation import check_choice, check_int, check_seed, check_steps
from ..widgets import NUM_TEST, digit_inputs, endpoint_shown_on_open, missing_banner, seed_input

TITLE = "Walks"
ID = "walks"
WALK_MODELS = ("latent", "pixel")  # unconditional: the noise z_T is all there is to their samples
DEFAULT_STEPS = 25
MAX_FRAMES = 16
TRAJECTORY_FRAMES = 5  # frames shown on each way (x → z_T, z_T → x̂)


def check_walk(model, steps) -> tuple[str, int]:
    model = check_choice("model", model, WALK_MODELS)
    if not models.is_available(model):
        raise gr.Error(models.missing_message(model))
    steps = check_steps("DDIM", steps, models.num_train_timesteps(model))
    return model, steps


def walk_pipe(model: str):
    """A per-request pipeline of ``model`` with its own deterministic DDIM scheduler, x̂_0 never clipped (so that
    decoding is exactly the map that inversion runs backwards)."""
    with models.unavailable_as_gr_error():
        pipe = models.sampling_pipeline(model, "DDIM", clip_sample=False)
    pipe.default_precision = "loaded"  # both directions in the same fp32 arithmetic: the round trip is that exact
    return pipe


def seed_noise(pipe, seed: int) -> torch.Tensor:
    """z_T ~ N(0, I) of one sample, drawn from ``seed`` exactly as the pipeline draws it."""
    return pipe.prepare_latents(1, torch.Generator().manual_seed(seed), pipe.device)[0]


def ddim_decode(pipe, noise: torch.Tensor, steps: int, **kwargs):
    """DDIM (η = 0) from the given z_T, (N, C, H, W): the pipeline's own call with ``latents=``."""
    return pipe(batch_size=len(noise), latents=noise, num_inference_steps=steps, eta=0.0, output_type="pt", **kwargs)


def noise_path(z_a: torch.Tensor, z_b: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``num_frames`` noises on the great circle from z_a to z_b (both ends included): (F, C, H, W)."""
    return slerp(z_a, z_b, torch.linspace(0.0, 1.0, num_frames))


def frame_pairs(left: torch.Tensor, right: torch.Tensor) -> list[Image.Image]:
    """GIF frames there and back, each the two walks' k-th images side by side."""
    order = list(range(len(left))) + list(range(len(left) - 2, 0, -1))
    return [grid(torch.stack([left[k], right[k]]), nrow=2, scale=4) for k in order]


def walk_seeds(model="latent", seed_a=0, seed_b=1, num_frames=8, steps=DEFAULT_STEPS):
    """DDIM (η = 0) decodes of slerp(z_A, z_B; s), s from 0 to 1: (frames, GIF path, summary)."""
    model, steps = check_walk(model, steps)
    seed_a, seed_b = check_seed(seed_a), check_seed(seed_b)
    num_frames = check_int("number of frames", num_frames, 2, MAX_FRAMES)
    frames, gif, summary = seed_morph(model, seed_a, seed_b, num_frames, steps)
    return frames, gif_file(gif), summary


# deterministic: a walk seen once (the page's first view above all) is served from memory; a cached walk keeps its
# GIF's bytes, and each answer writes them to a fresh file, since the cache sweep deletes old ones
@lru_cache(maxsize=16)
@torch.no_grad()
def seed_morph(model: str, seed_a: int, seed_b: int, num_frames: int, steps: int):
    pipe = walk_pipe(model)
    noise = noise_path(seed_noise(pipe, seed_a), seed_noise(pipe, seed_b), num_frames)
    images = ddim_decode(pipe, noise, steps).images
    fractions = torch.linspace(0.0, 1.0, num_frames).tolist()
    frames = [(picture, f"s = {s:.2f}") for picture, s in zip(to_pils(images), fractions)]
    order = list(range(num_frames)) + list(range(num_frames - 2, 0, -1))
    gif = gif_bytes([to_pils(images[k : k + 1], scale=6)[0] for k in order])
    summary = (
        f"{models.SPECS[model].label}: DDIM, {steps} steps, η = 0, from slerp(z_A, z_B; s) with z_A from seed "
        f"{seed_a} and z_B from seed {seed_b}."
    )
    return frames, gif, summary


def trajectory_pictures(pipe, points, arrow: str) -> list[tuple[Image.Image, str]]:
    """Recorded (t, z_t, x̂_0) points as captioned pictures of z_t (decoded by the VAE for a latent model)."""
    return [(to_pils(pipe.decode_latents(point.sample))[0], f"{arrow} t = {point.timestep}") for point in points]


def ddim_invert(model="latent", test_index=0, drawing=None, steps=DEFAULT_STEPS):
    """x → z_T by DDIM inversion, then z_T → x̂ by DDIM: (frames x … z_T … x̂, GIF path, errors, summary)."""
    model, steps = check_walk(model, steps)
    if has_drawing(drawing):
        frames, gif, errors, summary = inversion_round_trip(model, *input_digit(test_index, drawing), steps)
    else:
        index = check_int("test digit index", test_index, 0, NUM_TEST - 1)
        frames, gif, errors, summary = test_digit_round_trip(model, index, steps)
    return frames, gif_file(gif), errors, summary


@lru_cache(maxsize=16)
def test_digit_round_trip(model: str, test_index: int, steps: int):
    return inversion_round_trip(model, *input_digit(test_index, None), steps)


@torch.no_grad()
def inversion_round_trip(model: str, x: torch.Tensor, caption: str, steps: int):
    pipe = walk_pipe(model)
    every = max(1, steps // TRAJECTORY_FRAMES)
    inverted = pipe.invert(x, steps, return_trajectory_every=every)
    decoded = ddim_decode(pipe, inverted.noise, steps, return_trajectory_every=every)
    x_hat = decoded.images
    errors = {
        "steps": steps,
        "mean_abs_error": round(float((x_hat - x).abs().mean()), 4),  # pixels in [0, 1]
        "max_abs_error": round(float((x_hat - x).abs().max()), 4),
        "noise_std": round(float(inverted.noise.std()), 3),  # a draw of N(0, I) has std 1
    }
    floor = ""
    if model == "latent":  # the VAE alone loses this much: decode(encode(x)) ≠ x
        vae_only = pipe.decode_latents(inverted.latents)
        errors["vae_mean_abs_error"] = round(float((vae_only - x).abs().mean()), 4)
        floor = f" (the VAE alone, decode(encode(x)), is off by {errors['vae_mean_abs_error']:.4f})"
    frames = [(to_pils(x)[0], "x")]
    frames += trajectory_pictures(pipe, inverted.trajectory, "↑")
    frames += trajectory_pictures(pipe, decoded.trajectory[1:], "↓")  # [0] is z_T, shown last on the way up
    frames.append((to_pils(x_hat)[0], f"x̂ (error {errors['mean_abs_error']:.3f})"))
    gif = gif_bytes([picture.resize((168, 168), Image.NEAREST) for picture, _ in frames], duration_ms=300)
    summary = (
        f"**{caption}** inverted to z_T by {steps} DDIM steps run backwards, then decoded by {steps} DDIM steps: "
        f"mean |x̂ − x| = **{errors['mean_abs_error']:.4f}**{floor}. The inverted noise has std "
        f"{errors['noise_std']:.2f} (a draw of N(0, I): 1)."
    )
    return frames, gif, errors, summary


def walk_digits(model="latent", index_a=0, index_b=60, num_frames=8, steps=DEFAULT_STEPS):
    """Two test digits walked between: DDIM through slerp of their inverted noises, and the VAE's slerp of their
    posterior means. Returns (DDIM frames, VAE frames, GIF path (DDIM | VAE), summary)."""
    model, steps = check_walk(model, steps)
    num_frames = check_int("number of frames", num_frames, 2, MAX_FRAMES)
    index_a = check_int("from test digit #", index_a, 0, NUM_TEST - 1)
    index_b = check_int("to test digit #", index_b, 0, NUM_TEST - 1)
    ddim, walk, gif, summary = digit_walks(model, index_a, index_b, num_frames, steps)
    return ddim, walk, gif_file(gif), summary


@lru_cache(maxsize=16)
@torch.no_grad()
def digit_walks(model: str, index_a: int, index_b: int, num_frames: int, steps: int):
    (image_a, label_a), (image_b, label_b) = test_digit(index_a), test_digit(index_b)
    pipe = walk_pipe(model)
    noise = pipe.invert(torch.cat([image_a, image_b]), steps).noise
    ddim = ddim_decode(pipe, noise_path(noise[0], noise[1], num_frames), steps).images
    with models.unavailable_as_gr_error():
        vae = models.load("vae")
    walk = vae.interpolate(image_a, image_b, num_frames=num_frames, method="slerp", output_type="pt").images
    gif = gif_bytes(frame_pairs(ddim, walk))
    summary = (
        f"From test digit #{index_a} (a {label_a}) to #{index_b} (a {label_b}): left, DDIM ({steps} steps) "
        "through slerp of the two inverted noises; right, the VAE decoding slerp of μ(a) and μ(b)."
    )
    return to_pils(ddim), to_pils(walk), gif, summary


def model_radio() -> gr.Radio:
    choices = [(models.SPECS[k].label, k) for k in WALK_MODELS]
    return gr.Radio(choices, value=WALK_MODELS[0], label="Model")


def steps_slider() -> gr.Slider:
    return gr.Slider(1, models.max_steps("DDIM"), value=DEFAULT_STEPS, step=1, label="DDIM steps")


def frames_gallery(label: str, elem_id: str) -> gr.Gallery:
    return gr.Gallery(
        format="png", object_fit="contain", label=label, columns=8, height="auto", elem_id=elem_id, elem_classes="strip"
    )


def build(demo: gr.Blocks) -> None:
    """The tab's three walks (seconds each, so behind buttons); each shows its starting walk when the page opens,
    computed once and then served from memory."""
    missing_banner(*WALK_MODELS)
    seed_morph_section(demo)
    inversion_section(demo)
    digit_walk_section(demo)


def walk_endpoint(demo: gr.Blocks, button: gr.Button, fn, inputs: list, outputs: list, needs=("latent",)) -> None:
    endpoint_shown_on_open(demo, [button.click], fn, inputs, outputs, fn.__name__, needs=needs, slow=True)


def seed_morph_section(demo: gr.Blocks) -> None:
    gr.Markdown(
        "### Morph between two noises\nDDIM with η = 0 turns each noise z_T into one digit: walking z_T along the "
        "great circle from seed A's noise to seed B's morphs one generated digit into the other."
    )
    with gr.Row():
        inputs = [
            model_radio(),
            seed_input("Seed A"),
            seed_input("Seed B", value=1),
            gr.Slider(2, MAX_FRAMES, value=8, step=1, label="Frames"),
            steps_slider(),
        ]
    run = gr.Button("Morph", variant="primary", elem_id="walk-seeds-button")
    strip = frames_gallery("frames", "walk-seeds-frames")
    summary = gr.Markdown(label="summary", elem_id="walk-seeds-summary")
    gif = gr.File(label="gif", elem_id="walk-seeds-gif")
    walk_endpoint(demo, run, walk_seeds, inputs, [strip, gif, summary])


def inversion_section(demo: gr.Blocks) -> None:
    gr.Markdown(
        "### DDIM inversion: a real digit's noise\nRun DDIM backwards, x → z_T, then forwards again, z_T → x̂. "
        "The only approximation: each backward step asks the network about the noise at the point it starts from."
    )
    with gr.Row():
        with gr.Column():
            model = model_radio()
            index, drawing = digit_inputs("walk-sketchpad")
            steps = steps_slider()
            run = gr.Button("Invert and decode", variant="primary", elem_id="walk-invert-button")
        with gr.Column():
            frames = gr.Gallery(
                format="png",
                object_fit="contain",
                label="frames",
                columns=4,
                height="auto",
                elem_id="walk-invert-frames",
            )
            summary = gr.Markdown(label="summary", elem_id="walk-invert-summary")
            errors = gr.JSON(label="errors")
            gif = gr.File(label="gif", elem_id="walk-invert-gif")
    walk_endpoint(demo, run, ddim_invert, [model, index, drawing, steps], [frames, gif, errors, summary])


def digit_walk_section(demo: gr.Blocks) -> None:
    gr.Markdown(
        "### Two real digits: DDIM's walk vs. the VAE's\nInvert both digits, walk the great circle between their "
        "noises and decode each point with DDIM; beside it, the VAE decodes the same walk between μ(a) and μ(b)."
    )
    with gr.Row():
        inputs = [
            model_radio(),
            gr.Slider(0, NUM_TEST - 1, value=0, step=1, label="From test digit #"),
            gr.Slider(0, NUM_TEST - 1, value=60, step=1, label="To test digit #"),
            gr.Slider(2, MAX_FRAMES, value=8, step=1, label="Frames"),
            steps_slider(),
        ]
    run = gr.Button("Walk", variant="primary", elem_id="walk-digits-button")
    ddim_strip = frames_gallery("ddim_frames", "walk-digits-ddim")
    vae_strip = frames_gallery("vae_frames", "walk-digits-vae")
    summary = gr.Markdown(label="summary", elem_id="walk-digits-summary")
    gif = gr.File(label="gif", elem_id="walk-digits-gif")
    walk_endpoint(demo, run, walk_digits, inputs, [ddim_strip, vae_strip, gif, summary], needs=("latent", "vae"))
