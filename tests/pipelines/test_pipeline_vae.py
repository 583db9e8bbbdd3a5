"""The VAE pipeline: prior samples, reconstructions, interpolation paths, traversals, latent maps and I/O."""

import math

import numpy as np
import PIL.Image
import pytest
import torch

from pipelines.interpolation import lerp, slerp
from pipelines.pipeline_vae import VAEPipeline, VAEPipelineOutput, principal_directions
from pipelines.vae import VAE

LATENT_DIM = 4


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def pipe() -> VAEPipeline:
    torch.manual_seed(0)
    pipeline = VAEPipeline(VAE(block_out_channels=(8, 16), latent_dim=LATENT_DIM))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture
def images() -> np.ndarray:
    """Five smooth random images (N, H, W) in [0, 1]."""
    return torch.rand(5, 1, 7, 7, generator=seeded(0)).repeat_interleave(4, 2).repeat_interleave(4, 3)[:, 0].numpy()


# ---------------------------------------------------------------- sampling and output types


@pytest.mark.parametrize(
    "output_type, check",
    [
        (
            "pil",
            lambda out: (
                len(out) == 3
                and all(isinstance(i, PIL.Image.Image) and i.size == (28, 28) and i.mode == "L" for i in out)
            ),
        ),
        (
            "np",
            lambda out: (
                isinstance(out, np.ndarray) and out.shape == (3, 28, 28, 1) and out.min() >= 0 and out.max() <= 1
            ),
        ),
        (
            "pt",
            lambda out: (
                isinstance(out, torch.Tensor) and out.shape == (3, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
            ),
        ),
    ],
)
def test_output_types_have_diffusers_shapes(pipe, images, output_type, check):
    assert check(pipe(batch_size=3, output_type=output_type).images)
    assert check(pipe.reconstruct(images[:3], output_type=output_type).images)
    assert check(pipe.interpolate(images[0], images[1], num_frames=3, output_type=output_type).images)
    assert check(pipe.traverse(images[0], dim=1, values=[-1.0, 0.0, 1.0], output_type=output_type).images)


def test_return_dict_false_gives_a_tuple(pipe):
    result = pipe(batch_size=2, output_type="np", return_dict=False)
    assert isinstance(result, tuple) and len(result) == 1 and result[0].shape == (2, 28, 28, 1)


def test_prior_samples_decode_standard_normal_latents(pipe):
    out = pipe(batch_size=4, generator=seeded(3), output_type="pt")
    torch.testing.assert_close(out.latents, torch.randn(4, LATENT_DIM, generator=seeded(3)))
    torch.testing.assert_close(out.images, pipe.vae.decode(out.latents).sample)


def test_same_generator_gives_same_samples(pipe):
    first, again = (pipe(batch_size=2, generator=seeded(1), output_type="pt").images for _ in range(2))
    other = pipe(batch_size=2, generator=seeded(2), output_type="pt").images
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_given_latents_are_decoded(pipe):
    latents = torch.randn(2, LATENT_DIM, generator=seeded(4))
    torch.testing.assert_close(pipe(latents=latents, output_type="pt").images, pipe.vae.decode(latents).sample)


def test_reconstruct_decodes_the_posterior_mean_or_a_seeded_draw(pipe, images):
    x = torch.from_numpy(images)[:, None]
    posterior = pipe.vae.encode(x).latent_dist
    out = pipe.reconstruct(images, output_type="pt")
    torch.testing.assert_close(out.latents, posterior.mean)
    torch.testing.assert_close(out.images, pipe.vae.decode(posterior.mean).sample)
    drawn = pipe.reconstruct(images, latent="sample", generator=seeded(0), output_type="pt")
    torch.testing.assert_close(drawn.latents, posterior.sample(seeded(0)))


def test_encode_means_in_batches_matches_one_batch(pipe, images):
    torch.testing.assert_close(pipe.encode_means(images, batch_size=2), pipe.encode_means(images, batch_size=256))
    assert pipe.encode_means(images).shape == (5, LATENT_DIM)


# ---------------------------------------------------------------- interpolation


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_interpolation_endpoints_are_the_inputs_latent_means(pipe, images, method):
    out = pipe.interpolate(images[0], images[1], num_frames=5, method=method, output_type="pt")
    means = pipe.encode_means(images[:2])
    torch.testing.assert_close(out.latents[[0, -1]], means)
    torch.testing.assert_close(out.images[[0, -1]], pipe.vae.decode(means).sample)
    assert out.latents.shape == (5, LATENT_DIM)


def test_linear_interpolation_takes_equal_steps():
    a, b = torch.randn(3, 2, generator=seeded(0)), torch.randn(3, 2, generator=seeded(1))
    path = lerp(a, b, torch.linspace(0, 1, 6))
    steps = path.diff(dim=0)
    torch.testing.assert_close(steps, ((b - a) / 5).expand_as(steps))


def test_slerp_keeps_the_norm_of_equal_norm_endpoints_and_moves_at_constant_angle():
    a, b = torch.randn(16, generator=seeded(0)), torch.randn(16, generator=seeded(1))
    b = b * a.norm() / b.norm()
    path = slerp(a, b, torch.linspace(0, 1, 9))
    torch.testing.assert_close(path.norm(dim=1), a.norm().expand(9))
    cosines = torch.nn.functional.cosine_similarity(path[:-1], path[1:], dim=1)
    torch.testing.assert_close(cosines, cosines[0].expand(8))
    torch.testing.assert_close(path[[0, -1]], torch.stack([a, b]))
    assert lerp(a, b, torch.tensor([0.5]))[0].norm() < a.norm() - 0.1  # the straight line cuts inside the sphere


def test_slerp_interpolates_unequal_norms_linearly():
    a, b = torch.randn(2, 4, generator=seeded(2)), 3 * torch.randn(2, 4, generator=seeded(3))
    fractions = torch.linspace(0, 1, 7)
    path = slerp(a, b, fractions)
    torch.testing.assert_close(path.flatten(1).norm(dim=1), a.norm() + fractions * (b.norm() - a.norm()))
    torch.testing.assert_close(path[[0, -1]], torch.stack([a, b]))


def test_slerp_falls_back_to_lerp_for_parallel_or_zero_endpoints():
    a, t = torch.tensor([1.0, 2.0]), torch.linspace(0, 1, 4)
    torch.testing.assert_close(slerp(a, 2 * a, t), lerp(a, 2 * a, t))
    torch.testing.assert_close(slerp(torch.zeros(2), a, t), lerp(torch.zeros(2), a, t))
    assert torch.isfinite(slerp(a, -a, t)).all()


# ---------------------------------------------------------------- traversals and latent maps


def test_traverse_sets_one_coordinate_and_keeps_the_rest(pipe, images):
    values = [-2.0, 0.5, 3.0]
    out = pipe.traverse(images[2], dim=2, values=values, output_type="pt")
    mean = pipe.encode_means(images[2])[0]
    torch.testing.assert_close(out.latents[:, 2], torch.tensor(values))
    keep = [0, 1, 3]
    torch.testing.assert_close(out.latents[:, keep], mean[keep].expand(3, -1))
    torch.testing.assert_close(out.images, pipe.vae.decode(out.latents).sample)


def test_latent_map_over_axes_is_a_row_major_grid(pipe, images):
    out = pipe.latent_map(grid_size=3, span=2.0, dims=(1, 3), output_type="pt")
    grid = out.latents.view(3, 3, LATENT_DIM)
    torch.testing.assert_close(grid[0, 0], torch.tensor([0.0, -2.0, 0.0, 2.0]))  # top left: (−span, +span)
    torch.testing.assert_close(grid[:, :, 1], torch.tensor([-2.0, 0.0, 2.0]).expand(3, 3))  # columns: first dim
    torch.testing.assert_close(grid[:, :, 3], torch.tensor([2.0, 0.0, -2.0])[:, None].expand(3, 3))  # rows: second dim
    assert out.images.shape == (9, 1, 28, 28)
    centred = pipe.latent_map(grid_size=3, dims=(1, 3), data=images, output_type="pt").latents
    torch.testing.assert_close(centred[4], pipe.encode_means(images).mean(0))  # the middle of the grid


def test_principal_directions_recover_the_data_axes():
    generator = seeded(0)
    rotation, _ = torch.linalg.qr(torch.randn(5, 5, generator=generator))
    points = torch.randn(2000, 5, generator=generator) * torch.tensor([4.0, 2.0, 0.5, 0.3, 0.1]) @ rotation.T + 7.0
    center, directions, stds = principal_directions(points)
    torch.testing.assert_close(center, points.mean(0))
    assert torch.all(torch.nn.functional.cosine_similarity(directions, rotation.T[:2], dim=1).abs() > 0.99)
    torch.testing.assert_close(stds, torch.tensor([4.0, 2.0]), rtol=0.05, atol=0)
    assert torch.all(directions.gather(1, directions.abs().argmax(1, keepdim=True)) > 0)


def test_latent_map_over_principal_directions_spans_the_data(pipe, images):
    data = np.concatenate([images, images[::-1] * 0.5])
    means = pipe.encode_means(data)
    center, directions, stds = principal_directions(means)
    latents = pipe.latent_map(grid_size=3, span=1.5, directions="pca", data=data, output_type="pt").latents
    torch.testing.assert_close(latents[4], center)
    torch.testing.assert_close(latents[5] - latents[4], 1.5 * stds[0] * directions[0])  # one column right
    torch.testing.assert_close(latents[1] - latents[4], 1.5 * stds[1] * directions[1])  # one row up


# ---------------------------------------------------------------- inputs


def test_every_input_format_gives_the_same_tensor(pipe, images):
    uint8 = (images * 255).round().astype(np.uint8)
    expected = torch.from_numpy(uint8).float()[:, None] / 255
    formats = [
        uint8,
        uint8.astype(np.float64) / 255,
        uint8[..., None],
        [PIL.Image.fromarray(image) for image in uint8],
        [PIL.Image.fromarray(image).convert("RGB") for image in uint8],
        torch.from_numpy(uint8),
        torch.from_numpy(uint8)[:, None].float() / 255,
        [image for image in uint8],
    ]
    for value in formats:
        torch.testing.assert_close(pipe.prepare_images(value), expected)
    torch.testing.assert_close(pipe.prepare_images(uint8[0]), expected[:1])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p, x: p.reconstruct(x[:, :14]), "28×28"),
        (lambda p, x: p.reconstruct(x * 255), "divide"),
        (lambda p, x: p.reconstruct(np.full((28, 28), np.nan)), "NaN"),
        (lambda p, x: p.reconstruct("digit.png"), "PIL image"),
        (lambda p, x: p.reconstruct([]), "empty"),
        (lambda p, x: p.reconstruct(np.zeros((1, 1, 28, 28, 1))), "numpy array"),
        (lambda p, x: p.reconstruct(x, latent="mean"), "latent"),
        (lambda p, x: p(output_type="latent"), "output_type"),
        (lambda p, x: p(batch_size=0), "batch_size"),
        (lambda p, x: p(latents=torch.zeros(2, 3)), "latents"),
        (lambda p, x: p.interpolate(x[:2], x[2]), "image_a must be a single image"),
        (lambda p, x: p.interpolate(x[0], x[1], num_frames=1), "num_frames"),
        (lambda p, x: p.interpolate(x[0], x[1], method="cubic"), "method"),
        (lambda p, x: p.traverse(x[0], dim=LATENT_DIM, values=[0.0]), "dim"),
        (lambda p, x: p.traverse(x[0], dim=0, values=[]), "values"),
        (lambda p, x: p.traverse(x[0], dim=0, values=[0.0, float("inf")]), "values"),
        (lambda p, x: p.latent_map(dims=(0, 0)), "dims"),
        (lambda p, x: p.latent_map(dims=(0, LATENT_DIM)), "dims"),
        (lambda p, x: p.latent_map(span=-1.0), "span"),
        (lambda p, x: p.latent_map(grid_size=1), "grid_size"),
        (lambda p, x: p.latent_map(directions="pca"), "data"),
        (lambda p, x: p.latent_map(directions="pca", data=x[:2]), "data"),
        (lambda p, x: p.latent_map(directions="ica", data=x), "directions"),
    ],
)
def test_bad_input_raises_a_clear_value_error(pipe, images, call, message):
    with pytest.raises(ValueError, match=message):
        call(pipe, images)


# ---------------------------------------------------------------- serialisation


def test_pipeline_save_and_load_round_trip_gives_identical_outputs(tmp_path, pipe, images):
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").exists()
    loaded = VAEPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.vae, VAE)
    for run in (
        lambda p: p(batch_size=3, generator=seeded(0), output_type="pt"),
        lambda p: p.reconstruct(images, output_type="pt"),
        lambda p: p.interpolate(images[0], images[1], method="slerp", output_type="pt"),
    ):
        original, reloaded = run(pipe), run(loaded)
        assert isinstance(reloaded, VAEPipelineOutput)
        # equal up to float rounding: safetensors' memory-mapped weights may take another vectorised kernel path
        torch.testing.assert_close(reloaded.images, original.images, rtol=0, atol=1e-6)
        torch.testing.assert_close(reloaded.latents, original.latents, rtol=0, atol=1e-6)
    assert math.isclose(loaded.vae.config.scaling_factor, pipe.vae.config.scaling_factor)


def test_a_pipeline_without_its_vae_is_a_clear_error():
    with pytest.raises(ValueError, match="VAEPipeline needs a vae"):
        VAEPipeline(vae=None)
