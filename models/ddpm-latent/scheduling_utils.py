"""What our DDPM and DDIM schedulers share: the noise schedule, the timesteps to visit, keeping x̂_0 in range and
the forward process. Each scheduler adds its own ``step`` (the reverse update it is named after).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers, SchedulerMixin

from . import schedules
from .checks import check_number

TimestepSpacing = Literal["linspace", "leading", "trailing"]
TIMESTEP_SPACINGS = get_args(TimestepSpacing)


def spaced_timesteps(
    num_inference_steps: int | None, num_train_timesteps: int, spacing: TimestepSpacing, steps_offset: int = 0
) -> np.ndarray:
    """``num_inference_steps`` descending timesteps out of 0..T−1.

    The three spacings of Lin et al. 2023 (https://arxiv.org/abs/2305.08891, Table 2): ``linspace`` spans
    0..T−1 evenly, ``leading`` takes multiples of ⌊T/n⌋ from 0, ``trailing`` steps back from T−1.
    """
    T = num_train_timesteps  # the model was trained on that many steps only
    n = check_number("num_inference_steps", num_inference_steps, 1, T, integer=True)
    if spacing == "linspace":
        return np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        ratio = T // n
        return (np.arange(0, n) * ratio).round()[::-1].copy().astype(np.int64) + steps_offset
    if spacing == "trailing":
        ratio = T / n
        return np.round(np.arange(T, 0, -ratio)).astype(np.int64) - 1
    raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {spacing!r}.")


def validate_custom_timesteps(timesteps: Sequence[int], num_train_timesteps: int) -> np.ndarray:
    """Check user-given timesteps: strictly descending, within 0..T−1."""
    steps = np.asarray(list(timesteps), dtype=np.int64)
    if steps.ndim != 1 or len(steps) == 0:
        raise ValueError("timesteps must be a non-empty list of integers.")
    if np.any(steps[1:] >= steps[:-1]):
        raise ValueError(f"timesteps must be in strictly descending order, got {steps.tolist()}.")
    if steps[0] >= num_train_timesteps or steps[-1] < 0:
        raise ValueError(f"timesteps must lie in [0, num_train_timesteps={num_train_timesteps}), got {steps.tolist()}.")
    return steps


class DiffusionSchedulerBase(SchedulerMixin, ConfigMixin):
    """The schedule β_t, α_t, ᾱ_t of a config, ``set_timesteps``, the x̂_0 range handling and the forward process.

    Subclasses define ``__init__`` (decorated with ``register_to_config``, diffusers' arguments and defaults) that
    calls :meth:`set_up_schedule`, ``previous_steps`` (the step t' each visited t moves to) and ``step``.
    """

    _compatibles = [e.name for e in KarrasDiffusionSchedulers]
    order = 1

    def set_up_schedule(
        self,
        beta_schedule: str,
        num_train_timesteps: int,
        beta_start: float,
        beta_end: float,
        trained_betas: Sequence[float] | None,
        rescale_betas_zero_snr: bool,
        prediction_type: str,
        timestep_spacing: str,
    ) -> None:
        """Check the config's choices and compute the schedule; before ``set_timesteps`` every t is visited."""
        if prediction_type not in schedules.PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {schedules.PREDICTION_TYPES}, got {prediction_type!r}.")
        if timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {timestep_spacing!r}.")
        self.betas = schedules.make_betas(
            beta_schedule, num_train_timesteps, beta_start, beta_end, trained_betas, rescale_betas_zero_snr
        )
        self.alphas = 1.0 - self.betas  # α_t = 1 − β_t
        self.alphas_cumprod = schedules.alphas_cumprod(self.betas)  # ᾱ_t
        self.init_noise_sigma = 1.0  # z_T ~ N(0, I)
        self.num_inference_steps: int | None = None
        self.custom_timesteps = False
        self.timesteps = torch.from_numpy(np.arange(0, num_train_timesteps)[::-1].copy().astype(np.int64))
        self._previous: dict[int, int] = {}

    def scale_model_input(self, sample: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        """DDPM and DDIM feed z_t to the network unscaled."""
        return sample

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: Sequence[int] | None = None,
    ) -> None:
        """Choose the steps to visit: ``num_inference_steps`` spaced by ``timestep_spacing``, or custom descending
        ``timesteps``."""
        if num_inference_steps is not None and timesteps is not None:
            raise ValueError("Pass only one of `num_inference_steps` or `timesteps`.")
        config = self.config
        if timesteps is not None:
            steps = validate_custom_timesteps(timesteps, config.num_train_timesteps)
        else:
            steps = spaced_timesteps(
                num_inference_steps, config.num_train_timesteps, config.timestep_spacing, config.steps_offset
            )
            self.num_inference_steps = num_inference_steps
        self.custom_timesteps = timesteps is not None
        self.timesteps = torch.from_numpy(steps).to(device)
        # t → the step sampled after it: a table instead of a search at every step
        self._previous = dict(zip(steps.tolist(), self.previous_steps(steps).tolist()))

    def previous_steps(self, steps: np.ndarray) -> np.ndarray:
        """The step t' that ``step`` moves to from each visited t (negative after the last one)."""
        raise NotImplementedError

    def keep_in_range(self, pred_original_sample: torch.Tensor) -> torch.Tensor:
        """Keep x̂_0 in the data range: dynamic thresholding (Saharia et al. 2022) or plain clipping to ±r."""
        if self.config.thresholding:
            return schedules.dynamic_threshold(
                pred_original_sample, self.config.dynamic_thresholding_ratio, self.config.sample_max_value
            )
        if self.config.clip_sample:
            r = self.config.clip_sample_range
            return pred_original_sample.clamp(-r, r)  # x̂_0 ∈ [−r, r]
        return pred_original_sample

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor
    ) -> torch.Tensor:
        """The forward process in closed form: z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε."""
        return schedules.closed_form_sample(original_samples, noise, self.alphas_cumprod, timesteps)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor) -> torch.Tensor:
        """The v-prediction training target."""
        return schedules.velocity(sample, noise, self.alphas_cumprod, timesteps)

    def __len__(self) -> int:
        return self.config.num_train_timesteps
