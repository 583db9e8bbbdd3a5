"""pipelines/samplers.py: the sampler table, looked up by key or label, built from a saved config, steps checked."""

from __future__ import annotations

import diffusers
import pytest
import torch

from pipelines import defaults
from pipelines.samplers import SAMPLERS, check_steps, make_scheduler, resolve_sampler, step_cap
from pipelines.scheduling_ddpm import DDPMScheduler
from tests.support.tiny_pipelines import make_pipe, sample

SAVED = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", timestep_spacing="leading").config


@pytest.mark.parametrize("name", ["ddim", "DDIM", " Ddim ", "dpm-solver++", "DPMSOLVER++", "euler ancestral"])
def test_a_sampler_is_found_by_key_or_label_in_any_case(name):
    sampler = resolve_sampler(name)
    assert name.strip().casefold() in (sampler.key.casefold(), sampler.label.casefold())


def test_an_unknown_sampler_lists_the_choices():
    with pytest.raises(ValueError, match=r"sampler must be one of \['DDIM', 'DDPM'"):
        resolve_sampler("karras")


def test_keys_are_lower_case_and_labels_unique():
    assert all(key == sampler.key == key.lower() for key, sampler in SAMPLERS.items())
    labels = [s.label.casefold() for s in SAMPLERS.values()]
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize("key", list(SAMPLERS))
def test_make_scheduler_keeps_the_trained_schedule(key):
    scheduler = make_scheduler(SAVED, key, clip_sample=False)
    sampler = SAMPLERS[key]
    assert type(scheduler) is sampler.scheduler_class
    for option, value in sampler.config_overrides.items():
        assert scheduler.config[option] == value
    torch.testing.assert_close(scheduler.alphas_cumprod, DDPMScheduler.from_config(SAVED).alphas_cumprod)
    if "clip_sample" in scheduler.config:
        assert scheduler.config.clip_sample is False


@pytest.mark.parametrize("key", list(SAMPLERS))
def test_every_sampler_samples_in_our_pipeline(key):
    pipe = make_pipe(scheduler=make_scheduler(SAVED, key))
    images = sample(pipe, num_inference_steps=4, eta=1.0).images
    assert images.shape == (2, 8, 8, 1) and ((images >= 0) & (images <= 1)).all()


def test_eta_reaches_only_the_samplers_that_take_it():
    for key, sampler in SAMPLERS.items():
        pipe = make_pipe(scheduler=make_scheduler(SAVED, key))
        assert ("eta" in pipe.prepare_extra_step_kwargs(None, 0.5)) == sampler.takes_eta, key


def test_check_steps_caps_by_sampler_and_training_steps():
    assert (step_cap("DDIM", 1000), step_cap("ddpm", 1000), step_cap("DDPM", 50)) == (200, 1000, 50)
    assert check_steps("DDIM", 200, 1000) == 200
    assert check_steps("ddpm", 1000.0, 1000) == 1000  # whole floats, as sliders send them
    with pytest.raises(ValueError, match=r"steps \(DDIM\) must lie in \[1, 200\]"):
        check_steps("ddim", 201, 1000)
    with pytest.raises(ValueError, match=r"steps \(DDPM\) must lie in \[1, 50\]"):
        check_steps("DDPM", 51, 50)
    for bad in (2.5, "10", None, True, float("nan"), 10**400):
        with pytest.raises(ValueError, match="must be a whole number"):
            check_steps("ddim", bad, 1000)
    with pytest.raises(ValueError, match="must lie in"):
        check_steps("ddim", 0, 1000)


def test_defaults_come_from_the_table():
    assert SAMPLERS["ddim"].default_steps == defaults.DEFAULT_DDIM_STEPS
    assert SAMPLERS["ddpm"].default_steps == defaults.DEFAULT_DDPM_STEPS
    assert SAMPLERS[defaults.DEFAULT_SAMPLER].default_steps == defaults.DEFAULT_STEPS
    assert all(1 <= s.default_steps <= s.max_steps for s in SAMPLERS.values())


def test_the_table_holds_the_diffusers_solvers_measured_on_the_bundled_models():
    classes = {s.scheduler_class for s in SAMPLERS.values()}
    assert {
        diffusers.DPMSolverMultistepScheduler,
        diffusers.UniPCMultistepScheduler,
        diffusers.EulerAncestralDiscreteScheduler,
    } <= classes
