"""Tiny random models the tests build in milliseconds: one factory per kind, so a change of architecture is one edit."""

from __future__ import annotations

import torch
from diffusers import UNet2DModel

from pipelines.vae import VAE


def tiny_unet(
    num_class_embeds: int | None = None,
    seed: int = 0,
    *,
    sample_size: int = 8,
    channels: int = 1,
    block_out_channels: tuple[int, ...] = (8, 16),
) -> UNet2DModel:
    """A UNet2DModel with one layer per block and no attention, its weights drawn from ``seed``; ``num_class_embeds``
    makes it class-conditional (the last class is the null label)."""
    torch.manual_seed(seed)
    levels = len(block_out_channels)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=block_out_channels,
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D",) * levels,
        up_block_types=("UpBlock2D",) * levels,
        num_class_embeds=num_class_embeds,
    ).eval()


def tiny_vae(latent_type: str = "vector", **config) -> VAE:
    """An 8×8 VAE, weights from seed 0: a 4-d vector latent, or ``latent_type="spatial"`` 4×2×2 latents."""
    torch.manual_seed(0)
    shape = {"latent_dim": 4} if latent_type == "vector" else {"latent_type": "spatial", "latent_channels": 4}
    return VAE(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4, **shape, **config).eval()
