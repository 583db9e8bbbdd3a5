"""What every scheduler of ours shares: the forward process, read off the scheduler's ``alphas_cumprod``."""

from __future__ import annotations

import torch

from . import schedules


class ForwardProcessMixin:
    """``add_noise``, ``get_velocity`` and ``__len__`` for a scheduler holding ``alphas_cumprod`` and a config."""

    alphas_cumprod: torch.Tensor

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
