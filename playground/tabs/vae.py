"""The VAE tab: reconstruction with its ELBO terms, prior samples, interpolations, traversals and the latent map."""

from __future__ import annotations

import gradio as gr
import numpy as np
import torch

from pipelines.checks import finite_float
from pipelines.interpolation import lerp, slerp

from .. import models
from ..images import grid, input_digit, save_gif, test_digit, to_pils
from ..plots import MAP_PIXELS, latent_map_image, map_limits, mark_point, pixel_to_coords
from ..validation import MAX_IMAGES, check_float, check_int, check_seed
from ..widgets import NUM_TEST, digit_inputs, endpoint_shown_on_open, missing_banner, seed_input

TITLE = "VAE"
ID = "vae"
MAX_FRAMES = 32
MAX_COORD = 50.0


def vae_pipe(beta=1.0):
    """The bundled VAE trained with ``beta`` (1: the plain VAE); a gr.Error names the bundled values otherwise."""
    key = models.VAE_BY_BETA.get(beta) if finite_float(beta) is not None else None
    if key is None or (beta != 1.0 and not models.is_available(key)):
        raise gr.Error(
            f"β must be one of the bundled VAEs' values {models.bundled_betas() or [1.0]}, got {beta!r:.40}."
        )
    with models.unavailable_as_gr_error():
        return models.load(key)


@torch.no_grad()
def reconstruct(test_index=0, drawing=None, seed=0, beta=1.0):
    """(input, reconstruction, ELBO markdown, ELBO terms as a dict in nats) under the VAE trained with ``beta``."""
    seed = check_seed(seed)
    pipe = vae_pipe(beta)
    x, caption = input_digit(test_index, drawing)
    terms = pipe.vae.elbo(x, beta=float(beta), generator=torch.Generator().manual_seed(seed))
    reconstruction = pipe.reconstruct(x, output_type="pt").images
    numbers = {name: round(float(getattr(terms, name)[0]), 2) for name in ("elbo", "reconstruction", "kl")}
    text = (
        f"**{caption}**\n\n"
        f"ELBO = E_q[ln p(x|z)] − KL[q(z|x) ‖ p(z)] = **{numbers['reconstruction']:.1f}** − **{numbers['kl']:.1f}** "
        f"= **{numbers['elbo']:.1f} nats** (one reparameterized draw z = μ + σ·ε, seed {seed})."
    )
    if beta != 1.0:
        numbers["beta_objective"] = round(-float(terms.loss[0]), 2)
        text += (
            f"\n\nThis VAE was trained to maximise E_q[ln p(x|z)] − β·KL with **β = {beta:g}** "
            f"(= **{numbers['beta_objective']:.1f}** here): β < 1 buys sharper reconstructions with a larger KL, "
            "β > 1 a latent closer to the prior at the cost of blurrier reconstructions."
        )
    return to_pils(x)[0], to_pils(reconstruction)[0], text, numbers


@torch.no_grad()
def prior_samples(num_images, seed, beta=1.0):
    num_images = check_int("number of images", num_images, 1, MAX_IMAGES)
    seed = check_seed(seed)
    images = vae_pipe(beta)(
        batch_size=num_images, generator=torch.Generator().manual_seed(seed), output_type="pt"
    ).images
    return to_pils(images)


@torch.no_grad()
def interpolate(index_a, index_b, num_frames):
    """Linear and spherical paths between μ(a) and μ(b): two frame strips and one GIF (linear above slerp)."""
    num_frames = check_int("number of frames", num_frames, 2, MAX_FRAMES)
    pipe = vae_pipe()
    image_a, _ = test_digit(index_a)
    image_b, _ = test_digit(index_b)
    z_a, z_b = pipe.encode_means(torch.cat([image_a, image_b]))
    fractions = torch.linspace(0.0, 1.0, num_frames)
    strips, frames = {}, []
    for method, path in (("linear", lerp), ("slerp", slerp)):
        latents = path(z_a, z_b, fractions)
        strips[method] = pipe.vae.decode(latents).sample
    strip_images = {m: grid(images, nrow=num_frames, scale=3) for m, images in strips.items()}
    for k in list(range(num_frames)) + list(range(num_frames - 2, 0, -1)):  # there and back
        pair = torch.stack([strips["linear"][k], strips["slerp"][k]])
        frames.append(grid(pair, nrow=2, scale=4))  # linear | slerp
    return strip_images["linear"], strip_images["slerp"], save_gif(frames)


@torch.no_grad()
def traverse(test_index=0, drawing=None, dim=0, span=3.0, num_frames=10):
    """Move one latent coordinate of μ(x) from −span to +span."""
    pipe = vae_pipe()
    size = int(np.prod(pipe.vae.latent_shape))
    dim = check_int("latent dimension", dim, 0, size - 1)
    span = check_float("span", span, 0.1, 10.0)
    num_frames = check_int("number of frames", num_frames, 2, MAX_FRAMES)
    x, _ = input_digit(test_index, drawing)
    values = torch.linspace(-span, span, num_frames)
    images = pipe.traverse(x, dim, values, output_type="pt").images
    return grid(images, nrow=num_frames, scale=3)


def _embedding():
    vae_pipe()
    means, labels, center, directions = models.vae_test_embedding()
    points = ((means - center) @ directions.T).numpy()  # coordinates along the first two principal directions
    return points, labels.numpy(), center, directions


def latent_map(marker=None):
    """The test digits' posterior means projected on their first two principal directions, coloured by digit
    (drawn once; a ``marker`` (PC 1, PC 2) is a cross drawn on a copy, so a click answers at once)."""
    points, labels, _, _ = _embedding()
    limits = map_limits(points)
    key = (id(models.load("vae")), limits)
    if _map_cache.get("key") != key:
        _map_cache.update(key=key, image=latent_map_image(points, labels, limits))
    return _map_cache["image"] if marker is None else mark_point(_map_cache["image"], *marker, limits)


_map_cache: dict = {}


@torch.no_grad()
def decode_point(pc1, pc2):
    """Decode the latent z = centre + pc1·d_1 + pc2·d_2 (d_i the principal directions); also redraw the map."""
    pc1 = check_float("PC 1 coordinate", pc1, -MAX_COORD, MAX_COORD)
    pc2 = check_float("PC 2 coordinate", pc2, -MAX_COORD, MAX_COORD)
    pipe = vae_pipe()
    _, _, center, directions = _embedding()
    z = center + torch.tensor([pc1, pc2], dtype=center.dtype) @ directions
    image = pipe.vae.decode(z.view(1, *pipe.vae.latent_shape)).sample
    return to_pils(image, scale=6)[0], latent_map((pc1, pc2))


def map_click(evt: gr.EventData):
    """A click on the map image → its (PC 1, PC 2) coordinates. Typed ``gr.EventData``, not ``gr.SelectData``:
    Gradio builds a SelectData by indexing the event data, and a crafted request without any failed inside Gradio
    with a traceback; here it gets a clear error."""
    data = getattr(evt, "_data", None)  # EventData keeps the event's payload as given
    if not isinstance(data, dict) or "index" not in data:
        raise gr.Error("a map click needs the clicked pixel (the page sends it with the click).")
    index = (
        data["index"] if isinstance(data["index"], (list, tuple)) and len(data["index"]) == 2 else (data["index"], None)
    )
    px = check_float("map click x (pixels)", index[0], 0, MAP_PIXELS - 1)  # a crafted request can send anything
    py = check_float("map click y (pixels)", index[1], 0, MAP_PIXELS - 1)
    points, _, _, _ = _embedding()
    x, y = pixel_to_coords(px, py, map_limits(points))
    return round(x, 3), round(y, 3)


def beta_radio(elem_id: str) -> gr.Radio:
    """β of the VAE to use: only the bundled values are offered (hidden when only the plain VAE is bundled)."""
    betas = models.bundled_betas() or [1.0]
    choices = [(f"β = {b:g}" + (" (the ELBO)" if b == 1.0 else ""), b) for b in betas]
    return gr.Radio(
        choices, value=1.0, label="β-VAE: the KL weight it was trained with", visible=len(betas) > 1, elem_id=elem_id
    )


LIVE = {"trigger_mode": "always_last", "show_progress": "hidden"}  # cheap views follow their inputs as they move


def live_view(demo: gr.Blocks, triggers: list, fn, inputs, outputs, api_name: str) -> None:
    """``fn`` as a public endpoint that follows ``triggers`` and is shown when the page opens."""
    endpoint_shown_on_open(demo, triggers, fn, inputs, outputs, api_name, needs=("vae",), **LIVE)


def build(demo: gr.Blocks) -> None:
    """The VAE tab's sub-tabs: each shows its result when the page opens and follows its inputs (all cheap)."""
    missing_banner("vae")
    with gr.Tabs(overflow_behavior="wrap"):
        with gr.Tab("ELBO"):
            index, drawing = elbo_tab(demo)
        with gr.Tab("Prior samples"):
            prior_tab(demo)
        with gr.Tab("Interpolation"):
            interpolation_tab(demo)
        with gr.Tab("Traversal") as tab:
            traversal_tab(demo, tab, index, drawing)
        with gr.Tab("Latent map"):
            latent_map_tab(demo)


def elbo_tab(demo: gr.Blocks) -> tuple[gr.Slider, gr.Sketchpad]:
    """A digit's reconstruction and ELBO terms; returns its digit inputs (the traversal uses the same digit)."""
    gr.Markdown(
        "The ELBO = E_q[ln p(x|z)] − KL[q(z|x) ‖ p(z)] of a digit, live: reconstruction minus KL, in nats. "
        "With it: the input x and its reconstruction E[x | z = μ]."
    )
    with gr.Row():
        with gr.Column():
            index, drawing = digit_inputs("vae-sketchpad")
            seed = seed_input("Seed (the draw z = μ + σ·ε)")
            beta = beta_radio("vae-beta")
        with gr.Column():
            with gr.Row():
                picture = {"type": "pil", "format": "png", "height": 200, "min_width": 120}
                original = gr.Image(label="input", elem_id="vae-input", **picture)
                recon = gr.Image(label="reconstruction", elem_id="vae-recon", **picture)
            elbo_text = gr.Markdown(label="elbo_text", elem_id="vae-elbo")
            elbo = gr.JSON(label="elbo_terms")
    live_view(
        demo,
        [index.input, drawing.change, seed.input, beta.change],
        reconstruct,
        [index, drawing, seed, beta],
        [original, recon, elbo_text, elbo],
        "vae_reconstruct",
    )
    return index, drawing


def prior_tab(demo: gr.Blocks) -> None:
    gr.Markdown("z ~ p(z) = N(0, I), then the mean of p(x | z).")
    with gr.Row():
        num_prior = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images")
        seed = seed_input()
        beta = beta_radio("vae-prior-beta")
    prior = gr.Gallery(
        format="png",
        object_fit="contain",
        columns=8,
        height="auto",
        label="prior_samples",
        elem_id="vae-prior-gallery",
    )
    live_view(
        demo, [num_prior.input, seed.input, beta.change], prior_samples, [num_prior, seed, beta], prior, "vae_prior"
    )


def interpolation_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "From μ(a) to μ(b) in latent space: a straight line (top) vs. the great circle (slerp, below). "
        "The GIF shows both, linear left."
    )
    with gr.Row():
        index_a = gr.Slider(0, NUM_TEST - 1, value=0, step=1, label="From test digit #")
        index_b = gr.Slider(0, NUM_TEST - 1, value=60, step=1, label="To test digit #")
        frames = gr.Slider(2, MAX_FRAMES, value=10, step=1, label="Frames")
    linear = gr.Image(label="linear", type="pil", format="png", height=130, elem_id="vae-linear")
    spherical = gr.Image(label="slerp", type="pil", format="png", height=130, elem_id="vae-slerp")
    walk_gif = gr.File(label="gif", elem_id="vae-walk-gif")
    live_view(
        demo,
        [index_a.input, index_b.input, frames.input],
        interpolate,
        [index_a, index_b, frames],
        [linear, spherical, walk_gif],
        "vae_interpolate",
    )


def traversal_tab(demo: gr.Blocks, tab: gr.Tab, index: gr.Slider, drawing: gr.Sketchpad) -> None:
    gr.Markdown(
        "One coordinate of μ(x) swept from −span to +span, the others fixed (x: the digit of the ELBO tab, "
        "as it is when this tab opens)."
    )
    with gr.Row():
        dim = gr.Slider(0, 15, value=0, step=1, label="Latent dimension")
        span = gr.Slider(0.5, 5, value=3, step=0.5, label="Span ±")
        frames = gr.Slider(2, MAX_FRAMES, value=10, step=1, label="Frames")
    traversal = gr.Image(label="traversal", type="pil", format="png", height=130, elem_id="vae-traversal")
    live_view(
        demo,
        [dim.input, span.input, frames.input, tab.select],
        traverse,
        [index, drawing, dim, span, frames],
        traversal,
        "vae_traverse",
    )


def latent_map_tab(demo: gr.Blocks) -> None:
    gr.Markdown(
        "The test digits' μ(x) on their first two principal directions, coloured by digit. "
        "Click anywhere to decode that point."
    )
    with gr.Row():
        with gr.Column(scale=2):
            map_image = gr.Image(
                label="latent_map", type="pil", format="png", interactive=False, height=500, elem_id="vae-map"
            )
        with gr.Column(scale=1):
            pc1 = gr.Number(0.0, label="PC 1")
            pc2 = gr.Number(0.0, label="PC 2")
            decoded = gr.Image(label="decoded", type="pil", format="png", height=200, elem_id="vae-decoded")
    # the public map endpoint draws the bare map; the page opens on the map with the origin decoded
    map_button = gr.Button(visible=False)
    map_button.click(latent_map, None, map_image, api_name="vae_latent_map")
    live_view(demo, [pc1.input, pc2.input], decode_point, [pc1, pc2], [decoded, map_image], "vae_decode_point")
    map_image.select(map_click, None, [pc1, pc2], api_name="ui_map_click", api_visibility="private").then(
        decode_point,
        [pc1, pc2],
        [decoded, map_image],
        api_name="ui_map_decode",
        api_visibility="private",
    )
