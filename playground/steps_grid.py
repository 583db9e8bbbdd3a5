"""What steps buy: the same seeds sampled with each sampler at several step counts, each cell scored by the
project's classifier (the share of confident digits, as `python -m training.evaluate` counts them)."""

from __future__ import annotations

import math
import time

import gradio as gr
import torch
from PIL import Image

from pipelines import samplers
from pipelines.defaults import DEFAULT_DDIM_ETA, app_sampling_kwargs
from pipelines.deferred import lazy_module

from . import models
from .images import grid
from .validation import check_choice, check_int, check_seed

digit_classifier = lazy_module("pipelines.digit_classifier")

STEP_COUNTS = (5, 10, 25, 50)
MAX_GRID_IMAGES = 16
GRID_HEADERS = ["sampler", "steps", "confident digits (%)", "seconds"]


@torch.no_grad()
def confident_fraction(images: torch.Tensor) -> float:
    """The share of images (N, 1, 28, 28) in [0, 1] the classifier calls a digit with probability ≥ 0.9."""
    with models.unavailable_as_gr_error():
        classifier = models.classifier()
    probs = torch.softmax(classifier(images.float()), dim=1)
    return digit_classifier.is_confident(probs).float().mean().item()


def sample_cell(model: str, sampler: str, steps: int, num_images: int, seed: int) -> torch.Tensor:
    """``num_images`` samples (N, 1, 28, 28) in [0, 1] from seed ``seed``: every cell starts from the same z_T."""
    pipe = models.sampling_pipeline(model, sampler)
    conditional = models.is_conditional(model)
    return pipe(
        batch_size=num_images,
        generator=torch.Generator().manual_seed(seed),
        num_inference_steps=steps,
        eta=DEFAULT_DDIM_ETA,  # used by DDIM only
        class_labels=torch.arange(num_images) % 10 if conditional else None,  # every digit in turn
        **app_sampling_kwargs(pipe),  # the default guidance for the model's kind
        output_type="pt",
    ).images


def steps_quality(model="latent", num_images=8, seed=0):
    """(gallery of cells, one per sampler × step count, captioned with its confident share; the table of them)."""
    model = check_choice("model", model, models.DIFFUSION_MODELS)
    if not models.is_available(model):
        raise gr.Error(models.missing_message(model))
    num_images = check_int("number of images", num_images, 1, MAX_GRID_IMAGES)
    seed = check_seed(seed)
    cells: list[tuple[Image.Image, str]] = []
    rows = []
    for sampler in models.SAMPLERS:
        for steps in STEP_COUNTS:
            steps = min(steps, samplers.step_cap(sampler, models.num_train_timesteps(model)))
            start = time.perf_counter()
            images = sample_cell(model, sampler, steps, num_images, seed)
            seconds = time.perf_counter() - start
            share = confident_fraction(images)
            nrow = math.ceil(math.sqrt(num_images))  # a square-ish cell
            cells.append((grid(images, nrow=nrow, scale=2), f"{sampler} · {steps} steps · {share:.0%} confident"))
            rows.append([sampler, steps, round(100 * share, 1), round(seconds, 2)])
    return cells, rows
