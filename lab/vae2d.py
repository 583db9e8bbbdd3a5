"""A VAE with a 2-D latent, trained live on MNIST: the project's ``VAE`` and its ``elbo`` (the notes'
reconstruction − KL), small enough to learn a recognisable latent map in well under a minute on one CPU.

With two latent dimensions the whole latent space is a plane: the held-out digits' posterior means μ(x) can be
drawn coloured by digit, and the decoder's output over a grid of z shows what each region of the plane means
(Kingma & Welling 2014, https://arxiv.org/abs/1312.6114, fig. 4). β weights the KL as in β-VAE (Higgins et al.
2017, https://openreview.net/forum?id=Sy2fzU9gl): large β collapses q(z | x) onto the prior, β → 0 ignores it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from pipelines.checks import check_number, check_seed
from pipelines.vae import VAE
from training.data import ImageData, load_data

from .budget import Budget, StopReason, live_steps, load_model_file, save_model_file

MAX_BETA = 20.0
GRID_QUANTILES = (0.05, 0.95)  # the decoded grid spans these quantiles of the prior N(0, 1) on each axis


@lru_cache(maxsize=1)
def mnist_splits() -> tuple[ImageData, ImageData]:
    """(train, test) MNIST digits of ``training.data``, read once per process."""
    return load_data("mnist", "train"), load_data("mnist", "test")


@dataclass
class VAESettings:
    """A visitor's choices (β, the time budget) and the training constants."""

    beta: float = 1.0
    max_seconds: float = 60.0
    max_steps: int = 1_000_000
    batch_size: int = 64
    learning_rate: float = 1e-2  # better held-out ELBO and latent map than 3e-3 (docs/speed.md#the-live-lab)
    block_out_channels: tuple[int, ...] = (8, 16)  # small: many steps within the budget (docs/speed.md#the-live-lab)
    report_every: int = 25  # steps between reports of the training ELBO (one yield each)
    snapshot_every: int = 100  # steps between held-out ELBOs, latent maps and decoded grids
    grid_size: int = 12  # the decoded grid is grid_size × grid_size
    seed: int = 0

    def check(self) -> None:
        check_number("β", self.beta, 0.0, MAX_BETA)
        check_number("grid size", self.grid_size, 2, 32, integer=True)
        check_seed(self.seed)


@dataclass
class Terms:
    """Mean ELBO terms in nats per image: elbo = reconstruction − kl."""

    elbo: float
    reconstruction: float
    kl: float


@dataclass
class VAERun:
    """A live run: the page draws it after each yield of :func:`train_vae`."""

    settings: VAESettings
    model: VAE
    step: int = 0
    elapsed_s: float = 0.0
    train: list[tuple[int, Terms]] = field(default_factory=list)  # mean over the steps since the last report
    heldout: list[tuple[int, Terms]] = field(default_factory=list)  # on the test digits, at each snapshot
    latents: torch.Tensor | None = None  # μ(x) of the test digits at the last snapshot, (N, 2)
    labels: torch.Tensor | None = None  # their digits
    grid: torch.Tensor | None = None  # the decoded grid at the last snapshot, (grid_size², 1, 28, 28)
    state: StopReason = "running"
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # held while the weights change


def build_vae(settings: VAESettings) -> VAE:
    """The project's VAE with a 2-D vector latent, a Bernoulli decoder and no normalisation layers (faster)."""
    with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the global RNG alone
        torch.manual_seed(settings.seed)
        return VAE(block_out_channels=settings.block_out_channels, latent_dim=2, norm_type="none")


@torch.no_grad()
def heldout_terms(model: VAE, images: torch.Tensor, seed: int = 0) -> Terms:
    """The ELBO and its two terms averaged over ``images``, with a fixed draw of z (comparable across steps)."""
    out = model.elbo(images, beta=1.0, generator=torch.Generator().manual_seed(seed))
    return Terms(out.elbo.mean().item(), out.reconstruction.mean().item(), out.kl.mean().item())


def grid_axis(grid_size: int) -> torch.Tensor:
    """z values along one axis of the decoded grid: Φ⁻¹ of evenly spaced prior quantiles (Kingma & Welling fig. 4)."""
    quantiles = torch.linspace(*GRID_QUANTILES, grid_size)
    return torch.distributions.Normal(0.0, 1.0).icdf(quantiles)  # z = Φ⁻¹(q)


@torch.no_grad()
def decoded_grid(model: VAE, grid_size: int) -> torch.Tensor:
    """The decoder's mean E[x | z] over a grid_size × grid_size grid of z, rows from high z₂ (top) to low."""
    axis = grid_axis(grid_size)
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    return model.decode(torch.stack([z1.flatten(), z2.flatten()], dim=1)).sample


@torch.no_grad()
def _snapshot(run: VAERun, test: ImageData) -> None:
    model = run.model.eval()
    run.heldout.append((run.step, heldout_terms(model, test.images, run.settings.seed)))
    run.latents = model.encode(test.images).latent_dist.mean
    run.labels = test.labels
    run.grid = decoded_grid(model, run.settings.grid_size)
    model.train()


def train_vae(
    settings: VAESettings,
    stop: threading.Event | None = None,
    data: tuple[ImageData, ImageData] | None = None,
    clock=time.monotonic,
) -> Iterator[VAERun]:
    """Maximise the β-weighted ELBO with Adam on the training digits (``data`` = (train, test), default MNIST),
    yielding the run every ``report_every`` steps (with a held-out snapshot every ``snapshot_every``) and once
    more when the budget ends it (``run.state``); ``max_seconds`` counts on ``clock`` (wall-clock time by default).
    Bad settings raise ValueError here, before the first step."""
    settings.check()
    train, test = data or mnist_splits()
    budget = Budget(settings.max_seconds, settings.max_steps, stop or threading.Event(), clock)  # the clock starts
    return _training_steps(VAERun(settings, build_vae(settings)), budget, train, test)


def _training_steps(run: VAERun, budget: Budget, train: ImageData, test: ImageData) -> Iterator[VAERun]:
    settings = run.settings
    optimizer = torch.optim.Adam(run.model.parameters(), lr=settings.learning_rate)
    generator = torch.Generator().manual_seed(settings.seed)

    def step() -> torch.Tensor:
        batch = train.images[torch.randint(len(train), (settings.batch_size,), generator=generator)]
        with run.lock:
            out = run.model.elbo(batch, beta=settings.beta, generator=generator)
            optimizer.zero_grad(set_to_none=True)
            out.loss.mean().backward()  # −(reconstruction − β·KL)
            optimizer.step()
        return torch.stack([out.elbo.mean(), out.reconstruction.mean(), out.kl.mean()]).detach()

    def report(mean_terms: torch.Tensor) -> None:
        run.train.append((run.step, Terms(*mean_terms.tolist())))

    return live_steps(
        run, budget, step, report, lambda: _snapshot(run, test), settings.report_every, settings.snapshot_every
    )


def save_vae(run: VAERun, path: str | Path) -> Path:
    """The trained VAE as one safetensors file (reload with :func:`load_vae`)."""
    with run.lock:
        return save_model_file(path, run.model)


def load_vae(path: str | Path) -> VAE:
    return load_model_file(path, VAE)[0]
