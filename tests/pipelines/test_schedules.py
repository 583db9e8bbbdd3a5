"""The schedule math of pipelines/schedules.py, checked as properties (sampling where the notes sample)."""

from __future__ import annotations

import math

import diffusers
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines import schedules
from pipelines.schedules import BETA_SCHEDULES, PREDICTION_TYPES

SCHEDULES_T = [(s, T) for s in BETA_SCHEDULES for T in (10, 100, 1000)]


def betas64(schedule: str = "linear", T: int = 1000, **kwargs) -> torch.Tensor:
    return schedules.make_betas(schedule, T, **kwargs).double()


def sample_stats(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance over the first (sample) dimension."""
    return z.mean(0), z.var(0)


def test_chain_matches_closed_form():
    """The step-by-step encoder and the jump z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε give the same distribution of z_t."""
    n, T = 40_000, 60
    betas = torch.linspace(1e-3, 0.06, T, dtype=torch.float64)
    ab = schedules.alphas_cumprod(betas)
    x = torch.tensor([-1.0, 0.3, 2.0], dtype=torch.float64).expand(n, 3)
    g = torch.Generator().manual_seed(0)
    chain = schedules.forward_chain(x, betas, generator=g)
    for t in (0, 5, 30, T - 1):
        noise = torch.randn(x.shape, generator=g, dtype=torch.float64)
        jump = schedules.closed_form_sample(x, noise, ab, torch.full((n,), t))
        mean_c, var_c = sample_stats(chain[t])
        mean_j, var_j = sample_stats(jump)
        want_mean, want_var = ab[t].sqrt() * x[0], (1 - ab[t]).expand(3)  # q(z_t | x) = N(√ᾱ_t·x, (1 − ᾱ_t)I)
        se_mean, se_var = (want_var / n).sqrt(), want_var * math.sqrt(2 / n)  # standard errors
        for mean, var in ((mean_c, var_c), (mean_j, var_j)):
            assert ((mean - want_mean).abs() < 5 * se_mean).all(), t
            assert ((var - want_var).abs() < 5 * se_var).all(), t
        # and the two are uncorrelated across dimensions like a fresh Gaussian draw
        assert torch.corrcoef(chain[t].T)[0, 1].abs() < 5 / math.sqrt(n)


@pytest.mark.parametrize("schedule, T", SCHEDULES_T)
def test_alphas_cumprod_decreases_within_zero_one(schedule, T):
    ab = schedules.alphas_cumprod(schedules.make_betas(schedule, T))
    assert (ab[1:] < ab[:-1]).all()
    assert ab[0] < 1 and ab[-1] > 0


@pytest.mark.parametrize("schedule, T", SCHEDULES_T)
def test_zero_terminal_snr_gives_zero_last_alpha_bar_and_keeps_the_first(schedule, T):
    original = schedules.alphas_cumprod(schedules.make_betas(schedule, T))
    rescaled = schedules.alphas_cumprod(schedules.make_betas(schedule, T, rescale_betas_zero_snr=True))
    assert rescaled[-1] == 0  # ᾱ_T = 0, so SNR(T) = 0
    assert schedules.signal_to_noise_ratio(rescaled)[-1] == 0
    torch.testing.assert_close(rescaled[0], original[0], rtol=1e-6, atol=0)  # ᾱ_1 kept
    assert (rescaled[1:] < rescaled[:-1]).all()
    # Lin et al. Algorithm 1: the new √ᾱ_t is an affine function of the old one
    old, new = original.double().sqrt(), rescaled.double().sqrt()
    slope = (new[0] - new[-1]) / (old[0] - old[-1])
    torch.testing.assert_close(new, slope * (old - old[-1]), rtol=1e-5, atol=1e-6)


def test_cosine_schedule_follows_squared_cosine_until_the_cap():
    T = 1000
    betas = schedules.make_betas("squaredcos_cap_v2", T).double()
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    ab = schedules.alphas_cumprod(betas)
    uncapped = int((betas < 0.999).sum())
    want = torch.tensor([f(t + 1) / f(0) for t in range(uncapped)], dtype=torch.float64)
    torch.testing.assert_close(ab[:uncapped], want, rtol=1e-4, atol=1e-7)
    assert betas.max() <= 0.999 + 1e-7


@pytest.mark.parametrize("T", [10, 1000])
def test_laplace_schedule_matches_diffusers(T):
    """diffusers 0.42's beta_schedule="laplace" (the Laplace log-SNR schedule of Hang et al. 2024)."""
    theirs = diffusers.DDPMScheduler(beta_schedule="laplace", num_train_timesteps=T).betas
    torch.testing.assert_close(schedules.make_betas("laplace", T), theirs, rtol=0, atol=0)


def test_every_schedule_has_a_label_and_a_function_of_the_range():
    for name, entry in BETA_SCHEDULES.items():
        assert schedules.schedule_label(name) == entry.label and entry.label
        betas = entry.betas(50, 1e-4, 0.02)
        assert betas.shape == (50,) and betas.dtype == torch.float32
        torch.testing.assert_close(schedules.make_betas(name, 50), betas, rtol=0, atol=0)


def test_signal_to_noise_ratio_is_the_closed_form_coefficients_squared():
    ab = schedules.alphas_cumprod(betas64())
    t = torch.arange(len(ab))
    ones, zeros = torch.ones(len(ab), dtype=torch.float64), torch.zeros(len(ab), dtype=torch.float64)
    signal = schedules.closed_form_sample(ones, zeros, ab, t)  # √ᾱ_t
    noise = schedules.closed_form_sample(zeros, ones, ab, t)  # √(1 − ᾱ_t)
    snr = schedules.signal_to_noise_ratio(ab)
    torch.testing.assert_close(snr, signal**2 / noise**2, rtol=1e-12, atol=0)
    assert (snr[1:] < snr[:-1]).all()


@settings(max_examples=60, deadline=None)
@given(schedule=st.sampled_from(tuple(BETA_SCHEDULES)), t=st.integers(0, 999), seed=st.integers(0, 2**16))
def test_posterior_mean_of_predicted_x0_is_the_notes_reverse_mean(schedule, t, seed):
    """μ̃_t(z_t, x̂_0) with x̂_0 = (z_t − √(1 − ᾱ_t)·g_t)/√ᾱ_t is f_t = (z_t − β_t/√(1 − ᾱ_t)·g_t)/√(1 − β_t)."""
    betas = betas64(schedule)
    ab = schedules.alphas_cumprod(betas)
    ab_prev = ab[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    z, noise_pred = torch.randn(2, 8, generator=g, dtype=torch.float64)
    x0 = schedules.predict_original_sample(noise_pred, z, ab[t], "epsilon")
    f_t = (z - betas[t] / (1 - ab[t]).sqrt() * noise_pred) / (1 - betas[t]).sqrt()  # the notes' decoder mean
    torch.testing.assert_close(schedules.posterior_mean(x0, z, ab[t], ab_prev), f_t, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("schedule", tuple(BETA_SCHEDULES))
def test_posterior_is_the_gaussian_product(schedule):
    """q(z_{t'} | z_t, x) ∝ N(z_{t'}; √ᾱ_{t'}·x, 1 − ᾱ_{t'}) · N(z_t; √α·z_{t'}, β) with α = ᾱ_t/ᾱ_{t'}."""
    ab = schedules.alphas_cumprod(betas64(schedule))
    for gap in (1, 7, 100):
        ab_t, ab_prev = ab[gap:-1], ab[: -gap - 1]  # skip the zero-SNR-like last step of the cosine schedule
        alpha, beta = ab_t / ab_prev, 1 - ab_t / ab_prev
        precision = 1 / (1 - ab_prev) + alpha / beta
        c_0, c_t = schedules.posterior_coefficients(ab_t, ab_prev)
        torch.testing.assert_close(schedules.posterior_variance(ab_t, ab_prev), 1 / precision, rtol=1e-9, atol=0)
        torch.testing.assert_close(c_0, ab_prev.sqrt() / (1 - ab_prev) / precision, rtol=1e-9, atol=0)
        torch.testing.assert_close(c_t, alpha.sqrt() / beta / precision, rtol=1e-9, atol=0)


@pytest.mark.parametrize("t, t_prev", [(1, 0), (500, 499), (980, 960), (300, 100)])
def test_posterior_matches_sampled_conditional(t, t_prev):
    """Regressing sampled z_{t'} on z_t (given x) recovers μ̃_t's coefficients and the variance β̃_t."""
    n, x = 400_000, 0.7
    ab = schedules.alphas_cumprod(betas64())
    g = torch.Generator().manual_seed(t)
    eps1, eps2 = torch.randn(2, n, generator=g, dtype=torch.float64)
    z_prev = schedules.closed_form_sample(torch.full((n,), x, dtype=torch.float64), eps1, ab, torch.full((n,), t_prev))
    alpha = ab[t] / ab[t_prev]
    z_t = alpha.sqrt() * z_prev + (1 - alpha).sqrt() * eps2  # q(z_t | z_{t'}) = N(√α·z_{t'}, (1 − α)I)
    cov = torch.cov(torch.stack([z_prev, z_t]))
    slope = cov[0, 1] / cov[1, 1]
    intercept = z_prev.mean() - slope * z_t.mean()
    residual_var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
    c_0, c_t = schedules.posterior_coefficients(ab[t], ab[t_prev])
    var = schedules.posterior_variance(ab[t], ab[t_prev])
    torch.testing.assert_close(slope, c_t, rtol=0.02, atol=0.005)
    torch.testing.assert_close(intercept, c_0 * x, rtol=0.02, atol=0.005)
    torch.testing.assert_close(residual_var, var, rtol=0.02, atol=0)


@settings(max_examples=40, deadline=None)
@given(prediction_type=st.sampled_from(PREDICTION_TYPES), t=st.integers(0, 999), seed=st.integers(0, 2**16))
def test_predictions_invert_the_training_target(prediction_type, t, seed):
    """A network that outputs its training target exactly gives back x and ε from z_t."""
    ab = schedules.alphas_cumprod(betas64())
    g = torch.Generator().manual_seed(seed)
    x, eps = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    timesteps = torch.full((4,), t)
    z = schedules.closed_form_sample(x, eps, ab, timesteps)
    target = schedules.diffusion_loss_target(x, eps, ab, timesteps, prediction_type)
    torch.testing.assert_close(
        schedules.predict_original_sample(target, z, ab[t], prediction_type), x, rtol=1e-6, atol=1e-6
    )
    torch.testing.assert_close(schedules.predict_noise(target, z, ab[t], prediction_type), eps, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_ddim_update_keeps_the_marginals(eta):
    """c_0² = ᾱ_{t'} and c_ε² + σ_t² = 1 − ᾱ_{t'}: with the true x and ε, z_{t'} ~ N(√ᾱ_{t'}·x, (1 − ᾱ_{t'})I)
    (Song et al. 2020, the property q_σ(z_{t'} | x) = q(z_{t'} | x) that eq. 12 is built to have)."""
    ab = schedules.alphas_cumprod(betas64())
    ab_t, ab_prev = ab[20:], ab[:-20]
    c_0, c_eps, sigma = schedules.ddim_coefficients(ab_t, ab_prev, eta)
    torch.testing.assert_close(c_0**2, ab_prev, rtol=1e-12, atol=0)
    torch.testing.assert_close(c_eps**2 + sigma**2, 1 - ab_prev, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(sigma, eta * schedules.posterior_variance(ab_t, ab_prev).sqrt(), rtol=1e-12, atol=0)


def test_dynamic_threshold_scales_by_the_quantile_within_bounds():
    x = torch.stack([torch.linspace(-3, 3, 101), 0.5 * torch.linspace(-1, 1, 101), 10 * torch.linspace(-1, 1, 101)])
    x = x.reshape(3, 1, 101)
    out = schedules.dynamic_threshold(x, ratio=0.5, max_value=2.0)
    s = torch.quantile(x.reshape(3, -1).abs(), 0.5, dim=1).clamp(1, 2.0)
    assert s[0] == 1.5 and s[1] == 1.0 and s[2] == 2.0  # inside, below and above [1, max_value]
    for i in range(3):
        torch.testing.assert_close(out[i], x[i].clamp(-s[i], s[i]) / s[i])
    assert out.abs().max() <= 1
    assert torch.equal(out[1], x[1])  # |x| ≤ 1 throughout: unchanged
    half = schedules.dynamic_threshold(x.half(), ratio=0.5, max_value=2.0)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), out, rtol=2e-3, atol=2e-3)


def test_make_betas_rejects_bad_arguments_and_passes_trained_betas_through():
    with pytest.raises(ValueError, match="beta_schedule"):
        schedules.make_betas("quadratic")
    with pytest.raises(ValueError, match="num_train_timesteps"):
        schedules.make_betas("linear", 0)
    trained = [0.1, 0.2, 0.3]
    assert schedules.make_betas("linear", 1000, trained_betas=trained).tolist() == pytest.approx(trained)


@settings(max_examples=40, deadline=None)
@given(
    prediction_type=st.sampled_from(PREDICTION_TYPES),
    t=st.integers(0, 999),
    gamma=st.sampled_from([0.5, 5.0, 1e6]),
    seed=st.integers(0, 2**16),
)
def test_min_snr_weights_make_every_prediction_type_the_clipped_x_space_loss(prediction_type, t, gamma, seed):
    """A network that believes x̂_0 (and so ε̂, both consistent with z_t) pays, once weighted, min(SNR, γ)·‖x̂_0 − x‖²
    whatever it predicts: ‖ε̂ − ε‖² = SNR·‖x̂_0 − x‖² and ‖v̂ − v‖² = (SNR + 1)·‖x̂_0 − x‖²."""
    ab = schedules.alphas_cumprod(betas64())
    g = torch.Generator().manual_seed(seed)
    x, eps, x0_hat = torch.randn(3, 1, 6, generator=g, dtype=torch.float64)
    timesteps = torch.tensor([t])
    z = schedules.closed_form_sample(x, eps, ab, timesteps)
    eps_hat = schedules.predict_noise(x0_hat, z, ab[t], "sample")  # the ε consistent with x̂_0 at z_t
    prediction = schedules.diffusion_loss_target(x0_hat, eps_hat, ab, timesteps, prediction_type)
    target = schedules.diffusion_loss_target(x, eps, ab, timesteps, prediction_type)
    weight = schedules.min_snr_loss_weight(ab, timesteps, gamma, prediction_type).double()
    snr = schedules.signal_to_noise_ratio(ab[t])
    expected = torch.clamp(snr, max=gamma) * ((x0_hat - x) ** 2).sum()
    torch.testing.assert_close(weight * ((prediction - target) ** 2).sum(), expected.reshape(1), rtol=1e-5, atol=1e-9)


def test_min_snr_weights_leave_noisy_steps_alone_and_shrink_clean_ones():
    ab = schedules.alphas_cumprod(betas64())
    t = torch.arange(1000)
    weight = schedules.min_snr_loss_weight(ab, t, 5.0, "epsilon")
    snr = schedules.signal_to_noise_ratio(ab)
    assert torch.all(weight[snr <= 5] == 1) and torch.all(weight[snr > 5] < 1)
    assert torch.all(weight[1:] >= weight[:-1])  # weights grow with the noise level
    with pytest.raises(ValueError, match="prediction_type"):
        schedules.min_snr_loss_weight(ab, t, 5.0, "noise")
