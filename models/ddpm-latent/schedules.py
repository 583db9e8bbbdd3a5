"""The DDPM noise-schedule math, in one place.

Every equation of the diffusion half of the course notes that does not need a network lives here, with the
formula beside the line that computes it. The DDPM and DDIM schedulers, the training losses, the evaluation's
variational bound and the app's noise-schedule tab all call these functions.

Notation (Ho et al. 2020, https://arxiv.org/abs/2006.11239):
    β_t          noise added at step t                  (``betas``)
    α_t = 1 − β_t                                       (``alphas``)
    ᾱ_t = ∏_{s≤t} α_s                                   (``alphas_cumprod``)
    SNR(t) = ᾱ_t / (1 − ᾱ_t)                            (``signal_to_noise_ratio``)

Indices are 0-based in code: ``betas[0]`` is the notes' β_1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "laplace"]
PredictionType = Literal["epsilon", "sample", "v_prediction"]
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "sample", "v_prediction")


def linear_betas(num_train_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """β_t evenly spaced from β_start to β_end (Ho et al. 2020, §4)."""
    return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)


def scaled_linear_betas(num_train_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """√β_t evenly spaced (the latent-diffusion schedule, Rombach et al. 2022, https://arxiv.org/abs/2112.10752)."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2


def sigmoid_betas(num_train_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """GeoDiff's schedule (Xu et al. 2022, https://arxiv.org/abs/2203.02923)."""
    u = torch.linspace(-6, 6, num_train_timesteps)  # u evenly spaced in [−6, 6]
    return torch.sigmoid(u) * (beta_end - beta_start) + beta_start  # β_t = β_start + (β_end − β_start)·sigmoid(u)


def betas_for_alpha_bar(alpha_bar: Callable[[float], float], num_train_timesteps: int, max_beta: float = 0.999):
    """β_t that discretise a continuous ᾱ(s), s ∈ [0, 1] (Nichol & Dhariwal 2021, https://arxiv.org/abs/2102.09672)."""
    betas = []
    for i in range(num_train_timesteps):
        s1, s2 = i / num_train_timesteps, (i + 1) / num_train_timesteps
        betas.append(min(1 - alpha_bar(s2) / alpha_bar(s1), max_beta))  # β_t = 1 − ᾱ(s_t)/ᾱ(s_{t−1}), capped
    return torch.tensor(betas, dtype=torch.float32)


def cosine_alpha_bar(s: float) -> float:
    """ᾱ(s) = cos²((s + 0.008)/1.008 · π/2) (Nichol & Dhariwal 2021, eq. 17)."""
    return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2


def laplace_alpha_bar(s: float) -> float:
    """A Laplace-shaped log-SNR schedule (Hang et al. 2024, https://arxiv.org/abs/2407.03297), as diffusers writes it:
    λ(s) = −½·sgn(½ − s)·ln(1 − 2|½ − s| + 10⁻⁶), ᾱ(s) = √(e^λ / (1 + e^λ))."""
    lam = -0.5 * math.copysign(1, 0.5 - s) * math.log(1 - 2 * math.fabs(0.5 - s) + 1e-6)  # λ(s)
    return math.sqrt(math.exp(lam) / (1 + math.exp(lam)))  # ᾱ(s) = √(e^λ / (1 + e^λ))


def cosine_betas(num_train_timesteps: int, beta_start: float = 0.0, beta_end: float = 0.0) -> torch.Tensor:
    """The cosine schedule (Nichol & Dhariwal 2021, eq. 17); it ignores the β range."""
    return betas_for_alpha_bar(cosine_alpha_bar, num_train_timesteps)


def laplace_betas(num_train_timesteps: int, beta_start: float = 0.0, beta_end: float = 0.0) -> torch.Tensor:
    """The Laplace schedule (Hang et al. 2024); it ignores the β range."""
    return betas_for_alpha_bar(laplace_alpha_bar, num_train_timesteps)


@dataclass(frozen=True)
class BetaScheduleEntry:
    """One named β schedule: ``betas(T, β_start, β_end)`` and the label the app shows."""

    betas: Callable[[int, float, float], torch.Tensor]
    label: str


# The β schedules, by their diffusers name. A new schedule is one entry here (and its test).
BETA_SCHEDULES: dict[str, BetaScheduleEntry] = {
    "linear": BetaScheduleEntry(linear_betas, "linear"),
    "scaled_linear": BetaScheduleEntry(scaled_linear_betas, "scaled linear"),
    "squaredcos_cap_v2": BetaScheduleEntry(cosine_betas, "cosine"),
    "sigmoid": BetaScheduleEntry(sigmoid_betas, "sigmoid"),
    "laplace": BetaScheduleEntry(laplace_betas, "Laplace"),
}


def schedule_label(beta_schedule: str) -> str:
    """The name the app shows for a β schedule, e.g. "cosine" for ``squaredcos_cap_v2``."""
    return BETA_SCHEDULES[beta_schedule].label


def make_betas(
    beta_schedule: BetaSchedule = "linear",
    num_train_timesteps: int = 1000,
    beta_start: float = 0.0001,
    beta_end: float = 0.02,
    trained_betas: Sequence[float] | None = None,
    rescale_betas_zero_snr: bool = False,
) -> torch.Tensor:
    """β_1..β_T (float32) for one of the named schedules, or the given ``trained_betas``."""
    if trained_betas is not None:
        betas = torch.tensor(trained_betas, dtype=torch.float32)
    else:
        if beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {tuple(BETA_SCHEDULES)}, got {beta_schedule!r}.")
        if num_train_timesteps <= 0:
            raise ValueError(f"num_train_timesteps must be a positive integer, got {num_train_timesteps}.")
        betas = BETA_SCHEDULES[beta_schedule].betas(num_train_timesteps, beta_start, beta_end)
    if rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas)
    return betas


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale √ᾱ_t so that ᾱ_T = 0 (SNR(T) = 0) while keeping √ᾱ_1.

    Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
    https://arxiv.org/abs/2305.08891, Algorithm 1.
    """
    sqrt_ab = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab -= last  # √ᾱ_T → 0
    sqrt_ab *= first / (first - last)  # √ᾱ_1 unchanged
    alphas_bar = sqrt_ab**2
    alphas = torch.cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])  # α_t = ᾱ_t / ᾱ_{t−1}
    return 1 - alphas  # β_t = 1 − α_t


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = ∏_{s=1}^{t} (1 − β_s)."""
    return torch.cumprod(1.0 - betas, dim=0)  # ᾱ_t = ∏_{s≤t} (1 − β_s)


def signal_to_noise_ratio(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """SNR(t) = ᾱ_t / (1 − ᾱ_t); the app plots log SNR(t)."""
    return alphas_cumprod / (1.0 - alphas_cumprod)  # SNR(t) = ᾱ_t / (1 − ᾱ_t)


def _per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a (batch,) or scalar coefficient to broadcast against ``like`` (batch, ...)."""
    values = values.flatten()
    return values.reshape(values.shape + (1,) * (like.ndim - 1))


def closed_form_sample(
    x: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """Jump from x straight to z_t: z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε, i.e. a draw of q(z_t | x)."""
    ab = alphas_cumprod.to(device=x.device, dtype=x.dtype)[timesteps.to(x.device)]
    sqrt_ab = _per_example(ab**0.5, x)
    sqrt_one_minus_ab = _per_example((1 - ab) ** 0.5, x)
    return sqrt_ab * x + sqrt_one_minus_ab * noise  # z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε


def velocity(
    x: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """The v-prediction target v_t = √ᾱ_t·ε − √(1 − ᾱ_t)·x (Salimans & Ho 2022, https://arxiv.org/abs/2202.00512)."""
    ab = alphas_cumprod.to(device=x.device, dtype=x.dtype)[timesteps.to(x.device)]
    sqrt_ab = _per_example(ab**0.5, x)
    sqrt_one_minus_ab = _per_example((1 - ab) ** 0.5, x)
    return sqrt_ab * noise - sqrt_one_minus_ab * x  # v = √ᾱ_t·ε − √(1 − ᾱ_t)·x


def forward_chain(x: torch.Tensor, betas: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Run the notes' encoder step by step: x → z_1 → … → z_T, returning [z_1, …, z_T].

    z_t = √(1 − β_t)·z_{t−1} + √β_t·ε_t, ε_t ~ N(0, I), with z_0 = x. Its z_t has the same
    distribution as :func:`closed_form_sample` (the tests check this).
    """
    z, chain = x, []
    for beta in betas.to(dtype=x.dtype, device=x.device):
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        z = (1 - beta) ** 0.5 * z + beta**0.5 * eps  # z_t = √(1 − β_t)·z_{t−1} + √β_t·ε_t
        chain.append(z)
    return chain


def predict_original_sample(
    model_output: torch.Tensor, sample: torch.Tensor, alpha_prod_t: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """x̂_0 from the network's output at z_t, for each parameterisation of the network."""
    beta_prod_t = 1 - alpha_prod_t
    if prediction_type == "epsilon":
        return (sample - beta_prod_t**0.5 * model_output) / alpha_prod_t**0.5  # x̂_0 = (z_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t
    if prediction_type == "sample":
        return model_output  # the network predicts x̂_0 itself
    if prediction_type == "v_prediction":
        return alpha_prod_t**0.5 * sample - beta_prod_t**0.5 * model_output  # x̂_0 = √ᾱ_t·z_t − √(1 − ᾱ_t)·v̂
    raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")


def predict_noise(
    model_output: torch.Tensor, sample: torch.Tensor, alpha_prod_t: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """ε̂ from the network's output at z_t (needed by DDIM, which moves along the predicted noise)."""
    beta_prod_t = 1 - alpha_prod_t
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "sample":
        return (sample - alpha_prod_t**0.5 * model_output) / beta_prod_t**0.5  # ε̂ = (z_t − √ᾱ_t·x̂_0) / √(1 − ᾱ_t)
    if prediction_type == "v_prediction":
        return alpha_prod_t**0.5 * model_output + beta_prod_t**0.5 * sample  # ε̂ = √ᾱ_t·v̂ + √(1 − ᾱ_t)·z_t
    raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")


def posterior_coefficients(
    alpha_prod_t: torch.Tensor, alpha_prod_t_prev: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coefficients of the posterior mean μ̃_t(z_t, x_0) = c_0·x_0 + c_t·z_t of q(z_{t−1} | z_t, x_0).

    Ho et al. 2020, eq. 7, written for any pair of steps t > t' (so that skipping steps works):
    β_t = 1 − ᾱ_t/ᾱ_t', c_0 = √ᾱ_t'·β_t / (1 − ᾱ_t), c_t = √(1 − β_t)·(1 − ᾱ_t') / (1 − ᾱ_t).
    """
    current_alpha_t = alpha_prod_t / alpha_prod_t_prev  # α_t = ᾱ_t / ᾱ_{t'}
    current_beta_t = 1 - current_alpha_t  # β_t = 1 − α_t
    c_0 = alpha_prod_t_prev**0.5 * current_beta_t / (1 - alpha_prod_t)  # √ᾱ_{t'}·β_t / (1 − ᾱ_t)
    c_t = current_alpha_t**0.5 * (1 - alpha_prod_t_prev) / (1 - alpha_prod_t)  # √α_t·(1 − ᾱ_{t'}) / (1 − ᾱ_t)
    return c_0, c_t


def posterior_mean(
    pred_original_sample: torch.Tensor,
    sample: torch.Tensor,
    alpha_prod_t: torch.Tensor,
    alpha_prod_t_prev: torch.Tensor,
) -> torch.Tensor:
    """μ̃_t(z_t, x̂_0) = c_0·x̂_0 + c_t·z_t, the mean of q(z_{t'} | z_t, x̂_0) (Ho et al. eq. 7).

    With x̂_0 = (z_t − √(1 − ᾱ_t)·ε̂)/√ᾱ_t substituted it is the course notes' reverse mean
    f_t = (z_t − β_t/√(1 − ᾱ_t)·ε̂)/√(1 − β_t) (Ho et al. eq. 11; a test checks the two agree). Computing it from
    x̂_0 lets the samplers clip x̂_0 in between.
    """
    c_0, c_t = posterior_coefficients(alpha_prod_t, alpha_prod_t_prev)
    return c_0 * pred_original_sample + c_t * sample  # μ̃_t = c_0·x̂_0 + c_t·z_t


def posterior_variance(alpha_prod_t: torch.Tensor, alpha_prod_t_prev: torch.Tensor) -> torch.Tensor:
    """β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, the variance of q(z_{t−1} | z_t, x_0) (Ho et al. eq. 7)."""
    current_beta_t = 1 - alpha_prod_t / alpha_prod_t_prev
    return (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t  # β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t


def diffusion_loss_target(
    x: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """What the network is trained to output at z_t: the notes' ε (the simplified DDPM loss), x, or v."""
    if prediction_type == "epsilon":
        return noise  # L(φ) = Σ ‖g_t[√ᾱ_t·x + √(1 − ᾱ_t)·ε] − ε‖²
    if prediction_type == "sample":
        return x
    if prediction_type == "v_prediction":
        return velocity(x, noise, alphas_cumprod, timesteps)
    raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")


def min_snr_loss_weight(
    alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float, prediction_type: str
) -> torch.Tensor:
    """Min-SNR-γ weights (Hang et al. 2023, https://arxiv.org/abs/2303.09556): every prediction type's loss is an
    x-space loss ‖x̂_0 − x‖² times a factor of SNR(t); clipping that factor at γ stops the nearly clean steps (huge SNR)
    from dominating training. In the units of each target: ε → min(SNR, γ)/SNR, x → min(SNR, γ), v → min(SNR, γ)/(SNR + 1)."""
    snr = signal_to_noise_ratio(alphas_cumprod.to(timesteps.device)[timesteps].double())
    clipped = snr.clamp(max=gamma)  # min(SNR(t), γ)
    if prediction_type == "epsilon":
        weight = clipped / snr  # ‖ε̂ − ε‖² = SNR·‖x̂_0 − x‖²
    elif prediction_type == "sample":
        weight = clipped
    elif prediction_type == "v_prediction":
        weight = clipped / (snr + 1)  # ‖v̂ − v‖² = (SNR + 1)·‖x̂_0 − x‖²
    else:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}.")
    return weight.float()


def ddim_sigma(alpha_prod_t, alpha_prod_t_prev, eta: float):
    """σ_t(η) = η·√((1 − ᾱ_{t'})/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_{t'}), DDIM's noise scale (Song et al. 2020,
    https://arxiv.org/abs/2010.02502, eq. 16): η = 0 is deterministic DDIM, η = 1 the DDPM posterior's √β̃_t."""
    return eta * posterior_variance(alpha_prod_t, alpha_prod_t_prev) ** 0.5  # σ_t(η) = η·√β̃_t


def ddim_coefficients(alpha_prod_t, alpha_prod_t_prev, eta: float):
    """(c_0, c_ε, σ_t) of DDIM's update z_{t'} = c_0·x̂_0 + c_ε·ε̂ + σ_t·ε (Song et al. 2020, eq. 12).

    Works elementwise, so a whole schedule's coefficients come from one call on tensors of ᾱ_t and ᾱ_{t'}.
    """
    sigma = ddim_sigma(alpha_prod_t, alpha_prod_t_prev, eta)
    c_0 = alpha_prod_t_prev**0.5  # √ᾱ_{t'}: the "predicted x_0" term
    c_eps = (1 - alpha_prod_t_prev - sigma**2) ** 0.5  # √(1 − ᾱ_{t'} − σ_t²): the "direction pointing to x_t"
    return c_0, c_eps, sigma


def dynamic_threshold(sample: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    """Dynamic thresholding of x̂_0 (Saharia et al. 2022, https://arxiv.org/abs/2205.11487, §2.3).

    Per example, s = the ``ratio`` quantile of |x̂_0| clamped to [1, ``max_value``]; x̂_0 is clipped to
    [−s, s] and divided by s (s = 1 is plain clipping to [−1, 1]).
    """
    dtype = sample.dtype
    batch, *rest = sample.shape
    flat = sample.reshape(batch, -1)
    if dtype not in (torch.float32, torch.float64):
        flat = flat.float()  # quantile (and CPU clamp) need full precision
    s = torch.quantile(flat.abs(), ratio, dim=1)  # s = the p-th quantile of |x̂_0|
    s = torch.clamp(s, min=1, max=max_value).unsqueeze(1)
    flat = torch.clamp(flat, -s, s) / s  # clip to [−s, s], then divide by s
    return flat.reshape(batch, *rest).to(dtype)
