"""A small convolutional VAE (Kingma & Welling 2014, https://arxiv.org/abs/1312.6114), from the course notes.

Encoder q(z | x) = N(μ(x), diag σ²(x)), prior p(z) = N(0, I), decoder p(x | z) either Bernoulli (the network
gives logits) or Gaussian N(f(z), σ²I) (the network gives the means f(z); σ fixed or learned). Images are in
[0, 1]. The interface follows diffusers' ``AutoencoderKL``: ``encode(x).latent_dist``, ``decode(z).sample``;
``scaling_factor`` is what latent-diffusion pipelines multiply z by (latents = z · scaling_factor).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from .checks import check_number
from .distributions import DiagonalGaussian

LatentType = Literal["vector", "spatial"]
Likelihood = Literal["bernoulli", "gaussian"]
NormType = Literal["group", "none"]
LatentChoice = Literal["mode", "sample"]
LATENT_TYPES = ("vector", "spatial")
LIKELIHOODS = ("bernoulli", "gaussian")
NORM_TYPES = ("group", "none")
LATENT_CHOICES = ("mode", "sample")
LEARNED_DECODER_STD_INIT = 0.1  # σ a learned Gaussian decoder starts from (σ = 1 makes early training slow)


@dataclass
class VAEEncoderOutput(BaseOutput):
    """``latent_dist`` is q(z | x)."""

    latent_dist: DiagonalGaussian


@dataclass
class VAEDecoderOutput(BaseOutput):
    """``sample``: the mean of p(x | z), in [0, 1]; ``decoder_output``: the logits (Bernoulli) or means (Gaussian)."""

    sample: torch.Tensor
    decoder_output: torch.Tensor | None = None


@dataclass
class ELBOOutput(BaseOutput):
    """Per-example terms, in nats. ``elbo`` = reconstruction − kl whatever β; ``loss`` = −(reconstruction − β·kl)."""

    reconstruction: torch.Tensor
    kl: torch.Tensor
    elbo: torch.Tensor
    loss: torch.Tensor


def _block_channels(channels: list[int]) -> list[tuple[int, int]]:
    """(in, out) channels of each down block: the first keeps channels[0], then channels[i − 1] → channels[i]."""
    return list(zip([channels[0]] + channels[:-1], channels))


def _block(resample: nn.Module, channels: int, norm) -> nn.Sequential:
    """A stride-2 (transposed) conv then a 3×3 conv, each followed by the norm and SiLU."""
    conv = nn.Conv2d(channels, channels, 3, padding=1)
    return nn.Sequential(resample, norm(channels), nn.SiLU(), conv, norm(channels), nn.SiLU())


class VAE(ModelMixin, ConfigMixin):
    """Convolutional VAE: per block a stride-2 conv (the decoder: a stride-2 transposed conv) then a 3×3 conv.

    ``latent_type="vector"`` flattens the trunk into a linear layer giving ``latent_dim`` means and log-variances;
    ``"spatial"`` keeps a ``latent_channels`` × (sample_size / 2^len(block_out_channels))² latent map.
    Gaussian ``decode(z).sample`` is the mean f(z) clamped to [0, 1] (the likelihood itself uses f(z) unclamped).
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 1,
        sample_size: int = 28,
        block_out_channels: Sequence[int] = (32, 64),
        latent_type: LatentType = "vector",
        latent_dim: int = 16,
        latent_channels: int = 4,
        likelihood: Likelihood = "bernoulli",
        decoder_std: float | Literal["learned"] = 0.1,
        norm_type: NormType = "group",
        norm_num_groups: int = 8,
        scaling_factor: float = 1.0,
    ):
        super().__init__()
        self._check_config()  # register_to_config has filled self.config already
        channels = list(block_out_channels)
        size = sample_size // 2 ** len(channels)
        self.latent_shape = (latent_dim,) if latent_type == "vector" else (latent_channels, size, size)

        def norm(num_channels: int) -> nn.Module:
            return nn.GroupNorm(norm_num_groups, num_channels) if norm_type == "group" else nn.Identity()

        trunk = channels[-1] * size * size
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], 3, padding=1),
            nn.SiLU(),
            *[
                _block(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), c_out, norm)
                for c_in, c_out in _block_channels(channels)
            ],
        )
        if latent_type == "vector":
            self.to_moments = nn.Sequential(nn.Flatten(), nn.Linear(trunk, 2 * latent_dim))  # [μ, ln σ²]
            self.from_latent = nn.Sequential(
                nn.Linear(latent_dim, trunk), nn.Unflatten(1, (channels[-1], size, size)), nn.SiLU()
            )
        else:
            self.to_moments = nn.Conv2d(channels[-1], 2 * latent_channels, 3, padding=1)  # [μ, ln σ²]
            self.from_latent = nn.Sequential(nn.Conv2d(latent_channels, channels[-1], 3, padding=1), nn.SiLU())
        self.decoder = nn.Sequential(
            *[
                _block(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), c_out, norm)
                for c_out, c_in in _block_channels(channels)[::-1]
            ],
            nn.Conv2d(channels[0], in_channels, 3, padding=1),  # logits or means, one per pixel
        )
        if decoder_std == "learned":
            self.log_decoder_std = nn.Parameter(torch.tensor(math.log(LEARNED_DECODER_STD_INIT)))  # ln σ

    def _check_config(self) -> None:
        cfg = self.config
        for name, choices in (("latent_type", LATENT_TYPES), ("likelihood", LIKELIHOODS), ("norm_type", NORM_TYPES)):
            if cfg[name] not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {cfg[name]!r}.")
        for name in ("in_channels", "sample_size", "latent_dim", "latent_channels", "norm_num_groups"):
            if isinstance(cfg[name], bool) or not isinstance(cfg[name], int) or cfg[name] < 1:
                raise ValueError(f"{name} must be a positive integer, got {cfg[name]!r}.")
        channels = cfg.block_out_channels
        if len(channels) == 0 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"block_out_channels must be a non-empty sequence of positive integers, got {channels!r}.")
        if cfg.sample_size % 2 ** len(channels):
            raise ValueError(
                f"sample_size must be a multiple of 2**len(block_out_channels) = {2 ** len(channels)}, "
                f"got {cfg.sample_size}."
            )
        if cfg.norm_type == "group" and any(c % cfg.norm_num_groups for c in channels):
            raise ValueError(
                f"every entry of block_out_channels {tuple(channels)} must be divisible by "
                f"norm_num_groups={cfg.norm_num_groups}."
            )
        std = cfg.decoder_std
        if std != "learned" and not (
            isinstance(std, (int, float)) and not isinstance(std, bool) and math.isfinite(std) and std > 0
        ):
            raise ValueError(f"decoder_std must be a positive float or 'learned', got {std!r}.")

    def check_images(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise ValueError naming ``name`` unless ``x`` is a finite (batch, C, H, W) tensor in [0, 1] for this VAE."""
        size, channels = self.config.sample_size, self.config.in_channels
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
        if x.ndim != 4:
            raise ValueError(f"{name} must be 4-D (batch, {channels}, {size}, {size}), got shape {tuple(x.shape)}.")
        if x.shape[1] != channels:
            raise ValueError(f"{name} must have {channels} channel(s), got shape {tuple(x.shape)}.")
        if tuple(x.shape[2:]) != (size, size):
            raise ValueError(f"{name} must be {size}×{size} pixels, got shape {tuple(x.shape)}.")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
        if x.min() < 0 or x.max() > 1:
            hint = " (divide 0–255 images by 255)" if x.max() > 1 else ""
            raise ValueError(
                f"{name} must lie in [0, 1], got values in [{x.min().item():.3g}, {x.max().item():.3g}]{hint}."
            )

    def check_latents(self, z: torch.Tensor, name: str = "z") -> None:
        """Raise ValueError naming ``name`` unless ``z`` is a finite (batch, *latent_shape) tensor."""
        if (
            not isinstance(z, torch.Tensor)
            or z.ndim != 1 + len(self.latent_shape)
            or tuple(z.shape[1:]) != self.latent_shape
        ):
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(
                f"{name} must be a tensor of shape (batch, {', '.join(map(str, self.latent_shape))}), got {shape}."
            )
        if not torch.isfinite(z).all():
            raise ValueError(f"{name} contains NaN or infinite values.")

    @property
    def decoder_log_std(self) -> torch.Tensor:
        """ln σ of the Gaussian decoder (a parameter when ``decoder_std="learned"``)."""
        if self.config.decoder_std == "learned":
            return self.log_decoder_std
        return torch.tensor(math.log(self.config.decoder_std), device=self.device)

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> VAEEncoderOutput | tuple[DiagonalGaussian]:
        """q(z | x) for images ``x`` of shape (batch, in_channels, sample_size, sample_size) in [0, 1]."""
        self.check_images(x)
        moments = self.to_moments(self.encoder(x.to(self.dtype)))
        mean, logvar = moments.float().chunk(2, dim=1)  # the distribution's arithmetic in float32
        posterior = DiagonalGaussian(mean, logvar)
        return VAEEncoderOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> VAEDecoderOutput | tuple[torch.Tensor]:
        """The mean of p(x | z) in [0, 1] (``sample``) and the raw network output (``decoder_output``)."""
        self.check_latents(z)
        decoder_output = self.decoder(self.from_latent(z.to(self.dtype)))
        if self.config.likelihood == "bernoulli":
            sample = torch.sigmoid(decoder_output)  # E[x | z] = p = σ(logits)
        else:
            sample = decoder_output.clamp(0.0, 1.0)  # E[x | z] = f(z), clamped to the image range for display
        return VAEDecoderOutput(sample=sample, decoder_output=decoder_output) if return_dict else (sample,)

    def forward(
        self,
        x: torch.Tensor,
        latent: LatentChoice = "mode",
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> VAEDecoderOutput | tuple[torch.Tensor]:
        """Reconstruct ``x`` through z = μ (``latent="mode"``) or a draw z ~ q(z | x) (``"sample"``)."""
        if latent not in LATENT_CHOICES:
            raise ValueError(f"latent must be one of {LATENT_CHOICES}, got {latent!r}.")
        posterior = self.encode(x).latent_dist
        z = posterior.mode() if latent == "mode" else posterior.sample(generator)
        return self.decode(z, return_dict=return_dict)

    def log_likelihood(self, x: torch.Tensor, decoder_output: torch.Tensor) -> torch.Tensor:
        """ln p(x | z) per example, in nats, from the decoder's logits (Bernoulli) or means (Gaussian)."""
        self.check_images(x)
        if not isinstance(decoder_output, torch.Tensor) or decoder_output.shape != x.shape:
            shape = (
                tuple(decoder_output.shape)
                if isinstance(decoder_output, torch.Tensor)
                else type(decoder_output).__name__
            )
            raise ValueError(f"decoder_output must be a tensor shaped like x {tuple(x.shape)}, got {shape}.")
        x, decoder_output = x.float(), decoder_output.float()
        if self.config.likelihood == "bernoulli":
            bce = F.binary_cross_entropy_with_logits(decoder_output, x, reduction="none")
            return -bce.sum(dim=(1, 2, 3))  # Σ_d x_d ln p_d + (1 − x_d) ln(1 − p_d), valid for x_d ∈ [0, 1]
        logvar = (2.0 * self.decoder_log_std.float()).expand_as(decoder_output)  # ln σ² = 2 ln σ
        return DiagonalGaussian(decoder_output, logvar).log_prob(x)  # −‖x − f(z)‖²/(2σ²) − D/2·ln(2πσ²)

    def elbo(self, x: torch.Tensor, beta: float = 1.0, generator: torch.Generator | None = None) -> ELBOOutput:
        """The ELBO L = E_q[ln p(x | z)] − KL[q(z | x) ‖ p(z)] per example (one reparameterized sample of z)."""
        check_number("beta", beta, 0.0)
        posterior = self.encode(x).latent_dist
        z = posterior.sample(generator)  # reparameterized, so the reconstruction term trains the encoder
        reconstruction = self.log_likelihood(x, self.decode(z).decoder_output)  # ≈ E_q[ln p(x | z)]
        kl = posterior.kl()
        elbo = reconstruction - kl  # L = E_q[ln p(x | z)] − KL[q ‖ p(z)]
        loss = -(reconstruction - beta * kl)  # β-VAE objective, minimised
        return ELBOOutput(reconstruction=reconstruction, kl=kl, elbo=elbo, loss=loss)

    def iwae_bound(
        self, x: torch.Tensor, k: int, generator: torch.Generator | None = None, chunk_size: int = 64
    ) -> torch.Tensor:
        """Importance-weighted bound (Burda et al. 2016) per example: in expectation ELBO ≤ it ≤ ln p(x), rising with k.

        The k samples are decoded ``chunk_size`` at a time, so memory does not grow with k.
        """
        for name, value in (("k", k), ("chunk_size", chunk_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        posterior = self.encode(x).latent_dist
        prior = DiagonalGaussian.standard_normal_like(posterior.mean)
        batch = x.shape[0]
        chunks = []
        for start in range(0, k, chunk_size):
            n = min(chunk_size, k - start)
            z = posterior.sample(generator, num_samples=n)  # (n, batch, *latent_shape)
            decoded = self.decode(z.flatten(0, 1)).decoder_output
            log_px_given_z = self.log_likelihood(x.expand(n, *x.shape).flatten(0, 1), decoded).view(n, batch)
            log_w = log_px_given_z + prior.log_prob(z) - posterior.log_prob(z)  # ln w_i = ln p(x, z_i) − ln q(z_i|x)
            chunks.append(torch.logsumexp(log_w, dim=0))
        return torch.logsumexp(torch.stack(chunks), dim=0) - math.log(k)  # ln (1/k) Σ_i w_i
