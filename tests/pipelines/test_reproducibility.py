"""Reproducibility: the same seed gives bit-identical images through every pipeline and through the app's endpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel

from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_inpaint import DDPMInpaintPipeline
from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline
from pipelines.pipeline_vae import VAEPipeline
from pipelines.scheduling_ddim import DDIMScheduler
from pipelines.scheduling_ddpm import DDPMScheduler
from pipelines.vae import VAE

T, STEPS = 40, 6


def unet(sample_size: int = 8, channels: int = 1, num_class_embeds: int | None = None) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
        num_class_embeds=num_class_embeds,
    ).eval()


def vae(latent_type: str = "spatial") -> VAE:
    torch.manual_seed(1)
    if latent_type == "vector":
        return VAE(sample_size=8, block_out_channels=(8, 8), latent_dim=4, norm_num_groups=4).eval()
    return VAE(
        sample_size=8, block_out_channels=(8, 8), latent_type="spatial", latent_channels=4, norm_num_groups=4
    ).eval()


def build(kind: str):
    """A fresh pipeline each call (fresh modules and scheduler state, same weights)."""
    scheduler = (DDIMScheduler if kind.endswith("ddim") else DDPMScheduler)(num_train_timesteps=T)
    if kind in ("ddpm", "ddim"):
        pipe = DDPMPipeline(unet(), scheduler, None)
    elif kind == "conditional":
        pipe = DDPMPipeline(unet(num_class_embeds=4), scheduler, None)
    elif kind == "latent":
        pipe = LatentDDPMPipeline(vae(), unet(sample_size=2, channels=4), scheduler, None)
    elif kind == "inpaint":
        pipe = DDPMInpaintPipeline(unet(), scheduler, None)
    else:
        pipe = VAEPipeline(vae("vector"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(pipe, kind: str, seed: int, precision: str | None) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    extra = {} if precision is None else {"precision": precision}  # None: the pipeline's default
    common = {"generator": generator, "num_inference_steps": STEPS, "output_type": "np", **extra}
    if kind == "inpaint":
        image = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8).repeat(2, 1, 1, 1)
        return pipe(image, (image > 0.5).float(), resample_steps=2, **common).images
    if kind == "conditional":
        return pipe(batch_size=3, class_labels=[0, 2, 3], guidance_scale=2.5, **common).images
    if kind == "ddim":
        return pipe(batch_size=3, eta=0.5, **common).images  # η > 0: DDIM draws fresh noise each step
    return pipe(batch_size=3, **common).images


SAMPLING = ["ddpm", "ddim", "conditional", "latent", "inpaint"]


@pytest.mark.parametrize("precision", ["bf16", None], ids=["bf16", "default"])
@pytest.mark.parametrize("kind", SAMPLING)
def test_same_seed_gives_bit_identical_images(kind, precision):
    torch.manual_seed(123)  # the global RNG state must not matter
    first = run(build(kind), kind, seed=7, precision=precision)
    torch.manual_seed(999)
    torch.rand(17)
    again = run(build(kind), kind, seed=7, precision=precision)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, run(build(kind), kind, seed=8, precision=precision))  # the seed is used


@pytest.mark.parametrize("kind", SAMPLING)
def test_reusing_one_pipeline_repeats_its_images(kind):
    pipe = build(kind)
    np.testing.assert_array_equal(run(pipe, kind, seed=3, precision=None), run(pipe, kind, seed=3, precision=None))


def test_vae_pipeline_same_seed_gives_bit_identical_images():
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def every_picture(pipe, seed):
        generator = lambda: torch.Generator().manual_seed(seed)
        return [
            pipe(batch_size=4, generator=generator(), output_type="np").images,
            pipe.reconstruct(images, latent="sample", generator=generator(), output_type="np").images,
            pipe.interpolate(images[0], images[1], num_frames=4, method="slerp", output_type="np").images,
            pipe.latent_map(grid_size=3, data=images, directions="pca", output_type="np").images,
        ]

    torch.manual_seed(5)
    first = every_picture(build("vae"), seed=11)
    torch.manual_seed(6)
    again = every_picture(build("vae"), seed=11)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    other = every_picture(build("vae"), seed=12)
    assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[1], other[1])


# ---------------------------------------------------------------- through the app's endpoints


def _pixels(value) -> list[np.ndarray]:
    """Every image of an endpoint's answer (galleries, images), as arrays, in order."""
    from PIL import Image

    found = []
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(item, (list, tuple)):
            found += _pixels(item)
            continue
        path = item.get("image", item) if isinstance(item, dict) else item
        path = path.get("path") if isinstance(path, dict) else path
        if isinstance(path, str) and path.endswith((".png", ".webp", ".jpg", ".jpeg")):
            found.append(np.asarray(Image.open(path).convert("L")))
    return found


# (function name, arguments with the seed at index ``seed_at``) — every endpoint that draws random numbers
APP_CALLS = [
    ("sample_stream", ["pixel", "DDPM", 5, 0.0, 3, 3, 0, 1.0], 4),
    ("sample_stream", ["latent", "DDIM", 4, 0.7, 3, 2, 0, 1.0], 4),
    ("sample_stream", ["conditional", "DDIM", 4, 0.0, 3, 2, 6, 2.0], 4),
    ("prior_samples", [4, 3], 1),
    ("inpaint", [7, None, "centre square", "DDPM", 5, 2, 2, 3], 7),
    ("forward_process", [["linear", "sigmoid"], 200, 1e-4, 0.02, 4, None, 50, 3], 7),
]


@pytest.mark.slow
def test_same_seed_gives_bit_identical_images_through_the_app(tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    import app
    from tests.support.app_server import make_tiny_models
    from tests.support.fuzz import public_endpoints
    from tests.support.load import serve_app

    names = {}
    for name, (fn, _, _) in public_endpoints(app.demo).items():
        names.setdefault(fn.__name__, f"/{name}")
    with serve_app(make_tiny_models(tmp_path / "models")) as (url, _):
        first, second = gradio_client.Client(url, verbose=False), gradio_client.Client(url, verbose=False)
        for function, args, seed_at in APP_CALLS:
            images = [_pixels(client.predict(*args, api_name=names[function])) for client in (first, second)]
            assert images[0], function
            for a, b in zip(*images, strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"{function}{args}")
            other = list(args)
            other[seed_at] += 1
            changed = _pixels(first.predict(*other, api_name=names[function]))
            assert any(not np.array_equal(a, b) for a, b in zip(images[0], changed)), f"{function}: the seed is unused"
