"""DDPMInpaintPipeline (RePaint): known pixels kept exactly, resampling, inputs accepted and refused."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import UNet2DModel

from pipelines.pipeline_inpaint import DDPMInpaintPipeline
from pipelines.scheduling_ddim import DDIMScheduler
from pipelines.scheduling_ddpm import DDPMScheduler
from tests.support.models import tiny_unet

T, STEPS, NUM_CLASSES = 100, 5, 3


def make_pipe(unet=None, scheduler=None):
    pipe = DDPMInpaintPipeline(unet or tiny_unet(), scheduler or DDPMScheduler(num_train_timesteps=T), None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def image_and_mask(batch: int = 2):
    image = torch.rand(batch, 1, 8, 8, generator=torch.Generator().manual_seed(11))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :5] = 1  # the left 5 columns are known
    return image, mask


def inpaint(pipe, image, mask, seed=0, **kwargs):
    kwargs = {"num_inference_steps": STEPS, "output_type": "pt", **kwargs}
    return pipe(image, mask, generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.mark.parametrize("scheduler", [DDPMScheduler, DDIMScheduler])
@pytest.mark.parametrize("resample_steps", [1, 3])
def test_known_pixels_equal_the_input_exactly(scheduler, resample_steps):
    image, mask = image_and_mask()
    out = inpaint(
        make_pipe(scheduler=scheduler(num_train_timesteps=T)), image, mask, resample_steps=resample_steps
    ).images
    known = mask.bool().expand_as(image)
    assert out.shape == image.shape
    assert torch.equal(out[known], image[known])
    assert not torch.equal(out[~known], image[~known])  # the hole is generated, not copied


def test_every_input_and_output_format_keeps_the_known_pixels():
    image, mask = image_and_mask(batch=1)
    pipe = make_pipe()
    expected = inpaint(pipe, image, mask, output_type="np").images
    for name, (im, m) in {
        "nhwc-array": (image.permute(0, 2, 3, 1).numpy(), mask[0, 0].numpy()),
        "chw-tensor": (image[0], mask[0]),
    }.items():
        np.testing.assert_array_equal(inpaint(pipe, im, m, output_type="np").images, expected, err_msg=name)
    # 8-bit inputs (PIL, uint8 array or tensor) are read as value / 255 and give the same images
    pixels_u8, mask_u8 = (
        (image[0, 0].numpy() * 255).round().astype(np.uint8),
        (mask[0, 0].numpy() * 255).astype(np.uint8),
    )
    from_pil = inpaint(
        pipe, PIL.Image.fromarray(pixels_u8, mode="L"), PIL.Image.fromarray(mask_u8, mode="L"), output_type="np"
    ).images
    assert from_pil.shape == (1, 8, 8, 1)
    np.testing.assert_array_equal(inpaint(pipe, pixels_u8, mask_u8, output_type="np").images, from_pil)
    np.testing.assert_array_equal(
        inpaint(pipe, torch.from_numpy(pixels_u8), torch.from_numpy(mask_u8), output_type="np").images, from_pil
    )
    pil_out = inpaint(
        pipe, PIL.Image.fromarray(pixels_u8, mode="L"), PIL.Image.fromarray(mask_u8, mode="L"), output_type="pil"
    ).images[0]
    np.testing.assert_array_equal(np.asarray(pil_out)[:, :5], pixels_u8[:, :5])


def test_known_region_of_the_last_latents_is_the_image_itself():
    """After the last step (ᾱ = 1) the known region of z_0 is x = 2·image − 1, before any pasting."""
    image, mask = image_and_mask()
    pipe, seen = make_pipe(), {}

    def keep(p, step_index, timestep, kwargs):
        seen[step_index] = kwargs["latents"]
        return kwargs

    inpaint(pipe, image, mask, callback_on_step_end=keep)
    known = mask.bool().expand_as(image)
    torch.testing.assert_close(seen[STEPS - 1][known], (image * 2 - 1)[known], rtol=0, atol=0)
    assert not torch.allclose(seen[0][known], (image * 2 - 1)[known], atol=0.05)  # noised at early steps


def test_resampling_redoes_each_step_and_changes_the_result():
    unet = tiny_unet()
    pipe, calls = make_pipe(unet), []
    unet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    image, mask = image_and_mask()
    once = inpaint(pipe, image, mask, resample_steps=1).images
    assert len(calls) == STEPS
    calls.clear()
    thrice = inpaint(pipe, image, mask, resample_steps=3).images
    assert len(calls) == 3 * STEPS
    assert not torch.equal(once, thrice)


def test_same_seed_gives_bit_identical_images():
    image, mask = image_and_mask()
    pipe = make_pipe()
    a = inpaint(pipe, image, mask, seed=3, resample_steps=2).images
    torch.testing.assert_close(a, inpaint(pipe, image, mask, seed=3, resample_steps=2).images, rtol=0, atol=0)
    assert not torch.equal(a, inpaint(pipe, image, mask, seed=4, resample_steps=2).images)


def test_class_conditional_inpainting_batches_the_guidance_branches():
    unet = tiny_unet(NUM_CLASSES + 1)
    pipe, calls = make_pipe(unet), []
    unet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    image, mask = image_and_mask()
    out = inpaint(pipe, image, mask, class_labels=[0, 2], guidance_scale=2.0).images
    assert calls == [4] * STEPS
    known = mask.bool().expand_as(image)
    assert torch.equal(out[known], image[known])


def test_trajectory_is_recorded():
    image, mask = image_and_mask()
    out = inpaint(make_pipe(), image, mask, return_trajectory_every=1)
    assert len(out.trajectory) == STEPS and out.trajectory[0].sample.shape == (2, 1, 8, 8)


BAD_INPUTS = [
    ({"image": torch.rand(2, 1, 9, 9)}, "image"),
    ({"image": torch.rand(2, 1, 8, 8) * 3}, "image"),
    ({"image": torch.rand(2, 2, 8, 8)}, "image"),
    ({"image": "picture.png"}, "image"),
    ({"mask": torch.ones(1, 1, 8, 7)}, "mask"),
    ({"mask": torch.ones(3, 1, 8, 8)}, "mask"),
    ({"resample_steps": 0}, "resample_steps"),
    ({"num_inference_steps": T + 1}, "num_inference_steps"),
    ({"guidance_scale": float("nan")}, "guidance_scale"),
    ({"class_labels": 1}, "class_labels"),  # unconditional unet
]


@pytest.mark.parametrize("kwargs, name", BAD_INPUTS, ids=[f"{name}{i}" for i, (_, name) in enumerate(BAD_INPUTS)])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    image, mask = image_and_mask()
    kwargs = {"image": image, "mask": mask, **kwargs}
    with pytest.raises(ValueError, match=name):
        inpaint(make_pipe(), **kwargs)


def small_guide() -> UNet2DModel:
    torch.manual_seed(5)
    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(4, 8),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    ).eval()


def test_autoguided_inpainting_keeps_known_pixels_and_weight_one_is_plain():
    unet, image, mask = tiny_unet(), *image_and_mask()
    guided = DDPMInpaintPipeline(unet, DDPMScheduler(num_train_timesteps=T), guide_unet=small_guide())
    guided.set_progress_bar_config(disable=True)
    plain = inpaint(make_pipe(unet), image, mask, resample_steps=2).images
    autoguided = inpaint(guided, image, mask, resample_steps=2, autoguidance_scale=3.0).images
    known = mask.bool().expand_as(image)
    assert torch.equal(autoguided[known], image[known])
    assert not torch.equal(autoguided[~known], plain[~known])
    torch.testing.assert_close(
        inpaint(guided, image, mask, resample_steps=2, autoguidance_scale=1.0).images, plain, rtol=0, atol=0
    )
    with pytest.raises(ValueError, match="needs a guide_unet"):
        inpaint(make_pipe(unet), image, mask, autoguidance_scale=3.0)


def test_output_type_latent_returns_z0_whose_known_region_is_the_image():
    image, mask = image_and_mask()
    latents = inpaint(make_pipe(), image, mask, output_type="latent").images
    known = mask.bool().expand_as(image)
    torch.testing.assert_close(latents[known], (image * 2 - 1)[known], rtol=0, atol=0)
