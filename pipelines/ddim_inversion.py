"""DDIM inversion: run deterministic DDIM backwards, from an image x to the noise z_T that DDIM decodes back to x.

DDIM with η = 0 (Song et al. 2020, https://arxiv.org/abs/2010.02502, eq. 12 with σ_t = 0) is a deterministic map
z_T → x: each step z_t → z_{t'} is

    x̂_0 = (z_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t,        z_{t'} = √ᾱ_{t'}·x̂_0 + √(1 − ᾱ_{t'})·ε̂,     ε̂ = ε_θ(z_t, t).

The same update read the other way, from t' up to t, inverts it once ε̂ is known; ε̂ = ε_θ(z_t, t) needs the z_t
being computed, so inversion uses ε_θ(z_{t'}, t) instead (the network at the point we start from, asked about the
step we go to), as in diffusers' ``DDIMInverseScheduler`` and the inversion of Mokady et al. 2022
(https://arxiv.org/abs/2211.09794, §3, "DDIM inversion"). That approximation is the only error: it shrinks as the
steps get smaller, and vanishes when ε̂ does not depend on z (the tests check both).

Works with the pixel and latent pipelines (their ``invert`` method; anything with ``unet``, ``scheduler``,
``decode_latents`` and the sampling loop of :mod:`pipelines.sampling_loop`); the pipeline's scheduler must be a DDIM
scheduler (ours or diffusers'), whose ᾱ_t and visited timesteps both directions share. The way back is the pipeline's
own call from the z_T found, ``pipe(latents=z_T, eta=0.0)``: one sampling loop for both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.schedulers import DDIMScheduler as DiffusersDDIMScheduler
from diffusers.utils import BaseOutput

from . import schedules
from .data_range import to_model_range
from .guidance import guided_model_output, prepare_class_labels
from .precision import Precision, autocast
from .sampling_loop import TrajectoryPoint
from .sampling_settings import call_settings
from .scheduling_ddim import DDIMScheduler

DDIM_SCHEDULERS = (DDIMScheduler, DiffusersDDIMScheduler)


@dataclass
class InversionOutput(BaseOutput):
    """``noise``: z_T for each image; ``latents``: the images in the UNet's space (z_0, what was inverted);
    ``trajectory``: (t, z_t, x̂_0) on the way up when asked for, from the cleanest step to z_T."""

    noise: torch.Tensor
    latents: torch.Tensor
    trajectory: list[TrajectoryPoint] | None = None


def check_ddim(pipe) -> None:
    if not isinstance(pipe.scheduler, DDIM_SCHEDULERS):
        raise ValueError(
            f"DDIM inversion needs a DDIM scheduler, got {type(pipe.scheduler).__name__}: set "
            "pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config) first."
        )


def check_invertible(scheduler) -> None:
    """A network predicting x̂_0 leaves no trace of z in DDIM's last step to a clean sample (z_0 = x̂_0 whatever z_t
    was), so that step has no inverse: ε̂ = (z − √ᾱ·x̂_0)/√(1 − ᾱ) is 0/0 at ᾱ = 1."""
    if scheduler.config.prediction_type == "sample":
        raise ValueError('DDIM inversion needs a network that predicts ε or v; this one predicts x_0 ("sample").')


@torch.no_grad()
def encode_images(pipe, images: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] → the space the UNet diffuses (the inverse of ``pipe.decode_latents``).

    Pixel pipelines: x = 2·image − 1. Latent pipelines: the VAE posterior's mean μ(x), scaled, latents = μ·s
    (the mean, not a draw, so that inversion is deterministic)."""
    vae = getattr(pipe, "vae", None)
    if vae is None:
        return to_model_range(images.to(pipe.unet.dtype))
    mean = vae.encode(images.to(vae.dtype)).latent_dist.mean
    return mean * vae.config.scaling_factor  # latents = μ(x)·s


def alpha_pair(scheduler, timestep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ᾱ_t, ᾱ_{t'}) of the sampling step at ``timestep``: it goes from ᾱ_t to ᾱ_{t'}, t' = t − ⌊T/n⌋
    (after the last step: the scheduler's ``final_alpha_cumprod``, 1 with ``set_alpha_to_one``)."""
    previous = timestep - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    alpha_prod_t_prev = scheduler.alphas_cumprod[previous] if previous >= 0 else scheduler.final_alpha_cumprod
    return scheduler.alphas_cumprod[timestep], alpha_prod_t_prev


def inversion_step(
    model_output: torch.Tensor,
    sample: torch.Tensor,
    alpha_prod_from: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    timestep: int,
    prediction_type: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step with η = 0 from noise level ᾱ_from up to step ``timestep``; returns (z_t, x̂_0).

    The equations of :meth:`DDIMScheduler.step` (Song et al. eq. 12 with σ_t = 0) with the ends swapped: x̂_0 and
    ε̂ from the network at the start, then the closed form z_t = √ᾱ_t·x̂_0 + √(1 − ᾱ_t)·ε̂ at the end."""
    x0 = schedules.predict_original_sample(model_output, sample, alpha_prod_from, prediction_type)  # x̂_0
    eps = schedules.predict_noise(model_output, sample, alpha_prod_from, prediction_type)  # ε̂
    steps = torch.full((len(sample),), timestep, dtype=torch.long)
    return schedules.closed_form_sample(x0, eps, alphas_cumprod, steps), x0  # z_t = √ᾱ_t·x̂_0 + √(1 − ᾱ_t)·ε̂


@torch.no_grad()
def invert(
    pipe,
    images: torch.Tensor,
    num_inference_steps: int | None = None,
    class_labels=None,
    guidance_scale: float | None = None,
    autoguidance_scale: float | None = None,
    guidance_interval: tuple[float, float] | None = None,
    return_trajectory_every: int | None = None,
    precision: Precision | None = None,
) -> InversionOutput:
    """Images (N, C, H, W) in [0, 1] → the noise z_T that ``pipe(latents=z_T, eta=0.0)`` with the same settings maps
    back: :meth:`DDPMPipeline.invert <pipelines.pipeline_ddpm.DDPMPipeline.invert>`.

    The steps are the scheduler's for ``num_inference_steps`` (``pipe.scheduler.set_timesteps``), visited upwards;
    steps and guidance default to the model's stored ones exactly as the pipeline's call does, and guidance applies
    to ε̂ as in sampling (so both directions follow the same guided ODE).
    """
    check_ddim(pipe)
    scheduler = pipe.scheduler
    check_invertible(scheduler)
    settings = call_settings(
        pipe.sampling_settings,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        autoguidance_scale=autoguidance_scale,
        guidance_interval=guidance_interval,
    )
    steps, device = settings["num_inference_steps"], pipe.device
    latents = encode_images(pipe, images.to(device)).to(pipe.unet.dtype)
    pipe.check_sampling_inputs(len(latents), steps, 0.0, "pt", None, ["latents"], return_trajectory_every)
    pipe.start_sampling(
        settings["guidance_scale"],
        precision,
        device,
        settings["autoguidance_scale"],
        len(latents),
        settings["guidance_interval"],
    )
    labels = prepare_class_labels(pipe.unet, class_labels, len(latents), device)
    scheduler.set_timesteps(steps)
    z, trajectory = latents, [] if return_trajectory_every else None
    ascending = scheduler.timesteps.flip(0).tolist()  # 0 < … < T − 1: the sampling steps, last first
    for i, t in enumerate(ascending):
        _, alpha_prod_t_prev = alpha_pair(scheduler, t)
        timestep = torch.tensor(t, device=device)
        guided = pipe.guides_at_step(timestep)  # the steps sampling guides, by the same σ_t
        # ε̂ = ε_θ(z_{t'}, t): the network where we are, asked about the step we go to (Mokady et al. §3)
        with autocast(pipe._precision, device):
            model_output = guided_model_output(
                pipe.unet,
                scheduler.scale_model_input(z, t),
                timestep,
                labels,
                pipe.guidance_scale if guided else 1.0,
                guide_unet=getattr(pipe, "guide_unet", None),
                autoguidance_scale=pipe._autoguidance_scale if guided else 1.0,
            )
        model_output = model_output[:, : z.shape[1]].to(z.dtype)
        # z_t = √ᾱ_t·x̂_0 + √(1 − ᾱ_t)·ε̂: the sampling step z_t → z_{t'} run from t' up to t
        z, x0 = inversion_step(
            model_output, z, alpha_prod_t_prev, scheduler.alphas_cumprod, t, scheduler.config.prediction_type
        )
        z = z.to(latents.dtype)  # the schedule's fp32 ᾱ must not promote a half-precision z
        if trajectory is not None and (i % return_trajectory_every == 0 or i == len(ascending) - 1):
            trajectory.append(TrajectoryPoint(t, z.detach().float().cpu().clone(), x0.detach().float().cpu().clone()))
    return InversionOutput(noise=z, latents=latents, trajectory=trajectory)
