"""DDIM sampling (Song et al. 2020, https://arxiv.org/abs/2010.02502), written from the equations.

A non-Markovian reverse process that reuses a DDPM-trained network and may skip steps: from z_t it jumps to
z_{t'} = √ᾱ_{t'}·x̂_0 + √(1 − ᾱ_{t'} − σ_t²)·ε̂ + σ_t·ε (eq. 12), with σ_t(η) of eq. 16 (η = 0: deterministic,
η = 1: DDPM's ancestral noise). The constructor takes the same arguments, with the same defaults, as diffusers'
``DDIMScheduler``, so either can be built from the other's config and used in the other's pipelines. The
schedule math is in :mod:`pipelines.schedules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass
class DDIMSchedulerOutput(BaseOutput):
    """``prev_sample`` is z_{t'}; ``pred_original_sample`` is the model's x̂_0 at this step."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


class DDIMScheduler(DiffusionSchedulerBase):
    """DDIM sampler: x̂_0 and ε̂ from the network, then a jump to the next of the visited steps (eq. 12).

    ``set_alpha_to_one`` picks ᾱ after the last step: 1 (a clean sample) or ᾱ_1 of the schedule.
    ``step``'s ``eta`` sets the noise σ_t(η); ``use_clipped_model_output`` recomputes ε̂ from the clipped x̂_0.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: schedules.BetaSchedule = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        clip_sample: bool = True,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: schedules.PredictionType = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: TimestepSpacing = "leading",
        rescale_betas_zero_snr: bool = False,
    ):
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
        # ᾱ after the last step: 1, or ᾱ_1 of the schedule
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self._coefficients: dict[float, dict[int, tuple[torch.Tensor, float, float, float]]] = {}

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: Sequence[int] | None = None,
    ) -> None:
        """Choose the sub-sequence τ of steps to visit: ``num_inference_steps`` spaced by ``timestep_spacing``,
        or custom descending ``timesteps``."""
        super().set_timesteps(num_inference_steps, device, timesteps)
        self.num_inference_steps = len(self.timesteps)
        self._coefficients = {}

    def previous_steps(self, steps: np.ndarray) -> np.ndarray:
        """Custom steps: the next one of the list (−1 after the last). Spaced steps: t' = t − ⌊T/n⌋, as diffusers
        does: the next visited step for "leading" spacing, within a step or so of it for the others when n does
        not divide T."""
        if self.custom_timesteps:
            return np.append(steps[1:], -1)  # τ_{i−1}
        return steps - self.config.num_train_timesteps // len(steps)

    def previous_timestep(self, timestep: int | torch.Tensor) -> int:
        """The timestep t' that ``step`` moves to from t (negative after the last one)."""
        if self.num_inference_steps is None:
            raise ValueError("num_inference_steps is not set: call `set_timesteps` before sampling.")
        t = int(timestep)
        if t in self._previous:
            return self._previous[t]
        if self.custom_timesteps or not 0 <= t < self.config.num_train_timesteps:
            raise ValueError(f"timestep {t} is not one of the scheduler's timesteps {self.timesteps.tolist()}.")
        return t - self.config.num_train_timesteps // self.num_inference_steps

    def _alpha_prods(self, steps: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """ᾱ_t and ᾱ_{t'} for each t in ``steps`` (ᾱ_{t'} = ``final_alpha_cumprod`` past the last step)."""
        t = torch.tensor(steps, dtype=torch.long)
        prev = torch.tensor([self.previous_timestep(s) for s in steps], dtype=torch.long)
        alpha_prod_t_prev = torch.where(prev >= 0, self.alphas_cumprod[prev.clamp(min=0)], self.final_alpha_cumprod)
        return self.alphas_cumprod[t], alpha_prod_t_prev

    def _step_coefficients(self, t: int, eta: float) -> tuple[torch.Tensor, float, float, float]:
        """(ᾱ_t, c_0, c_ε, σ_t) for step t; computed for the whole schedule at once and kept per η."""
        table = self._coefficients.get(eta)
        if table is None:
            if len(self._coefficients) > 8:  # η varied from call to call: do not grow without bound
                self._coefficients.clear()
            table = self._coefficients[eta] = {}
        if t not in table:
            steps = [] if table else list(self._previous)  # the whole schedule on first use
            if t not in steps:
                steps.append(t)  # a step outside the schedule
            alpha_prod_t, alpha_prod_t_prev = self._alpha_prods(steps)
            c_0, c_eps, sigma = schedules.ddim_coefficients(alpha_prod_t, alpha_prod_t_prev, eta)
            # ᾱ_t stays a float32 tensor so that x̂_0 and ε̂ are computed exactly as diffusers does; the
            # coefficients become Python floats (the same float32 values), which multiply tensors faster.
            rows = zip(alpha_prod_t.unbind(), c_0.tolist(), c_eps.tolist(), sigma.tolist())
            table.update(zip(steps, rows))
        return table[t]

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> DDIMSchedulerOutput | tuple:
        """One DDIM step z_t → z_{t'} (Song et al. eq. 12), adding σ_t(η)·ε when η > 0."""
        if self.num_inference_steps is None:
            raise ValueError("num_inference_steps is not set: call `set_timesteps` before `step`.")
        if eta < 0:
            raise ValueError(f"eta must be non-negative (0 = DDIM, 1 = DDPM), got {eta}.")
        if eta > 0 and variance_noise is not None and generator is not None:
            raise ValueError("Pass only one of `generator` or `variance_noise`.")

        # 1. ᾱ_t and the coefficients c_0 = √ᾱ_{t'}, c_ε = √(1 − ᾱ_{t'} − σ_t²), σ_t(η) (eq. 12, 16)
        alpha_prod_t, c_0, c_eps, std_dev_t = self._step_coefficients(int(timestep), eta)

        # 2. x̂_0 ("predicted x_0" of eq. 12) and ε̂ from the network's output
        prediction_type = self.config.prediction_type
        pred_original_sample = schedules.predict_original_sample(model_output, sample, alpha_prod_t, prediction_type)
        pred_noise = schedules.predict_noise(model_output, sample, alpha_prod_t, prediction_type)

        # 3. keep x̂_0 in the data range: dynamic thresholding or plain clipping
        pred_original_sample = self.keep_in_range(pred_original_sample)

        # 4. optionally recompute ε̂ from the clipped x̂_0 (as GLIDE does)
        if use_clipped_model_output:
            pred_noise = schedules.predict_noise(pred_original_sample, sample, alpha_prod_t, "sample")

        # 5. eq. 12 without its noise: z_{t'} = √ᾱ_{t'}·x̂_0 + √(1 − ᾱ_{t'} − σ_t²)·ε̂
        prev_sample = c_0 * pred_original_sample + c_eps * pred_noise

        # 6. add σ_t(η)·ε
        if eta > 0:
            if variance_noise is None:
                variance_noise = randn_tensor(
                    model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype
                )
            prev_sample = prev_sample + std_dev_t * variance_noise

        if not return_dict:
            return (prev_sample, pred_original_sample)
        return DDIMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)
