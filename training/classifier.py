"""A small MNIST classifier, trained by this project on the training digits, used only to score generated
digits (confidence, class histogram, conditional accuracy, Fréchet distance of its features).

    python -m training.classifier --output_dir models/mnist-classifier
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from .data import BatchSampler, load_data, random_shift


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


def non_digits(digits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images that are not digits, one quarter of each kind: uniform noise, sparse salt noise, smooth blobs
    (7×7 noise upsampled) and the given digits with their pixels shuffled (a digit's ink, no shape)."""
    n = len(digits)
    kinds = [
        torch.rand(n, 1, 28, 28, generator=generator),
        (torch.rand(n, 1, 28, 28, generator=generator) < 0.5 * torch.rand(n, 1, 1, 1, generator=generator)).float(),
        F.interpolate(torch.rand(n, 1, 7, 7, generator=generator), size=28, mode="bilinear"),
        digits.flatten(1)[:, torch.randperm(28 * 28, generator=generator)].view_as(digits),
    ]
    quarter = torch.arange(n) % 4
    return torch.stack(kinds)[quarter, torch.arange(n)]


def train_classifier(
    output_dir: str, steps: int = 1500, batch_size: int = 128, seed: int = 0, outlier_weight: float = 0.5
) -> dict:
    """Train on the 4,500 train+val digits (random shifts of up to 2 px), report held-out test accuracy.

    Outlier exposure (Hendrycks et al. 2019, https://arxiv.org/abs/1812.04606): on ``non_digits`` the loss pulls
    the prediction towards uniform, so noise is not "confidently a digit" and cannot pass as a good sample."""
    torch.manual_seed(seed)
    train, test = load_data("mnist", "train+val"), load_data("mnist", "test")
    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    sampler = BatchSampler(len(train), batch_size, seed)
    start = time.perf_counter()
    for step in range(steps):
        idx, g = sampler.indices(step), sampler.generator(step)
        digits = random_shift(train.images[idx], 2, g)
        outliers = non_digits(digits[: batch_size // 2], g)
        logits = model(torch.cat([digits, outliers]))
        digit_loss = F.cross_entropy(logits[: len(digits)], train.labels[idx])
        uniform_loss = -F.log_softmax(logits[len(digits) :], dim=1).mean()  # cross-entropy to the uniform distribution
        loss = digit_loss + outlier_weight * uniform_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(test.images), dim=1)
        noise = torch.softmax(model(non_digits(test.images, torch.Generator().manual_seed(seed + 1))), dim=1)
    report = {
        "test_accuracy": (probs.argmax(1) == test.labels).float().mean().item(),
        "test_confident_fraction": (probs.max(1).values >= 0.9).float().mean().item(),
        "non_digits_confident_fraction": (noise.max(1).values >= 0.9).float().mean().item(),
        "train_steps": steps,
        "cpu_minutes": (time.perf_counter() - start) / 60,
    }
    model.save_pretrained(output_dir, safe_serialization=True)
    (Path(output_dir) / "metrics.json").write_text(json.dumps(report, indent=2))
    return report


def load_classifier(path: str | Path) -> DigitClassifier:
    path = Path(path)
    if not (path / "diffusion_pytorch_model.safetensors").is_file():
        raise FileNotFoundError(f"no classifier weights (diffusion_pytorch_model.safetensors) in {str(path)!r}.")
    return DigitClassifier.from_pretrained(path, use_safetensors=True).eval()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="models/mnist-classifier")
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    print(json.dumps(train_classifier(args.output_dir, args.steps), indent=2))
