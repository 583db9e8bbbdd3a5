"""The bundled models: found under one local folder, loaded lazily once, shared by every request.

The folder is ``$PLAYGROUND_MODELS_DIR`` (default ``models`` next to app.py). Only the fixed sub-folders below
are ever loaded: nothing from the page names a path or a repo id.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

import torch

import pipelines  # its classes are imported on first use (pipelines/__init__.py): the page builds without diffusers
from data.mnist import load_mnist
from pipelines import deferred, precision, samplers
from pipelines.defaults import app_scheduler
from pipelines.deferred import lazy_module

digit_classifier = lazy_module("pipelines.digit_classifier")

ROOT = Path(__file__).resolve().parents[1]


ModelKind = Literal["ddpm", "latent-ddpm", "vae"]


@dataclass(frozen=True)
class ModelSpec:
    """One bundled model: its key on the page, its folder under the models directory, how to load it, and what it is.

    ``conditional`` marks the class-conditional DDPM (digit and guidance inputs); ``beta`` is the KL weight a VAE was
    trained with (the VAE tab offers one choice per bundled β).
    """

    key: str
    folder: str
    pipeline_name: str  # a class of pipelines/__init__.py
    label: str
    kind: ModelKind
    conditional: bool = False
    beta: float | None = None
    # sampled under bf16 autocast on a CPU with native bf16 (pipelines.precision.cpu_bf16_choice): the pixel UNet runs
    # faster so, the small latent ones slower (docs/speed.md#precision)
    bf16_on_cpu: bool = False

    @property
    def pipeline_class(self) -> type:
        return getattr(pipelines, self.pipeline_name)


# The bundled models, one entry each: a new model is one line here (plus its folder under models/).
SPECS = {
    spec.key: spec
    for spec in (
        ModelSpec("pixel", "ddpm-pixel", "DDPMPipeline", "Pixel DDPM (28×28)", "ddpm", bf16_on_cpu=True),
        ModelSpec("latent", "ddpm-latent", "LatentDDPMPipeline", "Latent DDPM (VAE latents 2×7×7)", "latent-ddpm"),
        ModelSpec(
            "conditional",
            "ddpm-conditional",
            "LatentDDPMPipeline",
            "Class-conditional latent DDPM",
            "latent-ddpm",
            conditional=True,
        ),
        ModelSpec("vae", "vae", "VAEPipeline", "VAE (16-d latent)", "vae", beta=1.0),
        ModelSpec("vae-beta0.25", "vae-beta0.25", "VAEPipeline", "β-VAE with β = 0.25 (16-d latent)", "vae", beta=0.25),
        ModelSpec("vae-beta4", "vae-beta4", "VAEPipeline", "β-VAE with β = 4 (16-d latent)", "vae", beta=4.0),
    )
}
DIFFUSION_MODELS = tuple(key for key, spec in SPECS.items() if spec.kind != "vae")  # the Sample tab's choices
VAE_BY_BETA = {spec.beta: key for key, spec in SPECS.items() if spec.kind == "vae"}  # trained β → its key
CLASSIFIER_FOLDER = "mnist-classifier"  # the scoring classifier (pipelines/digit_classifier.py), not a pipeline
_lock = threading.Lock()

# The samplers the page offers, by label: pipelines/samplers.py's table (its default and largest step counts too)
# is the one place every tab reads them from (the Sample tab, the steps-vs-quality grid, the walks).
SAMPLERS = tuple(sampler.label for sampler in samplers.SAMPLERS.values())
# RePaint re-noises between steps through the scheduler's own ᾱ_t: only our DDPM and DDIM schedulers inpaint.
INPAINT_SAMPLERS = ("DDIM", "DDPM")


def default_steps(sampler: str) -> int:
    """The steps a sampler starts with on the page."""
    return samplers.resolve_sampler(sampler).default_steps


def max_steps(sampler: str) -> int:
    """The most steps the page offers a sampler (pipelines.samplers.step_cap caps it by the model's training steps)."""
    return samplers.resolve_sampler(sampler).max_steps


class ModelUnavailable(RuntimeError):
    """A bundled model's folder is missing or cannot be loaded."""


@contextmanager
def unavailable_as_gr_error():
    """Inside an event handler: a ModelUnavailable raised in the block reaches the page as a gr.Error with its
    message (which names the model's folder, never where it lies on the server)."""
    try:
        yield
    except ModelUnavailable as error:
        import gradio as gr  # here: this registry is read without gradio (tests, benchmarks)

        raise gr.Error(str(error)) from None


def models_dir() -> Path:
    path = Path(os.environ.get("PLAYGROUND_MODELS_DIR", "models"))
    return path if path.is_absolute() else ROOT / path


def model_folder(key: str) -> Path:
    return models_dir() / SPECS[key].folder


def is_available(key: str) -> bool:
    return (model_folder(key) / "model_index.json").is_file()


def bundled_betas() -> list[float]:
    """The β values of the VAEs present, smallest first (β = 1 is the plain VAE)."""
    return [beta for beta, key in sorted(VAE_BY_BETA.items()) if is_available(key)]


def missing_message(key: str) -> str:
    """Shown on the page: names the folder inside the models directory, never where that lies on the server."""
    spec = SPECS[key]
    return (
        f"The {spec.label} is not bundled in this copy of the playground: the folder `{spec.folder}` of the "
        "models directory is missing. Train it (see README) or pick another model."
    )


@cache
def _load(key: str):
    spec = SPECS[key]
    pipe = spec.pipeline_class.from_pretrained(str(model_folder(key)))
    pipe.set_progress_bar_config(disable=True)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval().requires_grad_(False)
    return pipe


def load(key: str):
    """The loaded pipeline for ``key`` (cached); ModelUnavailable with a clear message otherwise."""
    if key not in SPECS:
        raise ModelUnavailable(f"unknown model {key!r}; choose one of {list(SPECS)}.")
    if not is_available(key):
        raise ModelUnavailable(missing_message(key))
    with _lock, deferred.IMPORT_LOCK:  # one load at a time, importing alone (pipelines/deferred.py); then cached
        try:
            return _load(key)
        except (OSError, ValueError) as error:
            raise ModelUnavailable(
                f"The {SPECS[key].label} (folder `{SPECS[key].folder}`) could not be loaded: {error}"
            ) from None


@cache
def app_precision(key: str) -> str:
    """The precision the app samples model ``key`` in: bf16 autocast where the model opts in (``bf16_on_cpu``) and the
    CPU's feature flags show native bf16, else the loaded dtype; decided from flags alone, and printed once."""
    choice = precision.cpu_bf16_choice()
    chosen = choice.precision if SPECS[key].bf16_on_cpu else "loaded"
    why = choice.reason if SPECS[key].bf16_on_cpu else "the model samples in its loaded dtype (fp32) on every CPU"
    print(f"Sampling the {SPECS[key].label} with precision={chosen!r}: {why}.", flush=True)
    return chosen


def sampling_pipeline(key: str, sampler: str, **scheduler_overrides):
    """A per-request pipeline sharing the cached networks and the model's stored sampling settings, with its own
    scheduler of kind ``sampler`` (a fresh one per request: schedulers hold per-call state), made as the app samples
    (pipelines.defaults.app_scheduler), in the app's precision for the model (:func:`app_precision`)."""
    base = load(key)
    scheduler = app_scheduler(base, sampler, **scheduler_overrides)
    shared = {
        "unet": base.unet,
        "scheduler": scheduler,
        "guide_unet": base.guide_unet,
        "sampling": base.config.sampling,
    }
    if isinstance(base, pipelines.LatentDDPMPipeline):
        pipe = pipelines.LatentDDPMPipeline(vae=base.vae, **shared)
    else:
        pipe = pipelines.DDPMPipeline(**shared)
    pipe.default_precision = app_precision(key)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inpaint_pipeline(sampler: str) -> pipelines.DDPMInpaintPipeline:
    base = load("pixel")
    scheduler = app_scheduler(base, sampler)
    pipe = pipelines.DDPMInpaintPipeline(unet=base.unet, scheduler=scheduler, guide_unet=base.guide_unet)
    pipe.default_precision = app_precision("pixel")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def num_train_timesteps(key: str) -> int:
    """The model's T, read from its scheduler's config (nothing loaded: checking a request's steps must not load a
    model)."""
    config = json.loads((model_folder(key) / "scheduler" / "scheduler_config.json").read_text())
    return int(config.get("num_train_timesteps", 1000))


def has_guide(key: str) -> bool:
    """Whether the bundled model ships a guide UNet for autoguidance (read from its folder, nothing loaded)."""
    return (model_folder(key) / "guide_unet" / "config.json").is_file()


def is_conditional(key: str) -> bool:
    return SPECS[key].conditional


@cache
def classifier():
    """The project's MNIST classifier (models/mnist-classifier), which scores generated digits; loaded once."""
    folder = models_dir() / CLASSIFIER_FOLDER
    try:
        return digit_classifier.load_classifier(folder).requires_grad_(False)
    except (OSError, ValueError) as error:  # FileNotFoundError is an OSError
        raise ModelUnavailable(f"The scoring classifier at `{folder}` could not be loaded: {error}") from None


@lru_cache(maxsize=1)
def test_digits():
    """The held-out MNIST test split (500 digits, 50 per class), loaded once."""
    return load_mnist("test")


_latent_cache: dict = {}


def vae_test_embedding():
    """(means (N, D), labels (N,), PCA centre (D,), first two directions (2, D)) of the VAE on the test digits."""
    pipe = load("vae")
    cached = _latent_cache.get(id(pipe))
    if cached is None:
        data = test_digits()
        means = pipe.encode_means(data.images).flatten(1).float()
        center, directions, _ = pipelines.principal_directions(means, num=2)
        cached = (means, data.labels, center, directions)
        _latent_cache[id(pipe)] = cached
    return cached


def warm_up() -> list[str]:
    """Load what the page's first results need: every bundled model present, the scoring classifier, the test digits
    and the VAE's latent map (app.py calls this from a thread once the server is up). Returns the models loaded."""
    keys = [key for key in SPECS if is_available(key)]
    for key in keys:
        load(key)
    test_digits()
    if "vae" in keys:
        vae_test_embedding()
    if (models_dir() / CLASSIFIER_FOLDER / "config.json").is_file():
        classifier()
    return keys
