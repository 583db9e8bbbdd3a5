"""A small MNIST classifier, trained by this project on the training digits, used only to score generated
digits (confidence, class histogram, conditional accuracy, Fréchet distance of its features). It trains as a
task of the one loop (:mod:`training.loop`), configured like every model (:class:`ClassifierTrainConfig`):

    python -m training.classifier --output_dir runs/classifier --export_dir models/mnist-classifier
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from pipelines.digit_classifier import DigitClassifier, is_confident

from .cli import run
from .config import ClassifierTrainConfig, parse_config
from .data import BatchDraws, as_draws, check_labels, load_data
from .loop import TrainingTask, train


def non_digits(digits: torch.Tensor, randomness: torch.Generator | BatchDraws) -> torch.Tensor:
    """Images that are not digits, one quarter of each kind: uniform noise, sparse salt noise, smooth blobs
    (7×7 noise upsampled) and the given digits with their pixels shuffled (a digit's ink, no shape)."""
    draws = as_draws(randomness, len(digits))
    size = digits.shape[-1]
    kinds = [
        draws.rand(1, size, size),
        (draws.rand(1, size, size) < 0.5 * draws.rand(1, 1, 1)).float(),
        F.interpolate(draws.rand(1, size // 4, size // 4), size=size, mode="bilinear"),
        digits.flatten(1)[:, torch.randperm(size * size, generator=draws.generator)].view_as(digits),
    ]
    kind = draws.global_rows % 4  # by position in the global batch: the same whatever the number of processes
    return torch.stack(kinds)[kind, torch.arange(len(digits), device=digits.device)]


class ClassifierTask(TrainingTask):
    """Cross-entropy on the digits (random shifts of up to augment_shift pixels) plus outlier exposure
    (Hendrycks et al. 2019, https://arxiv.org/abs/1812.04606): the first half of every batch also appears as
    ``non_digits``, on which the loss pulls the prediction towards uniform, so noise is not "confidently a
    digit" and cannot pass as a good sample."""

    def __init__(self, cfg: ClassifierTrainConfig):
        self.config = cfg
        self.data = load_data(cfg.data, cfg.split, cfg.image_size)
        self.test = load_data(cfg.data, "test", cfg.image_size)
        for data in (self.data, self.test):
            check_labels(data, cfg.num_classes, cfg.data)

    def build_model(self) -> DigitClassifier:
        c = self.config
        return DigitClassifier(c.num_classes, c.channels, c.feature_dim, sample_size=self.data.images.shape[-1])

    def loss(self, model, images, labels, draws, step):
        """CE(digits) + outlier_weight · CE(uniform, non-digits), CE(uniform, p) = −(1/K)·Σ_k ln p_k."""
        half = draws.head(draws.global_size // 2)  # this process's rows among the global batch's first half
        outliers = non_digits(images[: len(half.rows)], half)
        logits = model(torch.cat([images, outliers]))
        digit_loss = F.cross_entropy(logits[: len(images)], labels)
        uniform_loss = half.global_mean(-F.log_softmax(logits[len(images) :], dim=1).mean(dim=1))
        return digit_loss + self.config.outlier_weight * uniform_loss

    def evaluate(self, model) -> dict[str, float]:
        """Held-out accuracy, and how often real digits and non-digits get a confident answer."""
        images, labels = self.test.images, self.test.labels
        probs = torch.softmax(model(images.to(model.device)), dim=1).cpu()  # the model may be on a GPU
        noise = non_digits(images, torch.Generator().manual_seed(self.config.seed + 1))
        noise_probs = torch.softmax(model(noise.to(model.device)), dim=1).cpu()
        return {
            "test_accuracy": (probs.argmax(1) == labels).float().mean().item(),
            "test_confident_fraction": is_confident(probs).float().mean().item(),
            "non_digits_confident_fraction": is_confident(noise_probs).float().mean().item(),
        }

    def export(self, model, path: Path) -> None:
        """The classifier folder (config.json, safetensors weights) and its metrics.json."""
        model.save_pretrained(path, safe_serialization=True)
        (Path(path) / "metrics.json").write_text(json.dumps(self.evaluate(model), indent=2))


def train_classifier(
    output_dir: str, steps: int = 1500, batch_size: int = 128, seed: int = 0, outlier_weight: float = 0.5
) -> dict:
    """The bundled classifier's recipe for ``steps`` steps; the run's checkpoints go to a temporary folder, the
    classifier and its metrics.json to ``output_dir``. Returns the metrics."""
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = ClassifierTrainConfig(
            output_dir=run_dir,
            export_dir=str(output_dir),
            max_steps=steps,
            lr_warmup_steps=round(0.3 * steps),  # the one-cycle warm-up: 30% of the steps
            batch_size=batch_size,
            seed=seed,
            outlier_weight=outlier_weight,
            checkpoint_every=0,
        )
        train(ClassifierTask(cfg))
    return json.loads((Path(output_dir) / "metrics.json").read_text())


def main(argv: list[str] | None = None) -> Path:
    return train(ClassifierTask(parse_config(ClassifierTrainConfig, argv)))


if __name__ == "__main__":
    run(main)
