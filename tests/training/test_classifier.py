"""The scoring classifier trains as a task of the one loop: it reproduces the classifier's original stand-alone
training loop weight for weight (so the bundled recipe's 98.6% carries over), learns on a tiny run through the
common command line, and its legacy entry point still writes a loadable classifier with its metrics."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from pipelines.digit_classifier import DigitClassifier, load_classifier
from training import classifier
from training.classifier import train_classifier
from training.data import BatchSampler, load_data


def original_non_digits(digits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """non_digits as it was before the one loop (git c2b805b), drawing straight from a generator."""
    n = len(digits)
    kinds = [
        torch.rand(n, 1, 28, 28, generator=generator),
        (torch.rand(n, 1, 28, 28, generator=generator) < 0.5 * torch.rand(n, 1, 1, 1, generator=generator)).float(),
        F.interpolate(torch.rand(n, 1, 7, 7, generator=generator), size=28, mode="bilinear"),
        digits.flatten(1)[:, torch.randperm(28 * 28, generator=generator)].view_as(digits),
    ]
    return torch.stack(kinds)[torch.arange(n) % 4, torch.arange(n)]


def original_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, 1, h, w + 2 * max_shift)
    cols = (dx[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, 1, h, w)
    return padded.gather(2, rows).gather(3, cols)


def original_training(steps: int, batch_size: int, seed: int = 0, outlier_weight: float = 0.5) -> DigitClassifier:
    """The classifier's stand-alone loop before it became a task of the one loop (its own AdamW, OneCycleLR)."""
    torch.manual_seed(seed)
    data = load_data("mnist", "train+val")
    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    sampler = BatchSampler(len(data), batch_size, seed)
    for step in range(steps):
        idx, generator = sampler.indices(step), torch.Generator().manual_seed(seed * 1_000_003 + step)
        digits = original_shift(data.images[idx], 2, generator)
        outliers = original_non_digits(digits[: batch_size // 2], generator)
        logits = model(torch.cat([digits, outliers]))
        digit_loss = F.cross_entropy(logits[: len(digits)], data.labels[idx])
        uniform_loss = -F.log_softmax(logits[len(digits) :], dim=1).mean()
        loss = digit_loss + outlier_weight * uniform_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model


@pytest.mark.slow
def test_classifier_task_reproduces_the_original_standalone_training(tmp_path):
    steps, batch = 10, 32  # 30% of 10 steps is a whole number of warm-up steps, as 30% of the recipe's 1,500
    reference = original_training(steps, batch).state_dict()
    report = train_classifier(str(tmp_path / "clf"), steps=steps, batch_size=batch)
    trained = load_file(tmp_path / "clf" / "diffusion_pytorch_model.safetensors")
    assert trained.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(trained[key], value), f"{key} differs from the original loop's"
    assert json.loads((tmp_path / "clf" / "metrics.json").read_text()) == report


def test_classifier_task_learns_on_a_tiny_run_through_the_common_command_line(tmp_path):
    out = tmp_path / "run"
    args = ["--output_dir", str(out), "--data", "sklearn-digits", "--image_size", "8", "--batch_size", "32"]
    args += ["--max_steps", "60", "--lr_warmup_steps", "10", "--learning_rate", "1e-2", "--augment_shift", "0"]
    args += ["--channels", "16", "--feature_dim", "32"]
    args += ["--log_every", "1", "--checkpoint_every", "30", "--num_threads", "1"]
    model_dir = classifier.main(args)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5  # ten digits: chance is 0.1
    assert [p.name for p in sorted(out.glob("checkpoint-*"))] == ["checkpoint-30", "checkpoint-60"]
    model = load_classifier(model_dir)
    test = load_data("sklearn-digits", "test", 8)
    with torch.no_grad():
        accuracy = (model(test.images).argmax(1) == test.labels).float().mean().item()
    assert accuracy == pytest.approx(metrics["test_accuracy"])
    assert json.loads((out / "train_config.json").read_text())["channels"] == 16


def test_classifier_refuses_unlabelled_data(tmp_path):
    from PIL import Image

    for i in range(40):
        Image.new("L", (8, 8), color=i).save(tmp_path / f"{i}.png")
    with pytest.raises(ValueError, match="labelled 0..9"):
        classifier.main(["--output_dir", str(tmp_path / "run"), "--data", str(tmp_path), "--image_size", "8"])
