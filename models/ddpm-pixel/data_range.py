"""The diffusion models' data range: images in [0, 1] are modelled as x in [−1, 1].

Ho et al. 2020 (https://arxiv.org/abs/2006.11239, §3.3) scale image data linearly to [−1, 1] so that the reverse
process starts from the standard normal prior on a matching scale. Every conversion goes through these two.
"""

from __future__ import annotations

import torch


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] → the UNet's data range [−1, 1]: x = 2·image − 1."""
    return images * 2 - 1  # x = 2·image − 1


def to_image_range(samples: torch.Tensor) -> torch.Tensor:
    """Samples in [−1, 1] → images in [0, 1]: (x/2 + 0.5) clamped, as diffusers' DDPMPipeline does."""
    return (samples / 2 + 0.5).clamp(0, 1)  # image = x/2 + 0.5
