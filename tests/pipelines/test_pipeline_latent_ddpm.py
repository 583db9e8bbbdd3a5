"""LatentDDPMPipeline: samples the VAE's latents with DDPMPipeline's loop and decodes them with the VAE."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import UNet2DModel

from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline
from pipelines.scheduling_ddim import DDIMScheduler
from pipelines.scheduling_ddpm import DDPMScheduler
from pipelines.vae import VAE

T, STEPS, NUM_CLASSES, SCALING = 100, 5, 3, 0.7


def tiny_vae() -> VAE:
    torch.manual_seed(0)  # 8×8 images, 4×2×2 latents
    return VAE(
        sample_size=8,
        block_out_channels=(8, 8),
        latent_type="spatial",
        latent_channels=4,
        norm_num_groups=4,
        scaling_factor=SCALING,
    ).eval()


def latent_unet(sample_size: int = 2, num_class_embeds: int | None = NUM_CLASSES + 1) -> UNet2DModel:
    torch.manual_seed(1)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8,),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D",),
        up_block_types=("UpBlock2D",),
        num_class_embeds=num_class_embeds,
    ).eval()


def make_pipe(unet=None, scheduler=None):
    pipe = LatentDDPMPipeline(
        tiny_vae(), unet or latent_unet(), scheduler or DDPMScheduler(num_train_timesteps=T), None
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, seed=0, **kwargs):
    kwargs = {"batch_size": 2, "num_inference_steps": STEPS, "output_type": "np", **kwargs}
    return pipe(generator=torch.Generator().manual_seed(seed), **kwargs)


def test_images_have_the_vae_image_size_for_every_output_type():
    pipe = make_pipe()
    np_images = sample(pipe, output_type="np").images
    assert np_images.shape == (2, 8, 8, 1) and np_images.dtype == np.float32
    pt_images = sample(pipe, output_type="pt").images
    assert pt_images.shape == (2, 1, 8, 8) and pt_images.min() >= 0 and pt_images.max() <= 1
    np.testing.assert_array_equal(pt_images.permute(0, 2, 3, 1).numpy(), np_images)
    pil_images = sample(pipe, output_type="pil").images
    assert len(pil_images) == 2 and all(isinstance(im, PIL.Image.Image) and im.size == (8, 8) for im in pil_images)


def test_images_are_the_vae_decoding_of_the_sampled_latents_over_the_scaling_factor():
    pipe, final = make_pipe(), {}

    def keep_latents(p, step_index, timestep, kwargs):
        final["latents"] = kwargs["latents"]
        return kwargs

    images = sample(pipe, output_type="pt", callback_on_step_end=keep_latents).images
    assert final["latents"].shape == (2, 4, 2, 2)
    with torch.no_grad():
        expected = pipe.vae.decode(final["latents"] / SCALING).sample
    torch.testing.assert_close(images, expected, rtol=0, atol=0)


def test_latents_follow_the_pixel_pipeline_loop_exactly():
    """The latent pipeline shares DDPMPipeline's loop: its z_0 equals DDPMPipeline's with the same unet and seed."""
    unet, latents = latent_unet(), {}
    pipe = make_pipe(unet, DDIMScheduler(num_train_timesteps=T))
    pixel = DDPMPipeline(unet, DDIMScheduler(num_train_timesteps=T), None)
    pixel.set_progress_bar_config(disable=True)

    def keep(name):
        def callback(p, step_index, timestep, kwargs):
            latents[name] = kwargs["latents"]
            return kwargs

        return callback

    sample(pipe, class_labels=[1, 2], guidance_scale=2.5, eta=0.3, callback_on_step_end=keep("latent"))
    sample(pixel, class_labels=[1, 2], guidance_scale=2.5, eta=0.3, callback_on_step_end=keep("pixel"))
    torch.testing.assert_close(latents["latent"], latents["pixel"], rtol=0, atol=0)


def test_same_seed_gives_bit_identical_images():
    pipe = make_pipe()
    np.testing.assert_array_equal(sample(pipe, seed=4).images, sample(pipe, seed=4).images)
    assert not np.array_equal(sample(pipe, seed=4).images, sample(pipe, seed=5).images)


def test_trajectory_holds_latents_that_decode_to_images():
    pipe = make_pipe()
    trajectory = sample(pipe, return_trajectory_every=2).trajectory
    assert [p.timestep for p in trajectory] == pipe.scheduler.timesteps.tolist()[::2]
    assert all(p.sample.shape == p.pred_original_sample.shape == (2, 4, 2, 2) for p in trajectory)
    decoded = pipe.decode_latents(trajectory[-1].pred_original_sample)
    assert decoded.shape == (2, 1, 8, 8) and decoded.min() >= 0 and decoded.max() <= 1


def test_unet_that_does_not_match_the_vae_latents_is_refused():
    with pytest.raises(ValueError, match="unet"):
        sample(make_pipe(latent_unet(sample_size=4)))


def test_bad_arguments_raise_value_error_naming_them():
    pipe = make_pipe()
    for kwargs, name in (
        ({"batch_size": 0}, "batch_size"),
        ({"class_labels": 9}, "class_labels"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
    ):
        with pytest.raises(ValueError, match=name):
            sample(pipe, **kwargs)


def test_save_and_load_give_the_same_images(tmp_path):
    pipe = make_pipe()
    pipe.save_pretrained(tmp_path)
    loaded = LatentDDPMPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.vae, VAE) and isinstance(loaded.scheduler, DDPMScheduler)
    np.testing.assert_array_equal(sample(loaded, class_labels=2).images, sample(pipe, class_labels=2).images)


def test_output_type_latent_needs_no_vae_and_decodes_to_the_images():
    pipe = make_pipe()
    latents = sample(pipe, output_type="latent").images
    assert latents.shape == (2, 4, 2, 2)
    with torch.no_grad():
        torch.testing.assert_close(pipe.decode_latents(latents), sample(pipe, output_type="pt").images, rtol=0, atol=0)
    pipe.vae = None
    torch.testing.assert_close(sample(pipe, output_type="latent").images, latents, rtol=0, atol=0)
    with pytest.raises(ValueError, match="no vae"):
        sample(pipe, output_type="pt")
