"""DDIM inversion: the exact inverse of DDIM sampling (the pipeline's own call from the z_T found, ``latents=``) where
the theory says so, diffusers' DDIMInverseScheduler's numbers, ``latents=`` itself, and real digits reconstructed by
the bundled models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import DDIMInverseScheduler, EulerDiscreteScheduler, UNet2DModel
from diffusers.models.unets.unet_2d import UNet2DOutput

from pipelines.ddim_inversion import encode_images, invert
from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline
from pipelines.scheduling_ddim import DDIMScheduler
from pipelines.scheduling_ddpm import DDPMScheduler
from pipelines.vae import VAE
from tests.support.models import tiny_unet

T = 100
ROOT = Path(__file__).resolve().parents[2]


class TimeOnlyUNet(UNet2DModel):
    """A network whose ε̂ depends on t only, not on z_t: the DDIM step is then affine in z with a known ε̂, and running
    it backwards inverts it exactly: the inversion's one approximation, ε̂(z_{t'}) for ε̂(z_t), is no approximation."""

    def forward(self, sample, timestep, class_labels=None, return_dict=True):
        t = torch.as_tensor(timestep, dtype=torch.float32)
        pattern = torch.linspace(-1, 1, sample[0].numel()).view(sample.shape[1:])
        return UNet2DOutput(sample=torch.sin(0.05 * t + 3 * pattern).expand_as(sample).to(sample.dtype))


def time_only_unet() -> TimeOnlyUNet:
    return TimeOnlyUNet(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8,),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D",),
        up_block_types=("UpBlock2D",),
    ).eval()


def pixel_pipe(unet=None, **scheduler_config) -> DDPMPipeline:
    scheduler = DDIMScheduler(num_train_timesteps=T, clip_sample=False, **scheduler_config)
    pipe = DDPMPipeline(unet or tiny_unet(block_out_channels=(8,)), scheduler, None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def latent_pipe() -> LatentDDPMPipeline:
    torch.manual_seed(1)
    vae = VAE(
        sample_size=8, block_out_channels=(8, 8), latent_type="spatial", latent_channels=4, norm_num_groups=4
    ).eval()
    pipe = LatentDDPMPipeline(
        vae, tiny_unet(channels=4, sample_size=2, block_out_channels=(8,)), DDIMScheduler(num_train_timesteps=T), None
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def decode(pipe, noise: torch.Tensor, steps: int, **kwargs):
    """Deterministic DDIM (η = 0) from z_T: the pipeline's own call."""
    return pipe(batch_size=len(noise), latents=noise, num_inference_steps=steps, eta=0.0, output_type="pt", **kwargs)


def images(n: int = 3, size: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize(
    "config",
    [
        {"timestep_spacing": "leading"},
        {"timestep_spacing": "trailing"},
        {"timestep_spacing": "linspace"},
        {"timestep_spacing": "leading", "set_alpha_to_one": False},
    ],
)
def test_inversion_exactly_undoes_sampling_when_the_network_ignores_z(config):
    pipe = pixel_pipe(time_only_unet(), **config)
    x = 0.1 + 0.8 * images()  # inside (0, 1): the final clamp to [0, 1] must not bite
    noise = pipe.invert(x, 7).noise
    torch.testing.assert_close(decode(pipe, noise, 7).images, x, atol=1e-4, rtol=1e-4)


def test_inversion_matches_diffusers_ddim_inverse_scheduler():
    pipe = pixel_pipe()
    reference = DDIMInverseScheduler.from_config(pipe.scheduler.config)
    reference.set_timesteps(10)
    z = encode_images(pipe, images())
    with torch.no_grad():
        for t in reference.timesteps:
            z = reference.step(pipe.unet(z, t).sample, t, z).prev_sample
    torch.testing.assert_close(invert(pipe, images(), 10).noise, z, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [pixel_pipe, latent_pipe], ids=["pixel", "latent"])
def test_given_latents_are_the_z_T_the_pipeline_would_draw_and_are_scaled_alike(make):
    pipe = make()
    noise = pipe.prepare_latents(2, torch.Generator().manual_seed(3), pipe.device)
    ours = decode(pipe, noise, 5).images
    drawn = pipe(
        batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=5, eta=0.0, output_type="pt"
    )
    torch.testing.assert_close(ours, drawn.images, rtol=0, atol=0)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)  # init_noise_sigma > 1
    generator = torch.Generator().manual_seed(3)
    unit = torch.randn(pipe.sample_shape(2), generator=generator)
    drawn = pipe(batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=3, output_type="pt")
    torch.testing.assert_close(decode(pipe, unit, 3).images, drawn.images, rtol=0, atol=0)


def test_given_latents_of_another_shape_or_not_floating_are_refused_naming_the_shape():
    pipe = pixel_pipe()
    with pytest.raises(ValueError, match=r"Unexpected latents shape, got \(2, 1, 4, 4\), expected \(2, 1, 8, 8\)"):
        decode(pipe, torch.zeros(2, 1, 4, 4), 3)
    with pytest.raises(ValueError, match="expected \\(3, 1, 8, 8\\)"):
        pipe(batch_size=3, latents=torch.zeros(2, 1, 8, 8), num_inference_steps=2)
    with pytest.raises(ValueError, match="floating-point"):
        decode(pipe, torch.zeros(2, 1, 8, 8, dtype=torch.long), 3)


def test_latent_inversion_starts_from_the_vae_posterior_mean_scaled():
    pipe = latent_pipe()
    x = images()
    expected = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
    out = pipe.invert(x, 4, return_trajectory_every=2)
    torch.testing.assert_close(out.latents, expected)
    assert out.noise.shape == expected.shape
    assert [p.timestep for p in out.trajectory] == [0, 50, 75]  # every 2nd step on the way up, and the last


def test_inversion_refuses_a_non_ddim_scheduler_and_a_network_predicting_x0():
    pipe = pixel_pipe()
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, prediction_type="sample")
    with pytest.raises(ValueError, match="predicts ε or v"):
        invert(pipe, images(), 3)
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match="DDIM scheduler"):
        invert(pipe, images(), 3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "folder,steps,max_error",
    [("ddpm-pixel", 50, 0.01), ("ddpm-latent", 25, 0.005)],
)
def test_bundled_models_reconstruct_test_digits_after_inversion(folder, steps, max_error):
    """Measured on 10 test digits (docs/inversion.md, bench/bench_inversion.py): pixel 0.0044 mean |x̂ − x| at 50
    steps; latent 0.0014 above its VAE's own reconstruction error at 25 steps. Here 4 digits, against those bounds,
    and the error must shrink with more steps."""
    from training.data import load_data

    pipe = (DDPMPipeline if folder == "ddpm-pixel" else LatentDDPMPipeline).from_pretrained(ROOT / "models" / folder)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    x = load_data("mnist", "test").images[::125]
    floor = 0.0 if folder == "ddpm-pixel" else float((pipe.decode_latents(encode_images(pipe, x)) - x).abs().mean())

    def error(n: int) -> float:
        decoded = decode(pipe, pipe.invert(x, n).noise, n).images
        return float((decoded - x).abs().mean()) - floor

    coarse, fine = error(5), error(steps)
    assert fine < max_error
    assert fine < coarse
