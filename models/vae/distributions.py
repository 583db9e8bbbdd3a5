"""The VAE's encoder distribution q(z | x) = N(μ, diag σ²) and the prior p(z) = N(0, I).

Every density is summed over the event (all non-batch) dimensions, so each method returns one number per
example. Shaped like diffusers' ``DiagonalGaussianDistribution`` (``sample``, ``mode``, ``kl``), written
from the course notes' formulas.
"""

from __future__ import annotations

import math

import torch
from diffusers.utils.torch_utils import randn_tensor

from .checks import is_positive_int

LOG_2PI = math.log(2.0 * math.pi)
LOGVAR_RANGE = (-30.0, 20.0)  # keeps σ² = exp(ln σ²) finite and non-zero, as diffusers does


class DiagonalGaussian:
    """N(μ, diag σ²) over ``mean.shape[1:]``, one independent Gaussian per example (first dimension)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        if mean.shape != logvar.shape:
            raise ValueError(
                f"mean and logvar must have the same shape, got {tuple(mean.shape)} and {tuple(logvar.shape)}."
            )
        if mean.ndim < 2:
            raise ValueError(f"mean must be (batch, *event_shape), got shape {tuple(mean.shape)}.")
        self.mean = mean
        self.logvar = logvar.clamp(*LOGVAR_RANGE)
        self.std = torch.exp(0.5 * self.logvar)  # σ = exp(½ ln σ²)
        self.var = torch.exp(self.logvar)  # σ² = exp(ln σ²)

    @classmethod
    def standard_normal_like(cls, z: torch.Tensor) -> DiagonalGaussian:
        """The prior p(z) = N(0, I) with the shape of ``z`` (batch first)."""
        zeros = torch.zeros_like(z)
        return cls(zeros, zeros)

    @property
    def event_dims(self) -> tuple[int, ...]:
        """The trailing dimensions a density sums over (all but the batch dimension)."""
        return tuple(range(-(self.mean.ndim - 1), 0))

    def sample(
        self, generator: torch.Generator | list[torch.Generator] | None = None, num_samples: int | None = None
    ) -> torch.Tensor:
        """z = μ + σ ⊙ ε with ε ~ N(0, I) from ``generator``: differentiable in μ and σ (reparameterization).

        ``num_samples=k`` returns k draws stacked in front, shape (k, *mean.shape): the same numbers as k
        successive calls without it (drawn one by one, as torch's CPU normal sampler depends on the tensor size).
        """
        if num_samples is not None and not is_positive_int(num_samples):
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}.")
        draws = [
            randn_tensor(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
            for _ in range(num_samples or 1)
        ]
        eps = draws[0] if num_samples is None else torch.stack(draws)
        return self.mean + self.std * eps  # z = μ + σ ⊙ ε

    def mode(self) -> torch.Tensor:
        """The most likely z, μ."""
        return self.mean

    def kl(self, other: DiagonalGaussian | None = None) -> torch.Tensor:
        """KL[q ‖ p] per example, in nats, to ``other`` = p (the prior N(0, I) when None).

        KL = ½ Σ_j (ln σ_p,j² − ln σ_q,j² + (σ_q,j² + (μ_q,j − μ_p,j)²)/σ_p,j² − 1); against N(0, I) this is
        ½ Σ_j (μ_j² + σ_j² − ln σ_j² − 1), the VAE's KL term (bit for bit: the extra terms are exact zeros and ones).
        """
        other = other if other is not None else self.standard_normal_like(self.mean)
        terms = (other.logvar - self.logvar) + (self.var + (self.mean - other.mean).pow(2)) / other.var - 1.0
        return 0.5 * terms.sum(dim=self.event_dims)  # KL = ½ Σ_j (ln σ_p² − ln σ_q² + (σ_q² + (μ_q − μ_p)²)/σ_p² − 1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """ln q(z) per example; ``z`` may carry extra leading sample dimensions, shape (..., *mean.shape)."""
        if z.shape[z.ndim - self.mean.ndim :] != self.mean.shape:
            raise ValueError(f"z must end with the shape {tuple(self.mean.shape)}, got {tuple(z.shape)}.")
        terms = (z - self.mean).pow(2) / self.var + self.logvar + LOG_2PI
        return -0.5 * terms.sum(dim=self.event_dims)  # ln N(z | μ, σ²) = −½ Σ_j [(z_j − μ_j)²/σ_j² + ln σ_j² + ln 2π]
