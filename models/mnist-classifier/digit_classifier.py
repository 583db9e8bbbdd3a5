"""The project's MNIST digit classifier, the network that scores generated samples (confident fraction, Fréchet
distance). Trained by ``training/classifier.py``; kept here, beside the other models, so that anything that scores
digits (the evaluation, the app, a published copy loaded with ``diffusers.AutoModel``) needs no training code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

CONFIDENCE = 0.9  # a digit is "confident" when the classifier gives one class at least this probability


def is_confident(probs: torch.Tensor) -> torch.Tensor:
    """Which images (rows of class probabilities) are confident digits: the classifier gives ≥ 0.9 to one class."""
    return probs.max(1).values >= CONFIDENCE


class DigitClassifier(ModelMixin, ConfigMixin):
    """Three convolutions and two linear layers on 1×28×28 images in [0, 1]; ``features`` is the
    penultimate layer (``feature_dim`` values), used for the Fréchet distance."""

    @register_to_config
    def __init__(self, num_classes: int = 10, channels: int = 32, feature_dim: int = 128, sample_size: int = 28):
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(2 * c * (sample_size // 4) ** 2, feature_dim),
            nn.SiLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def load_classifier(path: str | Path) -> DigitClassifier:
    path = Path(path)
    if not (path / "diffusion_pytorch_model.safetensors").is_file():
        raise FileNotFoundError(f"no classifier weights (diffusion_pytorch_model.safetensors) in {str(path)!r}.")
    return DigitClassifier.from_pretrained(path, use_safetensors=True).eval()
