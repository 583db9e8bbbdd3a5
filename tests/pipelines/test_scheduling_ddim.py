"""Our DDIMScheduler against diffusers' (the shared mixin), plus DDIM's own properties."""

from __future__ import annotations

import diffusers
import pytest
import torch
from diffusers import DDIMPipeline

from pipelines import schedules
from pipelines.scheduling_ddim import DDIMScheduler
from pipelines.scheduling_ddpm import DDPMScheduler
from tests.support.scheduler_mixin import SHAPE, SchedulerAgreementMixin, fake_model


class TestDDIMScheduler(SchedulerAgreementMixin):
    ours_class = DDIMScheduler
    theirs_class = diffusers.DDIMScheduler
    pipeline_class = DDIMPipeline
    pipeline_kwargs = {"eta": 0.5}
    upstream_beta_schedules = ("linear", "scaled_linear", "squaredcos_cap_v2")  # no "sigmoid" in diffusers' DDIM
    extra_axes = {"set_alpha_to_one": (True, False)}
    variants = {
        "eta0": ({}, {"eta": 0.0}),
        "eta0.5": ({}, {"eta": 0.5}),
        "eta1-clipped-eps": ({}, {"eta": 1.0, "use_clipped_model_output": True}),
        "eta0.3-given-noise": ({}, {"eta": 0.3, "variance_noise": True}),
    }
    supports_upstream_custom_timesteps = False

    def step_kwargs(self, step_options, generator):
        if step_options.get("variance_noise"):  # noise passed in rather than drawn by step()
            return {**step_options, "variance_noise": torch.randn(SHAPE, generator=generator)}
        return super().step_kwargs(step_options, generator)


def test_sigmoid_schedule_matches_diffusers_ddpm_betas():
    ours = DDIMScheduler(beta_schedule="sigmoid")
    torch.testing.assert_close(ours.betas, diffusers.DDPMScheduler(beta_schedule="sigmoid").betas, rtol=1e-6, atol=0)
    with pytest.raises(NotImplementedError):  # documents why the agreement grid leaves sigmoid out
        diffusers.DDIMScheduler(beta_schedule="sigmoid")


@pytest.mark.parametrize("timesteps", [None, [999, 700, 650, 200, 30, 0]])
def test_eta_zero_with_true_noise_lands_on_the_closed_form_sample(timesteps):
    """With ε̂ = the true ε, deterministic DDIM moves z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε to exactly z_{t'} (eq. 12)."""
    scheduler = DDIMScheduler(clip_sample=False, timestep_spacing="trailing")
    scheduler.set_timesteps(**({"timesteps": timesteps} if timesteps else {"num_inference_steps": 8}))
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(SHAPE, generator=g, dtype=torch.float64), torch.randn(SHAPE, generator=g, dtype=torch.float64)
    steps = scheduler.timesteps.tolist()
    for t in steps:
        z_t = schedules.closed_form_sample(x, eps, scheduler.alphas_cumprod, torch.tensor([t] * SHAPE[0]))
        prev = scheduler.step(eps, t, z_t).prev_sample
        t_prev = scheduler.previous_timestep(t)
        if t_prev >= 0:
            expected = schedules.closed_form_sample(x, eps, scheduler.alphas_cumprod, torch.tensor([t_prev] * SHAPE[0]))
        else:
            expected = x  # ᾱ = 1 after the last step
        torch.testing.assert_close(prev, expected, rtol=1e-5, atol=1e-5)
    if timesteps:
        assert [scheduler.previous_timestep(t) for t in steps] == steps[1:] + [-1]


def test_eta_one_is_ddpm_ancestral_sampling():
    """η = 1 gives σ_t = √β̃_t and the same step as DDPM's posterior (Song et al. §4.1), with the same noise."""
    ddim = DDIMScheduler(clip_sample=False)
    ddpm = DDPMScheduler.from_config(ddim.config)  # leading spacing: DDIM's t − ⌊T/n⌋ is DDPM's next step
    outputs = []
    for scheduler, options in ((ddim, {"eta": 1.0}), (ddpm, {})):
        g = torch.Generator().manual_seed(0)
        sample = torch.randn(SHAPE, generator=g, dtype=torch.float64)
        scheduler.set_timesteps(10)
        for t in scheduler.timesteps[:-1]:  # DDPM adds no noise at the last step, DDIM still draws
            sample = scheduler.step(fake_model(sample, t), t, sample, generator=g, **options).prev_sample
        outputs.append(sample)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)  # float32 coefficients


def test_eta_zero_ignores_the_generator():
    scheduler = DDIMScheduler()
    scheduler.set_timesteps(5)
    sample = torch.randn(SHAPE)
    a = scheduler.step(fake_model(sample, 600), 600, sample, generator=torch.Generator().manual_seed(1)).prev_sample
    b = scheduler.step(fake_model(sample, 600), 600, sample, generator=torch.Generator().manual_seed(2)).prev_sample
    assert torch.equal(a, b)


def test_step_before_set_timesteps_raises():
    sample = torch.randn(SHAPE)
    with pytest.raises(ValueError, match="set_timesteps"):
        DDIMScheduler().step(fake_model(sample, 10), 10, sample)


def test_negative_eta_raises():
    scheduler = DDIMScheduler()
    scheduler.set_timesteps(5)
    sample = torch.randn(SHAPE)
    with pytest.raises(ValueError, match="eta"):
        scheduler.step(fake_model(sample, 600), 600, sample, eta=-0.1)


def test_generator_and_variance_noise_together_raise():
    scheduler = DDIMScheduler()
    scheduler.set_timesteps(5)
    sample = torch.randn(SHAPE)
    with pytest.raises(ValueError, match="variance_noise"):
        scheduler.step(
            fake_model(sample, 600), 600, sample, eta=0.5, generator=torch.Generator(), variance_noise=sample
        )
