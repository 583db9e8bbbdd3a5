"""DDPM sampling (Ho et al. 2020, https://arxiv.org/abs/2006.11239), written from the equations.

The reverse process p(z_{t−1} | z_t) = N(μ_θ(z_t, t), σ_t² I) of the course notes. The constructor takes
the same arguments, with the same defaults, as diffusers' ``DDPMScheduler``, so either can be built from
the other's config and used in the other's pipelines. The schedule math is in :mod:`pipelines.schedules`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from diffusers.configuration_utils import register_to_config

# diffusers' loader finds how to load a component by looking up SchedulerMixin in the component's own module
# (model_index.json names "pipelines.scheduling_ddpm"/"pipelines.scheduling_ddim"), so it must be importable here.
from diffusers.schedulers.scheduling_utils import SchedulerMixin  # noqa: F401 (read by diffusers' loader, see above)
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from . import schedules
from .scheduling_utils import DiffusionSchedulerBase, TimestepSpacing

VarianceType = Literal["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"]


def learned_range_log_variance(small: torch.Tensor, large: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """log σ_t² interpolated between log β̃_t and log β_t by the network's v ∈ [−1, 1] (Nichol & Dhariwal 2021, eq. 15)."""
    frac = (predicted + 1) / 2
    return frac * torch.log(large) + (1 - frac) * torch.log(small)  # log σ² = v'·log β_t + (1 − v')·log β̃_t


def square_root(variance: torch.Tensor) -> torch.Tensor:
    return variance**0.5  # σ_t = √σ_t²


@dataclass(frozen=True)
class VarianceRule:
    """One ``variance_type``: what ``_get_variance`` returns (diffusers' convention) and σ_t from it."""

    value: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]  # (β̃_t, β_t, predicted) → value
    std: Callable[[torch.Tensor], torch.Tensor]  # value → σ_t


VARIANCE_RULES: dict[str, VarianceRule] = {
    "fixed_small": VarianceRule(lambda small, large, predicted: small, square_root),  # σ_t² = β̃_t (Ho et al. §3.2)
    # σ_t = √β̃_t computed through the log, as diffusers does
    "fixed_small_log": VarianceRule(lambda small, large, predicted: torch.exp(0.5 * torch.log(small)), lambda v: v),
    "fixed_large": VarianceRule(lambda small, large, predicted: large, square_root),  # σ_t² = β_t (Ho et al. §3.2)
    # diffusers returns log β_t for fixed_large_log and then takes its square root (NaN); the intended noise scale is
    # √β_t, the same as fixed_large, so both give β_t here.
    "fixed_large_log": VarianceRule(lambda small, large, predicted: large, square_root),
    "learned": VarianceRule(lambda small, large, predicted: predicted, square_root),  # σ_t² from the network
    "learned_range": VarianceRule(learned_range_log_variance, lambda log_variance: torch.exp(0.5 * log_variance)),
}
VARIANCE_TYPES = tuple(VARIANCE_RULES)


@dataclass
class DDPMSchedulerOutput(BaseOutput):
    """``prev_sample`` is z_{t−1}; ``pred_original_sample`` is the model's x̂_0 at this step."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


class DDPMScheduler(DiffusionSchedulerBase):
    """Ancestral DDPM sampler: x̂_0 from the network, then z_{t−1} ~ q(z_{t−1} | z_t, x̂_0).

    ``variance_type`` picks σ_t²: ``fixed_small`` is the posterior variance β̃_t, ``fixed_large`` is β_t
    (the two bounds of Ho et al. §3.2); the ``_log`` variants compute the same through logs;
    ``learned``/``learned_range`` take it from the second half of the model's channels (Nichol & Dhariwal 2021).
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: schedules.BetaSchedule = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        variance_type: VarianceType = "fixed_small",
        clip_sample: bool = True,
        prediction_type: schedules.PredictionType = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: TimestepSpacing = "leading",
        steps_offset: int = 0,
        rescale_betas_zero_snr: bool = False,
    ):
        if variance_type not in VARIANCE_TYPES:
            raise ValueError(f"variance_type must be one of {VARIANCE_TYPES}, got {variance_type!r}.")
        self.set_up_schedule(
            beta_schedule,
            num_train_timesteps,
            beta_start,
            beta_end,
            trained_betas,
            rescale_betas_zero_snr,
            prediction_type,
            timestep_spacing,
        )
        self.one = torch.tensor(1.0)  # ᾱ_0 = 1: the step before the first
        self.variance_type = variance_type

    def previous_steps(self, steps: np.ndarray) -> np.ndarray:
        """DDPM moves to the next visited step (−1 after the last)."""
        return np.append(steps[1:], -1)

    def previous_timestep(self, timestep: int | torch.Tensor) -> int | torch.Tensor:
        """The timestep t' that ``step`` moves to from t (−1 after the last one)."""
        if self.custom_timesteps or self.num_inference_steps:
            if int(timestep) not in self._previous:
                raise ValueError(
                    f"timestep {int(timestep)} is not one of the scheduler's timesteps {self.timesteps.tolist()}."
                )
            return torch.tensor(self._previous[int(timestep)])
        return timestep - 1

    def _alpha_prods(self, t: int, prev_t: int) -> tuple[torch.Tensor, torch.Tensor]:
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one
        return alpha_prod_t, alpha_prod_t_prev

    def _get_variance(self, t: int, predicted_variance: torch.Tensor | None = None, variance_type: str | None = None):
        """σ_t² for this step (for ``fixed_small_log`` σ_t, for ``learned_range`` log σ_t²), by :data:`VARIANCE_RULES`."""
        prev_t = int(self.previous_timestep(t))
        alpha_prod_t, alpha_prod_t_prev = self._alpha_prods(t, prev_t)
        current_beta_t = 1 - alpha_prod_t / alpha_prod_t_prev  # β_t
        small = torch.clamp(schedules.posterior_variance(alpha_prod_t, alpha_prod_t_prev), min=1e-20)  # β̃_t
        rule = VARIANCE_RULES[variance_type or self.config.variance_type]
        return rule.value(small, current_beta_t, predicted_variance)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> DDPMSchedulerOutput | tuple:
        """One reverse step z_t → z_{t−1} ~ p(z_{t−1} | z_t) = N(μ̃_t(z_t, x̂_0), σ_t² I)."""
        t = int(timestep)
        prev_t = int(self.previous_timestep(t))
        predicted_variance = None
        if model_output.shape[1] == sample.shape[1] * 2 and self.variance_type in ("learned", "learned_range"):
            model_output, predicted_variance = torch.split(model_output, sample.shape[1], dim=1)

        # 1. ᾱ_t and ᾱ_{t'} of the current and the next step (ᾱ = 1 before the first step)
        alpha_prod_t, alpha_prod_t_prev = self._alpha_prods(t, prev_t)

        # 2. x̂_0 from the network's output (Ho et al. eq. 15 for ε-prediction)
        pred_original_sample = schedules.predict_original_sample(
            model_output, sample, alpha_prod_t, self.config.prediction_type
        )

        # 3. keep x̂_0 in the data range: dynamic thresholding or plain clipping
        pred_original_sample = self.keep_in_range(pred_original_sample)

        # 4. posterior mean μ̃_t = c_0·x̂_0 + c_t·z_t (Ho et al. eq. 7)
        pred_prev_sample = schedules.posterior_mean(pred_original_sample, sample, alpha_prod_t, alpha_prod_t_prev)

        # 5. add σ_t·ε, except at the last step (t = 0), which returns the mean
        if t > 0:
            noise = randn_tensor(
                model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype
            )
            variance = self._get_variance(t, predicted_variance=predicted_variance)
            std = VARIANCE_RULES[self.variance_type].std(variance)  # σ_t
            pred_prev_sample = pred_prev_sample + std * noise  # z_{t−1} = μ̃_t + σ_t·ε

        if not return_dict:
            return (pred_prev_sample, pred_original_sample)
        return DDPMSchedulerOutput(prev_sample=pred_prev_sample, pred_original_sample=pred_original_sample)
