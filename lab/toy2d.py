"""Diffusion in two dimensions: toy target distributions, a small MLP ε-predictor, and a live training loop.

The page's "Train it yourself" lab trains this in seconds on a CPU (after Diffusion Explorer, Helbling & Chau
2025, https://arxiv.org/abs/2507.01178). The math is the project's own: the forward process is
``DDPMScheduler.add_noise`` (z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε), the target is ``schedules.diffusion_loss_target``
(the notes' ε loss) and sampling is ``DDPMScheduler.step``. Every target is standardised (zero mean, unit
overall standard deviation), the scale the N(0, I) prior of the diffusion matches.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from diffusers.training_utils import EMAModel
from torch import nn

from pipelines import schedules
from pipelines.checks import check_number, check_seed
from pipelines.scheduling_ddpm import DDPMScheduler

from .budget import Budget, StopReason, live_steps, load_model_file, save_model_file
from .toy2d_targets import CLIP_RANGE, MAX_T, MIN_T, REFERENCE_T, SCHEDULES, check_points, scaled_beta_range


def make_scheduler(beta_schedule: str, num_train_timesteps: int) -> DDPMScheduler:
    """Our DDPMScheduler for a 2-D model: the named β schedule over T steps, x̂_0 clipped to ±CLIP_RANGE."""
    if beta_schedule not in SCHEDULES:
        raise ValueError(f"beta_schedule must be one of {list(SCHEDULES)}, got {beta_schedule!r}.")
    num_train_timesteps = check_number("T", num_train_timesteps, MIN_T, MAX_T, integer=True)
    beta_start, beta_end = scaled_beta_range(num_train_timesteps)
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_start=beta_start,
        beta_end=beta_end,
        beta_schedule=beta_schedule,
        clip_sample=True,  # x̂_0 clipped to ±CLIP_RANGE, like DDPM clips images to [−1, 1]: an untrained model's
        clip_sample_range=CLIP_RANGE,  # samples then stay in view instead of flying off to ±100
    )


class EpsilonMLP(ModelMixin, ConfigMixin):
    """g_θ(z_t, t): an MLP on [z_t, Fourier features of z_t, sinusoidal embedding of t] → ε̂ (2 numbers).

    t is embedded as t·1000/T (Vaswani et al. 2017 sinusoids, as in Ho et al. 2020), so the embedding's
    frequencies cover the same range for every T. The Fourier features sin/cos(2^k·π·z) (Tancik et al. 2020,
    https://arxiv.org/abs/2006.10739) let a small MLP learn thin shapes (rings) that it otherwise blurs.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 100,
        hidden: int = 128,
        num_layers: int = 3,
        time_dim: int = 32,
        num_frequencies: int = 6,
    ):
        super().__init__()
        widths = [2 + 4 * num_frequencies + time_dim] + [hidden] * num_layers
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 2))
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(num_frequencies), persistent=False)

    def forward(self, sample: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        timesteps = torch.as_tensor(timesteps).expand(len(sample))
        scaled = timesteps.float() * (REFERENCE_T / self.config.num_train_timesteps)
        embedding = get_timestep_embedding(scaled, self.config.time_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        angles = (sample[:, :, None] * self.frequencies).flatten(1)  # 2^k·π·z for each coordinate and k
        return self.net(torch.cat([sample, angles.sin(), angles.cos(), embedding], dim=1))


def epsilon_loss(
    model: EpsilonMLP, scheduler: DDPMScheduler, x: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The notes' loss ‖g_t[√ᾱ_t·x + √(1 − ᾱ_t)·ε] − ε‖² at t drawn uniformly, averaged over the batch."""
    noise = torch.randn(x.shape, generator=generator)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x),), generator=generator)
    noisy = scheduler.add_noise(x, noise, t)  # z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε
    target = schedules.diffusion_loss_target(x, noise, scheduler.alphas_cumprod, t, "epsilon")
    return F.mse_loss(model(noisy, t), target)


@torch.no_grad()
def sample(
    model: EpsilonMLP,
    scheduler: DDPMScheduler,
    n: int,
    seed: int = 0,
    num_inference_steps: int | None = None,
    keep_trajectory: bool = False,
) -> torch.Tensor:
    """Ancestral sampling from z_T ~ N(0, I) with DDPMScheduler.step, over all T steps or ``num_inference_steps``.

    Returns the samples (n, 2), or with ``keep_trajectory`` every z_t from z_T to z_0: (steps + 1, n, 2).
    """
    scheduler = DDPMScheduler.from_config(scheduler.config)  # set_timesteps below must not touch a shared one
    scheduler.set_timesteps(num_inference_steps or scheduler.config.num_train_timesteps)
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=generator)
    trajectory = [z]
    for t in scheduler.timesteps:
        z = scheduler.step(model(z, t), t, z, generator=generator).prev_sample  # z_{t−1} ~ p(z_{t−1} | z_t)
        if keep_trajectory:
            trajectory.append(z)
    return torch.stack(trajectory) if keep_trajectory else z


@torch.no_grad()
def forward_samples(scheduler: DDPMScheduler, x: torch.Tensor, t: int, seed: int = 0) -> torch.Tensor:
    """A draw of q(z_t | x) for every point x: the forward process at step t (0-based, t = 0 is z_1)."""
    if not 0 <= t < scheduler.config.num_train_timesteps:
        raise ValueError(f"t must lie in [1, {scheduler.config.num_train_timesteps}], got {t + 1}.")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return scheduler.add_noise(x, noise, torch.full((len(x),), t))  # z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε


@torch.no_grad()
def denoising_direction(model: EpsilonMLP, scheduler: DDPMScheduler, z: torch.Tensor, t: int) -> torch.Tensor:
    """The learned score s_θ(z, t) = −ε̂(z, t)/√(1 − ᾱ_t): the direction that denoises z_t (Song et al. 2021,
    https://arxiv.org/abs/2011.13456), the arrows of the vector field."""
    alpha_bar = scheduler.alphas_cumprod[t]
    return -model(z, torch.tensor(t)) / (1 - alpha_bar).sqrt()  # s_θ = −ε̂ / √(1 − ᾱ_t)


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Energy distance 2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ between two point sets (Székely & Rizzo 2013,
    https://doi.org/10.1016/j.jspi.2013.03.018): 0 only for equal distributions."""
    return (2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean()).item()


@dataclass
class DiffusionSettings:
    """A visitor's choices (``target``, ``beta_schedule``, T, the time budget) and the training constants."""

    target: str = "moons"  # its name (the points come separately); names the download file
    beta_schedule: str = "linear"
    num_train_timesteps: int = 100
    max_seconds: float = 20.0
    max_steps: int = 1_000_000
    batch_size: int = 256
    learning_rate: float = 3e-3
    ema_decay: float = 0.995  # the sampled model is the exponential moving average of the weights
    num_points: int = 2000  # the target sample the model trains on
    num_samples: int = 1000  # points drawn from the model at each snapshot
    snapshot_steps: int = 100  # sampling steps of a snapshot (all T when T is smaller); the final animation uses all T
    report_every: int = 100  # steps between loss reports (one yield each)
    sample_every: int = 500  # steps between snapshots of samples
    seed: int = 0

    def check(self) -> None:
        check_seed(self.seed)


@dataclass
class DiffusionRun:
    """A live run: the page draws it after each yield of :func:`train_diffusion`."""

    settings: DiffusionSettings
    points: torch.Tensor  # the standardised target sample, (num_points, 2)
    scheduler: DDPMScheduler
    model: EpsilonMLP  # the weights the optimiser moves
    averaged: EpsilonMLP  # their moving average at the last snapshot: what samples are drawn with
    step: int = 0
    elapsed_s: float = 0.0
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss since the last report)
    distances: list[tuple[int, float]] = field(default_factory=list)  # (step, energy distance samples ↔ target)
    samples: torch.Tensor | None = None  # the last snapshot
    state: StopReason = "running"
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # held while ``averaged`` changes


def frozen_model(run: DiffusionRun) -> EpsilonMLP:
    """A copy of the averaged model, safe to sample from while the run may still be training."""
    with run.lock:
        return copy.deepcopy(run.averaged)


def new_run(settings: DiffusionSettings, points: torch.Tensor) -> DiffusionRun:
    """Check the settings and the target ``points``; build the scheduler and a freshly initialised model."""
    settings.check()
    scheduler = make_scheduler(settings.beta_schedule, settings.num_train_timesteps)
    points = check_points(points, "target points")
    with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the global RNG alone
        torch.manual_seed(settings.seed)
        model = EpsilonMLP(num_train_timesteps=scheduler.config.num_train_timesteps)
    averaged = copy.deepcopy(model).eval().requires_grad_(False)
    return DiffusionRun(settings, points.float(), scheduler, model, averaged)


def _snapshot(run: DiffusionRun, ema: EMAModel) -> None:
    """Copy the averaged weights into ``run.averaged``, sample from them, and record the distance to the target."""
    with run.lock:
        ema.copy_to(run.averaged.parameters())
    s = run.settings
    steps = min(s.snapshot_steps, run.scheduler.config.num_train_timesteps)
    run.samples = sample(run.averaged, run.scheduler, s.num_samples, seed=s.seed, num_inference_steps=steps)
    run.distances.append((run.step, energy_distance(run.samples, run.points[: s.num_samples])))


def train_diffusion(
    settings: DiffusionSettings, points: torch.Tensor, stop: threading.Event | None = None, clock=time.monotonic
) -> Iterator[DiffusionRun]:
    """Train ``EpsilonMLP`` on ``points`` with Adam on the notes' ε loss, yielding the run every ``report_every``
    steps (with fresh samples every ``sample_every``) and once more when the budget ends it (``run.state``).

    ``max_seconds`` counts on ``clock`` (wall-clock time by default). Bad settings or points raise ValueError
    here, before the first step."""
    run = new_run(settings, points)
    budget = Budget(settings.max_seconds, settings.max_steps, stop or threading.Event(), clock)
    return _training_steps(run, budget)


def _training_steps(run: DiffusionRun, budget: Budget) -> Iterator[DiffusionRun]:
    settings = run.settings
    optimizer = torch.optim.Adam(run.model.parameters(), lr=settings.learning_rate)
    ema = EMAModel(run.model.parameters(), decay=settings.ema_decay, use_ema_warmup=True)
    generator = torch.Generator().manual_seed(settings.seed)

    def step() -> torch.Tensor:
        batch = run.points[torch.randint(len(run.points), (settings.batch_size,), generator=generator)]
        loss = epsilon_loss(run.model, run.scheduler, batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.step(run.model.parameters())
        return loss.detach()

    def report(mean_loss: torch.Tensor) -> None:
        run.losses.append((run.step, mean_loss.item()))

    return live_steps(
        run, budget, step, report, lambda: _snapshot(run, ema), settings.report_every, settings.sample_every
    )


def save_toy_model(run: DiffusionRun, path: str | Path) -> Path:
    """The averaged ε-predictor and its scheduler as one safetensors file (reload with :func:`load_toy_model`)."""
    return save_model_file(path, frozen_model(run), scheduler=run.scheduler)


def load_toy_model(path: str | Path) -> tuple[EpsilonMLP, DDPMScheduler]:
    model, configs = load_model_file(path, EpsilonMLP)
    return model, DDPMScheduler.from_config(configs["scheduler"])
