"""DDPMPipeline: diffusers parity, determinism, guidance, trajectory, callbacks, precision and argument checks."""

from __future__ import annotations

import diffusers
import numpy as np
import PIL.Image
import pytest
import torch

from pipelines.guidance import autoguidance, classifier_free_guidance, noise_level
from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.scheduling_ddim import DDIMScheduler
from pipelines.scheduling_ddpm import DDPMScheduler
from tests.support.models import tiny_unet
from tests.support.tiny_pipelines import STEPS, T, guided_pipe, make_pipe, sample, small_guide

NUM_CLASSES = 3


def count_unet_calls(unet):
    """Record the batch size and class labels of every UNet forward call."""
    calls = []
    unet.register_forward_hook(
        lambda m, args, kwargs, out: calls.append((args[0].shape[0], kwargs.get("class_labels"))), with_kwargs=True
    )
    return calls


def test_every_output_type_has_the_documented_shape_and_range():
    pipe = make_pipe()
    np_images = sample(pipe, output_type="np").images
    assert isinstance(np_images, np.ndarray) and np_images.dtype == np.float32 and np_images.shape == (2, 8, 8, 1)
    pt_images = sample(pipe, output_type="pt").images
    assert isinstance(pt_images, torch.Tensor) and pt_images.shape == (2, 1, 8, 8)
    assert pt_images.min() >= 0 and pt_images.max() <= 1
    np.testing.assert_array_equal(pt_images.permute(0, 2, 3, 1).numpy(), np_images)
    pil_images = sample(pipe, output_type="pil").images
    assert len(pil_images) == 2 and all(isinstance(im, PIL.Image.Image) and im.size == (8, 8) for im in pil_images)
    np.testing.assert_array_equal(np.asarray(pil_images[0]), (np_images[0, ..., 0] * 255).round().astype(np.uint8))
    (images,) = sample(pipe, return_dict=False)
    np.testing.assert_array_equal(images, np_images)


SCHEDULERS = {
    "ours-ddpm": lambda: DDPMScheduler(num_train_timesteps=T),
    "diffusers-ddpm": lambda: diffusers.DDPMScheduler(num_train_timesteps=T),
    "ours-ddim": lambda: DDIMScheduler(num_train_timesteps=T),
    "diffusers-ddim": lambda: diffusers.DDIMScheduler(num_train_timesteps=T),
}


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_same_images_as_diffusers_ddpm_pipeline(scheduler):
    unet = tiny_unet()
    ours = sample(make_pipe(unet, SCHEDULERS[scheduler]()), seed=3).images
    theirs_pipe = diffusers.DDPMPipeline(unet=unet, scheduler=SCHEDULERS[scheduler]())
    theirs_pipe.set_progress_bar_config(disable=True)
    theirs = theirs_pipe(
        batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=STEPS, output_type="np"
    ).images
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_our_scheduler_gives_the_same_images_as_diffusers_scheduler(kind):
    unet = tiny_unet()
    ours = sample(make_pipe(unet, SCHEDULERS[f"ours-{kind}"]()), eta=0.5).images
    theirs = sample(make_pipe(unet, SCHEDULERS[f"diffusers-{kind}"]()), eta=0.5).images
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("precision", ["loaded", "bf16"])
def test_same_seed_gives_bit_identical_images(precision):
    pipe = make_pipe(tiny_unet(NUM_CLASSES + 1))
    a = sample(pipe, seed=7, precision=precision, class_labels=[0, 2], guidance_scale=2.0).images
    b = sample(pipe, seed=7, precision=precision, class_labels=[0, 2], guidance_scale=2.0).images
    c = sample(pipe, seed=8, precision=precision, class_labels=[0, 2], guidance_scale=2.0).images
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_eta_is_passed_to_ddim_only():
    unet = tiny_unet()
    ddim = make_pipe(unet, DDIMScheduler(num_train_timesteps=T))
    assert not np.array_equal(sample(ddim, eta=0.0).images, sample(ddim, eta=1.0).images)
    ddpm = make_pipe(unet)  # DDPM's step takes no eta: ignored
    np.testing.assert_array_equal(sample(ddpm, eta=0.0).images, sample(ddpm, eta=1.0).images)


@pytest.mark.parametrize("guide", [classifier_free_guidance, autoguidance])
def test_guidance_interpolates_from_the_weak_prediction_and_extrapolates_past_the_strong_one(guide):
    """ε̃ = ε_weak + w·(ε_strong − ε_weak): (uncond, cond) for classifier-free guidance, (guide, main) for autoguidance."""
    weak, strong = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.0])
    torch.testing.assert_close(guide(weak, strong, 0.0), weak)
    torch.testing.assert_close(guide(weak, strong, 1.0), strong)
    torch.testing.assert_close(guide(weak, strong, 3.0), torch.tensor([7.0, 4.0]))
    torch.testing.assert_close(guide(weak, strong, 2.5), torch.tensor([6.0, 3.0]))


def test_guidance_scale_one_equals_plain_conditional_sampling():
    unet = tiny_unet(NUM_CLASSES + 1)
    pipe = make_pipe(unet)
    images = sample(pipe, seed=1, class_labels=[2, 0], guidance_scale=1.0, output_type="pt").images
    # the same sampling written out: conditional UNet, then the scheduler's step
    scheduler, generator = DDPMScheduler(num_train_timesteps=T), torch.Generator().manual_seed(1)
    z = torch.randn((2, 1, 8, 8), generator=generator)
    scheduler.set_timesteps(STEPS)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = unet(z, t, class_labels=torch.tensor([2, 0])).sample
            z = scheduler.step(eps, t, z, generator=generator).prev_sample
    torch.testing.assert_close(images, (z / 2 + 0.5).clamp(0, 1), rtol=0, atol=0)


def test_guidance_runs_both_branches_in_one_batched_call():
    unet = tiny_unet(NUM_CLASSES + 1)
    pipe, calls = make_pipe(unet), count_unet_calls(unet)
    guided = sample(pipe, class_labels=1, guidance_scale=3.0).images
    assert len(calls) == STEPS and all(batch == 4 for batch, _ in calls)
    assert calls[0][1].tolist() == [1, 1, NUM_CLASSES, NUM_CLASSES]  # cond then uncond (the null label)
    calls.clear()
    conditional = sample(pipe, class_labels=1, guidance_scale=1.0).images
    assert len(calls) == STEPS and all(batch == 2 for batch, _ in calls)
    assert not np.array_equal(guided, conditional)


def test_guidance_scale_zero_and_no_label_sample_unconditionally():
    unet = tiny_unet(NUM_CLASSES + 1)
    pipe, calls = make_pipe(unet), count_unet_calls(unet)
    unconditional = sample(pipe, class_labels=None).images
    assert all(labels.tolist() == [NUM_CLASSES, NUM_CLASSES] for _, labels in calls)
    np.testing.assert_array_equal(sample(pipe, class_labels=[0, 1], guidance_scale=0.0).images, unconditional)
    np.testing.assert_array_equal(sample(pipe, class_labels=None, guidance_scale=4.0).images, unconditional)


def test_autoguided_sampling_uses_the_mixed_prediction_at_every_step():
    unet, guide = tiny_unet(), small_guide()
    pipe = DDPMPipeline(unet, DDPMScheduler(num_train_timesteps=T), guide_unet=guide)
    pipe.set_progress_bar_config(disable=True)
    images = sample(pipe, seed=3, autoguidance_scale=2.0, output_type="pt").images
    # the same sampling written out: ε̃ = ε_guide + w·(ε_main − ε_guide), then the scheduler's step
    scheduler, generator = DDPMScheduler(num_train_timesteps=T), torch.Generator().manual_seed(3)
    z = torch.randn((2, 1, 8, 8), generator=generator)
    scheduler.set_timesteps(STEPS)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps_main, eps_guide = unet(z, t).sample, guide(z, t).sample
            z = scheduler.step(eps_guide + 2.0 * (eps_main - eps_guide), t, z, generator=generator).prev_sample
    torch.testing.assert_close(images, (z / 2 + 0.5).clamp(0, 1), rtol=0, atol=1e-6)


def test_autoguidance_scale_one_runs_the_main_model_alone():
    unet, guide = tiny_unet(), small_guide()
    guided = DDPMPipeline(unet, DDPMScheduler(num_train_timesteps=T), guide_unet=guide)
    guided.set_progress_bar_config(disable=True)
    calls = count_unet_calls(guide)
    np.testing.assert_array_equal(sample(guided, autoguidance_scale=1.0).images, sample(make_pipe(unet)).images)
    assert calls == []
    assert not np.array_equal(sample(guided, autoguidance_scale=3.0).images, sample(make_pipe(unet)).images)


def test_noise_level_is_the_inverse_square_root_of_the_snr():
    """σ_t = √((1 − ᾱ_t)/ᾱ_t), the noise-to-signal ratio of z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε."""
    for alpha_bar in (0.999, 0.5, 0.03):
        assert noise_level(torch.tensor(alpha_bar, dtype=torch.float64)) == pytest.approx(
            ((1 - alpha_bar) / alpha_bar) ** 0.5, rel=1e-12
        )


def test_guidance_interval_runs_the_guide_only_where_sigma_lies_inside():
    pipe = guided_pipe()
    scheduler = pipe.scheduler
    scheduler.set_timesteps(STEPS)
    sigmas = [noise_level(scheduler.alphas_cumprod[int(t)]) for t in scheduler.timesteps]
    low, high = sorted(sigmas)[1], sorted(sigmas)[-2]  # (low, high] holds the middle steps but the lowest two
    inside = [low < sigma <= high for sigma in sigmas]
    assert 0 < sum(inside) < STEPS
    calls = count_unet_calls(pipe.guide_unet)
    sample(pipe, autoguidance_scale=2.0, guidance_interval=(low, high))
    assert len(calls) == sum(inside)


def test_guidance_interval_matches_guiding_inside_and_the_main_model_alone_outside():
    unet, guide = tiny_unet(), small_guide()
    images = sample(guided_pipe(unet, guide), seed=3, autoguidance_scale=2.0, guidance_interval=(0.5, 3.0)).images
    scheduler, generator = DDPMScheduler(num_train_timesteps=T), torch.Generator().manual_seed(3)
    z = torch.randn((2, 1, 8, 8), generator=generator)
    scheduler.set_timesteps(STEPS)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = unet(z, t).sample
            if 0.5 < noise_level(scheduler.alphas_cumprod[int(t)]) <= 3.0:
                eps_guide = guide(z, t).sample
                eps = eps_guide + 2.0 * (eps - eps_guide)  # ε̃ = ε_guide + w·(ε_main − ε_guide)
            z = scheduler.step(eps, t, z, generator=generator).prev_sample
    np.testing.assert_allclose(images, (z / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy(), rtol=0, atol=1e-6)


def test_a_guidance_interval_holding_every_step_equals_no_interval_and_one_holding_none_the_main_model():
    pipe = guided_pipe()
    every = sample(pipe, autoguidance_scale=2.0).images
    np.testing.assert_array_equal(sample(pipe, autoguidance_scale=2.0, guidance_interval=(0.0, 1e9)).images, every)
    main_alone = sample(pipe, autoguidance_scale=1.0).images
    np.testing.assert_array_equal(sample(pipe, autoguidance_scale=2.0, guidance_interval=(1e8, 1e9)).images, main_alone)


def test_guidance_interval_limits_classifier_free_guidance_too():
    pipe = make_pipe(tiny_unet(NUM_CLASSES + 1))
    conditional = sample(pipe, class_labels=[0, 1], guidance_scale=1.0).images
    limited = sample(pipe, class_labels=[0, 1], guidance_scale=4.0, guidance_interval=(1e8, 1e9)).images
    np.testing.assert_array_equal(limited, conditional)
    assert not np.array_equal(sample(pipe, class_labels=[0, 1], guidance_scale=4.0).images, conditional)


@pytest.mark.parametrize("interval", [(3.0, 1.0), (-1.0, 2.0), (1.0, float("nan")), (1.0,), "0.2,5", (0, 1, 2), 5])
def test_a_bad_guidance_interval_raises_value_error_naming_it(interval):
    with pytest.raises(ValueError, match="guidance_interval"):
        sample(guided_pipe(), autoguidance_scale=2.0, guidance_interval=interval)


def test_the_guide_is_saved_and_loaded_with_its_pipeline_and_pipelines_without_one_still_load(tmp_path):
    guided = DDPMPipeline(tiny_unet(), DDPMScheduler(num_train_timesteps=T), guide_unet=small_guide())
    guided.save_pretrained(tmp_path / "guided", safe_serialization=True)
    assert (tmp_path / "guided" / "guide_unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = DDPMPipeline.from_pretrained(tmp_path / "guided")
    loaded.set_progress_bar_config(disable=True)
    guided.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(
        sample(loaded, autoguidance_scale=2.0).images, sample(guided, autoguidance_scale=2.0).images
    )
    make_pipe().save_pretrained(tmp_path / "plain", safe_serialization=True)
    assert DDPMPipeline.from_pretrained(tmp_path / "plain").guide_unet is None


def test_a_guide_must_fit_the_unet_and_autoguidance_needs_one():
    with pytest.raises(ValueError, match="sample_size"):
        DDPMPipeline(tiny_unet(), DDPMScheduler(), guide_unet=small_guide(sample_size=16))
    with pytest.raises(ValueError, match="classifier-free guidance"):
        DDPMPipeline(tiny_unet(NUM_CLASSES + 1), DDPMScheduler(), guide_unet=small_guide())
    with pytest.raises(ValueError, match="needs a guide_unet"):
        sample(make_pipe(), autoguidance_scale=2.0)
    guided = DDPMPipeline(tiny_unet(), DDPMScheduler(), guide_unet=small_guide())
    with pytest.raises(ValueError, match=r"autoguidance_scale must lie in \[0, ∞\)"):
        sample(guided, autoguidance_scale=-1.0)


def test_trajectory_records_every_kth_step_and_the_last():
    pipe = make_pipe()
    out = sample(pipe, num_inference_steps=7, return_trajectory_every=3)
    timesteps = pipe.scheduler.timesteps.tolist()
    assert [p.timestep for p in out.trajectory] == [timesteps[0], timesteps[3], timesteps[6]]
    for point in out.trajectory:
        assert point.sample.shape == point.pred_original_sample.shape == (2, 1, 8, 8)
    assert sample(pipe).trajectory is None


class NoX0Scheduler(DDPMScheduler):
    """A scheduler whose step does not return x̂_0."""

    def step(self, model_output, timestep, sample, generator=None, return_dict=True):
        out = super().step(model_output, timestep, sample, generator=generator)
        out.pred_original_sample = None
        return out


def test_trajectory_computes_x0_for_schedulers_that_do_not_return_it():
    """x̂_0 = (z_t − √(1 − ᾱ_t)·ε̂)/√ᾱ_t, unclipped, when the scheduler does not give its (clipped) one."""
    config = {"num_train_timesteps": T, "clip_sample": False}
    unet = tiny_unet()
    reference = sample(make_pipe(unet, DDPMScheduler(**config)), return_trajectory_every=1).trajectory
    computed = sample(make_pipe(unet, NoX0Scheduler(**config)), return_trajectory_every=1).trajectory
    for ref, got in zip(reference, computed, strict=True):
        torch.testing.assert_close(got.pred_original_sample, ref.pred_original_sample, rtol=1e-5, atol=1e-5)


def test_callback_sees_every_step_and_can_replace_the_latents():
    pipe, seen = make_pipe(), []

    def callback(p, step_index, timestep, kwargs):
        seen.append((step_index, int(timestep), tuple(kwargs)))
        return {"latents": torch.full_like(kwargs["latents"], 0.5)} if step_index == STEPS - 1 else kwargs

    images = sample(
        pipe, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents", "pred_original_sample"]
    ).images
    assert [s[0] for s in seen] == list(range(STEPS))
    assert [s[1] for s in seen] == pipe.scheduler.timesteps.tolist()
    assert all(s[2] == ("latents", "pred_original_sample") for s in seen)
    np.testing.assert_array_equal(images, np.full_like(images, 0.75))  # z_0 = 0.5 → 0.5/2 + 0.5


def test_interrupt_from_a_callback_stops_sampling():
    unet = tiny_unet()
    pipe, calls = make_pipe(unet), count_unet_calls(unet)

    def stop_after_two(p, step_index, timestep, kwargs):
        p._interrupt = step_index == 1
        return kwargs

    sample(pipe, callback_on_step_end=stop_after_two)
    assert len(calls) == 2
    calls.clear()
    sample(pipe)  # the next call starts afresh
    assert len(calls) == STEPS


def test_the_unet_runs_in_its_loaded_dtype_unless_bf16_autocast_is_asked_for_per_call_or_per_pipeline():
    unet = tiny_unet()
    pipe, dtypes = make_pipe(unet), []
    unet.register_forward_hook(lambda m, args, out: dtypes.append(out.sample.dtype))
    sample(pipe)
    assert set(dtypes) == {torch.float32}
    dtypes.clear()
    sample(pipe, precision="bf16")
    assert set(dtypes) == {torch.bfloat16}
    pipe.default_precision = "bf16"  # an application's opt-in for every later call
    dtypes.clear()
    sample(pipe)
    assert set(dtypes) == {torch.bfloat16}
    dtypes.clear()
    sample(pipe, precision="loaded")
    assert set(dtypes) == {torch.float32}
    with pytest.raises(ValueError, match="precision must be one of"):
        sample(pipe, precision="auto")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_pipeline_loaded_in_half_precision_samples_in_it_on_the_cpu(dtype):
    pipe = make_pipe(tiny_unet().to(dtype))
    dtypes = []
    pipe.unet.register_forward_hook(lambda m, args, out: dtypes.append(out.sample.dtype))
    images = sample(pipe, output_type="pt").images
    assert set(dtypes) == {dtype} and images.dtype == dtype and torch.isfinite(images).all()


def test_an_fp16_pipeline_samples_the_images_of_diffusers_ddpm_pipeline_with_the_same_fp16_unet():
    unet = tiny_unet().to(torch.float16)
    ours = sample(make_pipe(unet), output_type="np").images
    theirs_pipe = diffusers.DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=T))
    theirs_pipe.set_progress_bar_config(disable=True)
    theirs = theirs_pipe(
        batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=STEPS, output_type="np"
    ).images
    np.testing.assert_array_equal(ours, theirs)


def test_bf16_images_stay_close_to_fp32():
    pipe = make_pipe(scheduler=DDIMScheduler(num_train_timesteps=T))
    fp32 = sample(pipe).images
    bf16 = sample(pipe, precision="bf16").images
    assert np.abs(fp32 - bf16).max() < 0.1


def test_unconditional_unet_refuses_class_labels():
    with pytest.raises(ValueError, match="class_labels"):
        sample(make_pipe(), class_labels=1)


BAD_ARGUMENTS = [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -2}, "batch_size"),
    ({"batch_size": 1.5}, "batch_size"),
    ({"num_inference_steps": 0}, "num_inference_steps"),
    ({"num_inference_steps": T + 1}, "num_inference_steps"),
    ({"class_labels": NUM_CLASSES + 1}, "class_labels"),
    ({"class_labels": -1}, "class_labels"),
    ({"class_labels": [0, 1, 2]}, "class_labels"),
    ({"class_labels": 0.5}, "class_labels"),
    ({"guidance_scale": -0.5}, "guidance_scale"),
    ({"guidance_scale": float("nan")}, "guidance_scale"),
    ({"eta": -1.0}, "eta"),
    ({"output_type": "jpeg"}, "output_type"),
    ({"precision": "fp16"}, "precision"),
    ({"return_trajectory_every": 0}, "return_trajectory_every"),
    ({"callback_on_step_end_tensor_inputs": ["noise"]}, "callback_on_step_end_tensor_inputs"),
]


@pytest.mark.parametrize(
    "kwargs, name", BAD_ARGUMENTS, ids=[name + str(i) for i, (_, name) in enumerate(BAD_ARGUMENTS)]
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sample(make_pipe(tiny_unet(NUM_CLASSES + 1)), **kwargs)


@pytest.mark.parametrize("scheduler_class", [diffusers.EulerDiscreteScheduler, diffusers.LMSDiscreteScheduler])
def test_sigma_based_schedulers_start_from_noise_of_their_set_timesteps_scale(scheduler_class):
    """z_T ~ N(0, σ_init²) with σ_init of the visited steps: the UNet's first input z_T/√(σ_T² + 1) is then exactly the
    unit draw. (Read before set_timesteps, σ_init is the 1,000-step schedule's, too large for "leading" spacing.)"""
    unet, inputs = tiny_unet(), []
    unet.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    saved = DDPMScheduler(num_train_timesteps=T, timestep_spacing="leading").config  # as the bundled models save it
    scheduler = scheduler_class.from_config(saved)
    assert scheduler.config.timestep_spacing == "leading"
    sample(make_pipe(unet, scheduler), seed=4)
    unit_draw = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(inputs[0], unit_draw, rtol=1e-5, atol=1e-5)


def test_output_type_latent_returns_the_final_latents_undecoded():
    pipe, final = make_pipe(), {}

    def keep(p, step_index, timestep, kwargs):
        final["latents"] = kwargs["latents"]
        return kwargs

    latents = sample(pipe, output_type="latent", callback_on_step_end=keep).images
    torch.testing.assert_close(latents, final["latents"], rtol=0, atol=0)
    torch.testing.assert_close(sample(pipe, output_type="pt").images, (latents / 2 + 0.5).clamp(0, 1), rtol=0, atol=0)


def test_a_missing_component_is_named_in_a_value_error():
    pipe = make_pipe()
    pipe.scheduler = None
    with pytest.raises(ValueError, match="no scheduler"):
        sample(pipe)
    pipe = make_pipe()
    pipe.unet = None
    with pytest.raises(ValueError, match="no unet"):
        sample(pipe)
    with pytest.raises(ValueError, match="needs a guide_unet"):
        sample(make_pipe(), autoguidance_scale=3.0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"eta": 1.5}, "eta"),
        ({"eta": 10**400}, "eta"),
        ({"eta": True}, "eta"),
        ({"guidance_scale": 10**400}, "guidance_scale"),
        ({"autoguidance_scale": float("inf")}, "autoguidance_scale"),
    ],
)
def test_out_of_range_numbers_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sample(make_pipe(tiny_unet(NUM_CLASSES + 1)), **kwargs)
