"""The live-training engines of the "Train it yourself" tab: 2-D diffusion (lab.toy2d) and the 2-D-latent
VAE (lab.vae2d), with their shared budget and safetensors files (lab.budget)."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from lab import toy2d, toy2d_targets, vae2d
from lab.budget import Budget
from pipelines import schedules
from training.data import ImageData

ROOT = Path(__file__).resolve().parents[2]

QUICK = {"max_seconds": 60, "report_every": 50, "sample_every": 250, "num_samples": 500}


def run_to_end(steps):
    runs = [None]
    for run in steps:
        runs[0] = run
    return runs[0]


@pytest.fixture(scope="module")
def moons_run():
    settings = toy2d.DiffusionSettings(target="moons", max_steps=1500, **QUICK)
    points = toy2d_targets.target_points("moons", settings.num_points)
    return run_to_end(toy2d.train_diffusion(settings, points))


@pytest.fixture(scope="module")
def mnist_subset():
    train, test = vae2d.mnist_splits()
    return train, ImageData(test.images[::5], test.labels[::5])  # 100 held-out digits, 10 per class


def test_short_diffusion_training_lowers_the_loss_and_brings_samples_to_the_target(moons_run):
    losses = [loss for _, loss in moons_run.losses]
    assert np.mean(losses[-5:]) < losses[0]
    target = moons_run.points[:500]
    prior = toy2d.energy_distance(torch.randn(500, 2, generator=torch.Generator().manual_seed(1)), target)
    steps, distances = zip(*moons_run.distances)
    assert steps == (0, 250, 500, 750, 1000, 1250, 1500)
    assert distances[-1] < 0.25 * prior  # far closer to the moons than the N(0, I) it starts from
    assert distances[-1] < distances[1]  # and still improving after the first snapshot
    assert moons_run.state == "step limit" and moons_run.step == 1500


def test_samples_and_the_animation_share_the_same_reverse_process(moons_run):
    model = toy2d.frozen_model(moons_run)
    trajectory = toy2d.sample(model, moons_run.scheduler, 50, seed=3, keep_trajectory=True)
    assert trajectory.shape == (moons_run.scheduler.config.num_train_timesteps + 1, 50, 2)
    torch.testing.assert_close(trajectory[-1], toy2d.sample(model, moons_run.scheduler, 50, seed=3))


def exact_score(z: torch.Tensor, x: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """∇ ln q(z_t) of the target points x noised to ᾱ_t: a mixture of N(√ᾱ_t·x_i, (1 − ᾱ_t)I), in closed form
    Σ_i w_i(z)·(√ᾱ_t·x_i − z)/(1 − ᾱ_t) with w = softmax_i(−‖z − √ᾱ_t·x_i‖² / (2(1 − ᾱ_t)))."""
    means = alpha_bar.sqrt() * x
    weights = torch.softmax(-torch.cdist(z, means).square() / (2 * (1 - alpha_bar)), dim=1)
    return (weights @ means - z) / (1 - alpha_bar)


@pytest.mark.parametrize("t", [20, 50])
def test_the_learned_field_matches_the_exact_score_of_the_noised_target(moons_run, t):
    scheduler, x = moons_run.scheduler, moons_run.points
    z = toy2d.forward_samples(scheduler, x[:500], t, seed=1)
    learned = toy2d.denoising_direction(toy2d.frozen_model(moons_run), scheduler, z, t)
    reference = exact_score(z, x, scheduler.alphas_cumprod[t])
    assert torch.nn.functional.cosine_similarity(learned, reference, dim=1).mean() > 0.8


def test_the_forward_samples_follow_the_closed_form(moons_run):
    scheduler, x = moons_run.scheduler, moons_run.points
    t = 40
    z = toy2d.forward_samples(scheduler, x, t, seed=0)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    expected = schedules.closed_form_sample(x, noise, scheduler.alphas_cumprod, torch.full((len(x),), t))
    torch.testing.assert_close(z, expected)


def test_the_saved_toy_model_reloads_and_samples_identically(moons_run, tmp_path):
    path = toy2d.save_toy_model(moons_run, tmp_path / "toy.safetensors")
    model, scheduler = toy2d.load_toy_model(path)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}
    assert public(scheduler.config) == public(moons_run.scheduler.config)
    torch.testing.assert_close(scheduler.betas, moons_run.scheduler.betas)
    expected = toy2d.sample(toy2d.frozen_model(moons_run), moons_run.scheduler, 100, seed=7)
    torch.testing.assert_close(toy2d.sample(model, scheduler, 100, seed=7), expected)


def test_a_stop_ends_the_run_before_its_next_step():
    settings = toy2d.DiffusionSettings(max_steps=10_000, **QUICK)
    stop = threading.Event()
    steps = toy2d.train_diffusion(settings, toy2d_targets.target_points("rings", 500), stop)
    seen = []
    for run in steps:
        seen.append((run.step, run.state))
        if run.step == 100:
            stop.set()
    assert seen[-2:] == [(100, "running"), (100, "stopped")]


def test_the_time_budget_ends_a_run_on_its_clock():
    ticks = itertools.count(0.0, 0.1)  # a clock that moves 0.1 s each time it is read
    settings = toy2d.DiffusionSettings(**{**QUICK, "max_seconds": 2.0})
    run = run_to_end(
        toy2d.train_diffusion(settings, toy2d_targets.target_points("gaussians", 500), clock=lambda: next(ticks))
    )
    assert run.state == "time limit" and run.elapsed_s >= 2.0
    assert 0 < run.step < 20  # one clock reading per step at least


def test_the_lab_offers_every_schedule_that_ends_in_noise_and_not_laplace():
    assert set(toy2d_targets.SCHEDULES) == set(schedules.BETA_SCHEDULES) - {"laplace"}
    assert schedules.alphas_cumprod(schedules.make_betas("laplace", 1000))[-1].sqrt() > 0.1  # z_T keeps signal
    with pytest.raises(ValueError, match="beta_schedule must be one of"):
        toy2d.make_scheduler("laplace", 100)


@pytest.mark.parametrize("name", toy2d_targets.SCHEDULES)
def test_every_schedule_and_t_ends_the_forward_process_near_pure_noise(name):
    """√ᾱ_T, what is left of x in z_T, is below 3% for any T, thanks to the β range scaled by 1000/T."""
    for T in (10, 100, 1000):
        assert schedules.alphas_cumprod(toy2d.make_scheduler(name, T).betas)[-1].sqrt() < 0.03
    if name == "linear":  # the unscaled range (10⁻⁴ … 0.02) would keep most of x after 100 steps
        assert schedules.alphas_cumprod(schedules.make_betas(name, 100))[-1].sqrt() > 0.5


def canvas(size: int = 100) -> np.ndarray:
    return np.zeros((size, size, 4), dtype=np.uint8)  # transparent, like an untouched Sketchpad layer


def test_drawn_points_lie_where_the_canvas_is_painted_with_y_up():
    image = canvas()
    image[5:25, 5:25] = (0, 0, 0, 255)  # top left
    image[75:95, 75:95] = (0, 0, 0, 255)  # bottom right
    image[40:60, 40:60] = (255, 255, 255, 255)  # white paint is not a stroke
    points = toy2d_targets.points_from_drawing(image, 400)
    assert ((points[:, 0] < 0) == (points[:, 1] > 0)).all()  # quadrants II and IV only
    assert ((points[:, 0] < 0).float().mean() - 0.5).abs() < 0.1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: toy2d_targets.points_from_drawing(canvas(), 100), "drawing is empty"),
        (lambda: toy2d_targets.points_from_drawing(_dot(), 100), "distinct point"),
        (lambda: toy2d_targets.check_points(torch.zeros(1, 2)), "1 distinct point"),
        (lambda: toy2d_targets.check_points(torch.full((50, 2), math.nan)), "NaN"),
        (lambda: toy2d_targets.target_points("spiral", 10), "target must be one of"),
        (lambda: toy2d.make_scheduler("linear", 5000), "T must lie in [2, 1000]"),
        (lambda: toy2d.make_scheduler("linear", 1), "T must lie in [2, 1000]"),
        (lambda: toy2d.make_scheduler("linear", 12.5), "T must be a whole number"),
        (lambda: toy2d.make_scheduler("exponential", 100), "beta_schedule must be one of"),
        (lambda: _train(max_seconds=1000), "max seconds must lie in [0.1, 60]"),
        (lambda: _train(seed=-1), "seed must lie in"),
        (lambda: vae2d.train_vae(vae2d.VAESettings(beta=-1)), "β must lie in [0, 20]"),
        (lambda: vae2d.train_vae(vae2d.VAESettings(max_seconds=0)), "max seconds must lie"),
    ],
)
def test_bad_input_is_refused_before_training_with_a_clear_message(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()


def _dot() -> np.ndarray:
    image = canvas()
    image[50:52, 50:52] = (0, 0, 0, 255)  # 4 pixels: no distribution to learn
    return image


def _train(**overrides):
    settings = toy2d.DiffusionSettings(**{**QUICK, **overrides})
    return toy2d.train_diffusion(settings, toy2d_targets.target_points("moons", 100))


def test_the_budget_names_the_first_reason_to_stop():
    budget = Budget(max_seconds=60, max_steps=10)
    assert budget.reason_to_stop(9) == "running"
    assert budget.reason_to_stop(10) == "step limit"
    budget.stop.set()
    assert budget.reason_to_stop(10) == "stopped"  # a visitor's Stop wins


def test_energy_distance_is_zero_only_for_the_same_distribution():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 2, generator=generator), torch.randn(400, 2, generator=generator)
    assert toy2d.energy_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert toy2d.energy_distance(a, b) < 0.1 * toy2d.energy_distance(a, b + 1.0)


@pytest.fixture(scope="module")
def vae_run(mnist_subset):
    settings = vae2d.VAESettings(max_steps=60, report_every=10, snapshot_every=30, grid_size=4)
    return run_to_end(vae2d.train_vae(settings, data=mnist_subset))


@pytest.mark.slow  # trains the VAE for 60 steps (shared fixture) after reading MNIST
def test_vae_training_raises_the_heldout_elbo(vae_run):
    steps = [step for step, _ in vae_run.heldout]
    assert steps == [0, 30, 60]
    first, last = vae_run.heldout[0][1], vae_run.heldout[-1][1]
    assert last.elbo > first.elbo + 50  # nats per digit
    for _, terms in vae_run.train + vae_run.heldout:
        assert terms.elbo == pytest.approx(terms.reconstruction - terms.kl, abs=1e-3)  # ELBO = reconstruction − KL


@pytest.mark.slow  # trains the VAE for 60 steps (shared fixture) after reading MNIST
def test_vae_snapshots_hold_the_latent_map_and_the_decoded_grid(vae_run, mnist_subset):
    assert vae_run.latents.shape == (len(mnist_subset[1]), 2)
    torch.testing.assert_close(vae_run.latents, vae_run.model.encode(mnist_subset[1].images).latent_dist.mean)
    assert vae_run.grid.shape == (16, 1, 28, 28)
    axis = vae2d.grid_axis(4)
    corner = vae_run.model.decode(torch.stack([axis[:1], axis[-1:]], dim=1)).sample  # z = (low z₁, high z₂)
    torch.testing.assert_close(vae_run.grid[:1], corner)  # the top-left image


def test_the_decoded_grid_spans_the_central_90_percent_of_the_prior():
    axis = vae2d.grid_axis(5)
    normal = torch.distributions.Normal(0.0, 1.0)
    torch.testing.assert_close(normal.cdf(axis), torch.linspace(0.05, 0.95, 5))


@pytest.mark.slow  # trains the VAE for 60 steps (shared fixture) after reading MNIST
def test_the_saved_vae_reloads_with_the_same_weights(vae_run, tmp_path):
    model = vae2d.load_vae(vae2d.save_vae(vae_run, tmp_path / "vae.safetensors"))
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.decode(z).sample, vae_run.model.decode(z).sample)
    assert model.config.latent_dim == 2


def test_a_fully_painted_huge_canvas_costs_what_a_512_canvas_does():
    """A 2048² canvas painted black (a 21 KB PNG) took +1.2 GB and 6 s when every painted pixel became a point; it is
    pooled to 512² cells first. Measured in a fresh process: the peak resident memory the call adds."""
    script = (
        "import numpy as np\n"
        "from lab.toy2d_targets import points_from_drawing\n"
        "def status(key):\n"
        "    return int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1])\n"
        "canvas = np.zeros((2048, 2048, 4), np.uint8); canvas[..., 3] = 255\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"  # the peak resident size (VmHWM) starts again here
        "before = status('VmRSS')\n"
        "points = points_from_drawing(canvas, 400)\n"
        "assert points.shape == (400, 2)\n"
        "print(status('VmHWM') - before)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    added_mb = int(result.stdout.strip()) / 1024
    assert added_mb < 200, f"the call added {added_mb:.0f} MB"


def test_a_canvas_of_the_page_size_keeps_every_pixel():
    canvas = np.full((280, 280, 4), 255, np.uint8)
    canvas[100:110, 50:60] = (0, 0, 0, 255)
    assert toy2d_targets.painted_cells(canvas).sum() == 100
