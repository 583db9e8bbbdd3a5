"""The bundled default models under models/: every one the app knows loads from safetensors and samples digits,
the folder stays within the Space's 30 MB budget, each carries what its model card needs, and the
class-conditional model still draws the digit asked for, and the unconditional ones (autoguided by the guide they ship)
still draw confident digits of every kind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from pipelines import DDIMScheduler, LatentDDPMPipeline
from pipelines.defaults import DEFAULT_STEPS, app_sampling_kwargs, app_scheduler
from pipelines.digit_classifier import load_classifier
from playground.models import SPECS, VAE_BY_BETA
from training.evaluate import CLASSIFIER_DIR, load_pipeline, score_digits
from training.train import guide_reference, load_recipe

MODELS = Path(__file__).resolve().parents[2] / "models"
BUDGET_BYTES = 30 * 1024 * 1024
LATENT_SHAPE = r"(\d+)×(\d+)×(\d+)"


def test_the_bundled_models_fit_the_30_mb_budget():
    total = sum(f.stat().st_size for f in MODELS.rglob("*") if f.is_file())
    assert total <= BUDGET_BYTES, f"models/ holds {total / 2**20:.1f} MiB"


def test_bundled_weights_are_safetensors_only():
    weights = [f for f in MODELS.rglob("*") if f.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    assert weights and all(f.suffix == ".safetensors" for f in weights), weights


@pytest.mark.parametrize("key", sorted(SPECS))
def test_each_bundled_model_loads_and_samples_digits(key):
    spec = SPECS[key]
    pipe = spec.pipeline_class.from_pretrained(MODELS / spec.folder)
    pipe.set_progress_bar_config(disable=True)
    kwargs = {}
    if hasattr(pipe, "unet"):
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        kwargs = {"num_inference_steps": 3}
        if pipe.unet.config.num_class_embeds:
            kwargs.update(class_labels=[1, 7], guidance_scale=2.0)
    images = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="pt", **kwargs).images
    assert images.shape == (2, 1, 28, 28) and torch.isfinite(images).all()
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("key", [key for key, spec in SPECS.items() if re.search(LATENT_SHAPE, spec.label)])
def test_a_label_naming_a_latent_shape_names_the_bundled_models_own(key):
    unet = json.loads((MODELS / SPECS[key].folder / "unet" / "config.json").read_text())  # the UNet sees the latents
    channels, height, width = map(int, re.search(LATENT_SHAPE, SPECS[key].label).groups())
    assert (channels, height, width) == (unet["in_channels"], unet["sample_size"], unet["sample_size"])


@pytest.mark.parametrize("key", sorted(SPECS))
def test_each_bundled_model_records_its_training_command_and_figures(key):
    folder = MODELS / SPECS[key].folder
    training = json.loads((folder / "training.json").read_text())
    assert training["command"].startswith("python -m training.") and training["cpu_minutes"] > 0
    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert ("confident_fraction" in evaluation) or ("test_neg_elbo_binarized" in evaluation)


def test_the_beta_vaes_are_the_plain_vae_with_another_beta():
    configs = {
        beta: json.loads((MODELS / SPECS[key].folder / "vae" / "config.json").read_text())
        for beta, key in VAE_BY_BETA.items()
    }
    plain = {k: v for k, v in configs[1.0].items() if not k.startswith("_")}
    for beta, config in configs.items():
        assert {k: v for k, v in config.items() if not k.startswith("_")} == plain, beta
        if beta != 1.0:
            assert (
                f"--beta {beta:g}"
                in json.loads((MODELS / SPECS[VAE_BY_BETA[beta]].folder / "training.json").read_text())["command"]
            )


@pytest.mark.slow
def test_the_conditional_model_draws_the_digit_asked_for_with_the_app_defaults():
    pipe = LatentDDPMPipeline.from_pretrained(MODELS / "ddpm-conditional")
    pipe.scheduler = app_scheduler(pipe)
    pipe.set_progress_bar_config(disable=True)
    asked = torch.arange(100) % 10
    images = pipe(
        batch_size=100,
        class_labels=asked,
        **app_sampling_kwargs(pipe),  # the default guidance weight
        num_inference_steps=DEFAULT_STEPS,
        generator=torch.Generator().manual_seed(123),
        output_type="pt",
    ).images
    scores = score_digits(images, asked, classifier=load_classifier(CLASSIFIER_DIR))
    assert scores["class_accuracy"] >= 0.9, scores  # 97.2% on 1,000 samples (evaluation.json); 100 here, so some slack


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["ddpm-pixel", "ddpm-latent"])
def test_the_unconditional_models_draw_confident_digits_of_every_kind_with_the_app_defaults(folder):
    """A smaller run of the card's measurement (1,000 samples in evaluation.json): most samples are digits the
    classifier is sure of, and no digit is missing or dominant."""
    pipe = load_pipeline(MODELS / folder)
    pipe.scheduler = app_scheduler(pipe)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        batch_size=200,
        num_inference_steps=DEFAULT_STEPS,
        generator=torch.Generator().manual_seed(123),
        output_type="pt",
        **app_sampling_kwargs(pipe),  # autoguided in its interval where the model ships a guide
    ).images
    scores = score_digits(images, classifier=load_classifier(CLASSIFIER_DIR))
    recorded = json.loads((MODELS / folder / "evaluation.json").read_text())
    assert scores["confident_fraction"] >= recorded["confident_fraction"] - 0.08, (
        scores,
        recorded["confident_fraction"],
    )
    assert scores["min_digit_fraction"] >= 0.03 and scores["max_digit_fraction"] <= 0.2, scores


@pytest.mark.parametrize("folder", ["ddpm-pixel", "ddpm-latent"])
def test_the_unconditional_models_ship_a_smaller_or_earlier_guide_of_their_own_space(folder):
    pipe = load_pipeline(MODELS / folder)
    main, guide = pipe.unet, pipe.guide_unet
    assert guide is not None and guide.config.num_class_embeds is None
    assert (guide.config.in_channels, guide.config.sample_size) == (main.config.in_channels, main.config.sample_size)
    assert sum(p.numel() for p in guide.parameters()) <= sum(p.numel() for p in main.parameters())
    record = json.loads((MODELS / folder / "training.json").read_text())
    if "recipe" in record:  # trained by its recipe, which names the guide's stage
        stage, _ = guide_reference(str(load_recipe(record["recipe"]).get("guide", "")))  # "<stage>" or "<stage>@<step>"
        assert stage in record["stages"]
    else:
        assert "attach_guide" in record["command"]
