"""The VAE tab: reconstruction with its ELBO terms, prior samples, interpolations, traversals and the latent map."""

from __future__ import annotations

import gradio as gr
import numpy as np
import torch

from pipelines.pipeline_vae import lerp, slerp

from . import models
from .images import grid, input_digit, save_gif, test_digit, to_pils
from .plots import latent_map_image, map_limits, pixel_to_coords
from .validation import MAX_IMAGES, check_float, check_int, check_seed, is_finite_number

MAX_FRAMES = 32
MAX_COORD = 50.0


def vae_pipe(beta=1.0):
    """The bundled VAE trained with ``beta`` (1: the plain VAE); a gr.Error names the bundled values otherwise."""
    key = models.VAE_BY_BETA.get(beta) if is_finite_number(beta) else None
    if key is None or (beta != 1.0 and not models.is_available(key)):
        raise gr.Error(
            f"β must be one of the bundled VAEs' values {models.bundled_betas() or [1.0]}, got {beta!r:.40}."
        )
    try:
        return models.load(key)
    except models.ModelUnavailable as error:
        raise gr.Error(str(error)) from None


@torch.no_grad()
def reconstruct(test_index, drawing, seed, beta=1.0):
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
def traverse(test_index, drawing, dim, span, num_frames):
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
    """The test digits' posterior means projected on their first two principal directions, coloured by digit."""
    points, labels, _, _ = _embedding()
    return latent_map_image(points, labels, map_limits(points), marker)


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


def map_click(evt: gr.SelectData):
    """A click on the map image → its (PC 1, PC 2) coordinates."""
    points, _, _, _ = _embedding()
    px, py = evt.index
    x, y = pixel_to_coords(float(px), float(py), map_limits(points))
    return round(x, 3), round(y, 3)
