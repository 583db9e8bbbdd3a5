"""training.evaluate on known inputs: classifier scores of real digits and of noise, the Fréchet distance against
its closed form, the DDPM bound in bits/dim against a hand computation, and evaluate_folder / the CLI on a tiny
pixel DDPM and on the bundled VAE."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import ANY

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel

from pipelines import DDPMPipeline, DDPMScheduler, VAEPipeline
from pipelines.defaults import DEFAULT_GUIDANCE_INTERVAL, DEFAULT_SAMPLER
from pipelines.digit_classifier import load_classifier
from pipelines.samplers import stored_sampling
from tests.support.models import tiny_unet
from training import evaluate
from training.data import ImageData, load_data
from training.evaluate import ddpm_bits_per_dim, evaluate_folder, frechet_distance, score_digits, vae_bounds

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def classifier():
    return load_classifier(evaluate.CLASSIFIER_DIR)


@pytest.fixture(scope="module")
def test_digits() -> ImageData:
    return load_data("mnist", "test")


@pytest.fixture(scope="module")
def real_scores(test_digits, classifier) -> dict:
    return score_digits(test_digits.images, test_digits.labels, classifier=classifier)


@pytest.fixture(scope="module")
def noise_scores(classifier) -> dict:
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return score_digits(noise, classifier=classifier)


@pytest.fixture(scope="module")
def tiny_ddpm_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-ddpm")
    DDPMPipeline(tiny_unet(sample_size=28), DDPMScheduler(num_train_timesteps=50), None).save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------------------------- score_digits


def test_real_held_out_digits_score_as_confident_balanced_and_correct(real_scores):
    assert real_scores["num_samples"] == 500
    assert real_scores["confident_fraction"] >= 0.9
    fractions = real_scores["digit_fractions"]
    assert len(fractions) == 10 and math.isclose(sum(fractions), 1, abs_tol=1e-3)
    assert all(0.07 <= f <= 0.13 for f in fractions), fractions
    assert real_scores["min_digit_fraction"] == pytest.approx(min(fractions), abs=1e-4)
    assert real_scores["max_digit_fraction"] == pytest.approx(max(fractions), abs=1e-4)
    assert real_scores["class_accuracy"] >= 0.95


def test_class_accuracy_is_reported_only_when_classes_were_requested(test_digits, classifier):
    scores = score_digits(test_digits.images[:50], classifier=classifier)
    assert "class_accuracy" not in scores
    wrong = (test_digits.labels[:50] + 1) % 10
    assert score_digits(test_digits.images[:50], wrong, classifier=classifier)["class_accuracy"] < 0.1


def test_held_out_digits_are_frechet_close_to_the_reference_and_noise_is_far(real_scores, noise_scores, classifier):
    # score_digits compares against the held-out test digits themselves: distance ≈ 0
    assert abs(real_scores["frechet_distance"]) < 1e-3
    # other real digits (training split) are close; uniform noise is far away
    train = load_data("mnist", "train").images[:1000]
    train_fd = score_digits(train, classifier=classifier)["frechet_distance"]
    assert 0 < train_fd < 0.1 * noise_scores["frechet_distance"], (train_fd, noise_scores["frechet_distance"])


def test_noise_collapses_the_digit_histogram(noise_scores):
    assert math.isclose(sum(noise_scores["digit_fractions"]), 1, abs_tol=1e-3)
    assert noise_scores["max_digit_fraction"] > 0.5  # noise is not spread like real digits (≈ 0.1 each)
    assert noise_scores["min_digit_fraction"] < 0.05


def test_uniform_noise_is_rarely_classified_confidently(noise_scores):
    assert noise_scores["confident_fraction"] < 0.1


@pytest.mark.parametrize("kind", ["gaussian", "blank", "gray"])
def test_non_digits_the_classifier_never_saw_are_not_confident_digits(classifier, kind):
    g = torch.Generator().manual_seed(1)
    images = {
        "gaussian": (0.5 + 0.3 * torch.randn(200, 1, 28, 28, generator=g)).clamp(0, 1),
        "blank": torch.zeros(200, 1, 28, 28),
        "gray": torch.full((200, 1, 28, 28), 0.5),
    }[kind]
    assert score_digits(images, classifier=classifier)["confident_fraction"] < 0.1


# -------------------------------------------------------------------------------------------- frechet_distance


def exact_gaussian_sample(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> np.ndarray:
    """n points whose sample mean and (unbiased) sample covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whitened: sample covariance I
    return z @ np.linalg.cholesky(cov).T + mean


def test_frechet_distance_of_a_feature_set_with_itself_is_zero():
    a = np.random.default_rng(0).standard_normal((300, 16)) @ np.random.default_rng(1).standard_normal((16, 16))
    assert abs(frechet_distance(a, a)) < 1e-6 * np.trace(np.cov(a, rowvar=False))


def test_frechet_distance_with_identity_covariances_is_the_squared_mean_difference():
    d = np.array([3.0, -1.0, 0.5, 2.0])
    a = exact_gaussian_sample(500, np.zeros(4), np.eye(4), seed=0)
    b = exact_gaussian_sample(500, d, np.eye(4), seed=1)
    assert frechet_distance(a, b) == pytest.approx(float(d @ d), abs=1e-6)
    assert frechet_distance(b, a) == pytest.approx(float(d @ d), abs=1e-6)


def test_frechet_distance_with_diagonal_covariances_matches_the_closed_form():
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu_a, mu_b = np.array([1.0, 0.0, -2.0]), np.array([0.0, 1.0, -2.0])
    a = exact_gaussian_sample(400, mu_a, np.diag(var_a), seed=2)
    b = exact_gaussian_sample(400, mu_b, np.diag(var_b), seed=3)
    expected = ((mu_a - mu_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()  # 2 + (4 + 1 + 0)
    assert frechet_distance(a, b) == pytest.approx(expected, abs=1e-6)


def test_frechet_distance_with_proportional_full_covariances_matches_the_closed_form():
    m = np.random.default_rng(4).standard_normal((5, 5))
    cov, c = m @ m.T + 0.5 * np.eye(5), 4.0
    a = exact_gaussian_sample(600, np.zeros(5), cov, seed=5)
    b = exact_gaussian_sample(600, np.ones(5), c * cov, seed=6)
    expected = 5.0 + (1 - math.sqrt(c)) ** 2 * np.trace(cov)  # Tr(Σ + cΣ − 2√c Σ) = (1 − √c)² Tr Σ
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------------------------------ ddpm_bits_per_dim


class OracleUNet:
    """A stand-in UNet with prediction_type="sample" that returns the true clean images, whatever z_t is."""

    config = SimpleNamespace(num_class_embeds=None)

    def __init__(self, clean: torch.Tensor):
        self.clean = clean

    def __call__(self, z, t, class_labels=None):
        assert z.shape == self.clean.shape and class_labels is None
        return SimpleNamespace(sample=self.clean.clone())


def test_bits_per_dim_of_a_one_step_oracle_matches_a_hand_computation(test_digits):
    """With T = 1 the bound is exactly L_T + L_0: no Monte-Carlo error, so the estimate must equal the formula."""
    n = 20
    x = test_digits.images[:n].double() * 2 - 1
    sched = DDPMScheduler(num_train_timesteps=1, prediction_type="sample")
    pipe = SimpleNamespace(unet=OracleUNet(x.float()), scheduler=sched)
    result = ddpm_bits_per_dim(pipe, num_images=n, t_per_image=2)

    beta, alpha_bar = float(sched.betas[0]), float(sched.alphas_cumprod[0])  # the schedule's float32 values
    xs = x.numpy()
    # L_T = KL(N(√ᾱ x, 1 − ᾱ) ‖ N(0, 1)) per pixel
    l_T = 0.5 * (-math.log(1 - alpha_bar) + (1 - alpha_bar) + alpha_bar * xs**2 - 1)
    # L_0 = −ln P(x's 8-bit bin) under N(x, β): the bin is [x − 1/255, x + 1/255], open-ended at ±1
    from scipy.stats import norm

    h = (1 / 255) / math.sqrt(beta)
    inner = -math.log(norm.cdf(h) - norm.cdf(-h))
    edge = -math.log(norm.cdf(h))
    l_0 = np.where(np.abs(xs) > 0.999, edge, inner)
    nats = (l_T + l_0).reshape(n, -1).sum(1)
    bpd = nats / (xs[0].size * math.log(2))
    assert result["test_bits_per_dim"] == pytest.approx(bpd.mean(), rel=1e-5)
    assert result["test_bits_per_dim_stderr"] == pytest.approx(bpd.std(ddof=1) / math.sqrt(n), rel=1e-4)
    assert result["bpd_images"] == n and result["bpd_t_per_image"] == 2


def test_bits_per_dim_is_lower_for_the_oracle_than_for_a_model_that_predicts_nothing(test_digits):
    n = 30
    x = test_digits.images[:n] * 2 - 1
    sched = DDPMScheduler(num_train_timesteps=50, prediction_type="sample")
    oracle = ddpm_bits_per_dim(SimpleNamespace(unet=OracleUNet(x), scheduler=sched), num_images=n)
    blank = ddpm_bits_per_dim(SimpleNamespace(unet=OracleUNet(torch.zeros_like(x)), scheduler=sched), num_images=n)
    assert 0 < oracle["test_bits_per_dim"] < blank["test_bits_per_dim"]


def test_bits_per_dim_is_reproducible_for_a_seed(tiny_ddpm_folder):
    pipe = DDPMPipeline.from_pretrained(tiny_ddpm_folder)
    a, b = ddpm_bits_per_dim(pipe, num_images=20, seed=1), ddpm_bits_per_dim(pipe, num_images=20, seed=1)
    assert a == b
    assert math.isfinite(a["test_bits_per_dim"]) and a["test_bits_per_dim"] > 0


# ---------------------------------------------------------------------------------- evaluate_folder and CLI


def test_evaluate_folder_on_a_tiny_pixel_ddpm_reports_sample_scores_and_bits_per_dim(tiny_ddpm_folder):
    metrics = evaluate_folder(tiny_ddpm_folder, num_samples=20, steps=3)
    assert metrics["num_samples"] == 20 and metrics["steps"] == 3 and metrics["sampler"] == DEFAULT_SAMPLER
    assert 0 <= metrics["confident_fraction"] <= 1
    assert len(metrics["digit_fractions"]) == 10 and math.isclose(sum(metrics["digit_fractions"]), 1, abs_tol=1e-3)
    assert 0 <= metrics["min_digit_fraction"] <= metrics["max_digit_fraction"] <= 1
    assert math.isfinite(metrics["frechet_distance"]) and metrics["frechet_distance"] > 0
    assert "class_accuracy" not in metrics and "guidance_scale" not in metrics  # unconditional
    assert math.isfinite(metrics["test_bits_per_dim"]) and metrics["test_bits_per_dim"] > 0
    assert metrics["test_bits_per_dim_stderr"] > 0
    # swapping in the sampling scheduler does not change the bound: same figure as on a freshly loaded pipeline
    fresh = ddpm_bits_per_dim(DDPMPipeline.from_pretrained(tiny_ddpm_folder))
    assert metrics["test_bits_per_dim"] == pytest.approx(fresh["test_bits_per_dim"], rel=1e-9)


def test_a_bundled_guide_is_used_at_the_asked_weight_and_recorded(tiny_ddpm_folder, tmp_path):
    torch.manual_seed(1)
    guide = UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8,),
        layers_per_block=1,
        down_block_types=("DownBlock2D",),
        up_block_types=("UpBlock2D",),
        norm_num_groups=4,
    ).eval()
    DDPMPipeline(tiny_unet(sample_size=28), DDPMScheduler(num_train_timesteps=50), guide_unet=guide).save_pretrained(
        tmp_path / "guided"
    )
    kwargs = {"num_samples": 20, "steps": 3, "bits_per_dim": False}
    guided = evaluate_folder(tmp_path / "guided", autoguidance_scale=3.0, **kwargs)
    plain = evaluate_folder(tmp_path / "guided", autoguidance_scale=1.0, **kwargs)
    assert guided["autoguidance_scale"] == 3.0 and plain["autoguidance_scale"] == 1.0
    assert guided["frechet_distance"] != plain["frechet_distance"]  # the guide changed the samples
    assert guided["guidance_interval"] == list(DEFAULT_GUIDANCE_INTERVAL)
    everywhere = evaluate_folder(tmp_path / "guided", autoguidance_scale=3.0, guidance_interval=None, **kwargs)
    assert everywhere["guidance_interval"] is None
    nowhere = evaluate_folder(tmp_path / "guided", autoguidance_scale=3.0, guidance_interval=(50.0, 60.0), **kwargs)
    assert nowhere["frechet_distance"] == plain["frechet_distance"]  # no step in the interval: the main model alone
    assert "autoguidance_scale" not in evaluate_folder(
        tiny_ddpm_folder, autoguidance_scale=3.0, **kwargs
    )  # no guide: not used


def test_scores_are_the_same_on_every_run_and_bf16_only_when_asked(tiny_ddpm_folder):
    kwargs = {"num_samples": 20, "steps": 3, "bits_per_dim": False}
    first, second = evaluate_folder(tiny_ddpm_folder, **kwargs), evaluate_folder(tiny_ddpm_folder, **kwargs)
    assert first == {**second, "seconds": first["seconds"]}
    assert first["precision"] == "fp32"  # the loaded dtype
    in_bf16 = evaluate_folder(tiny_ddpm_folder, precision="bf16", **kwargs)  # asked for: used and recorded
    assert in_bf16["precision"] == "bf16" and in_bf16["frechet_distance"] != first["frechet_distance"]
    assert evaluate.sampler_summary(in_bf16).endswith(", bf16")


def test_an_evaluation_in_place_stores_what_it_measured_and_pipe_then_samples_so(tiny_ddpm_folder, tmp_path):
    folder = tmp_path / "guided"
    shutil.copytree(tiny_ddpm_folder, folder)
    kwargs = {"num_samples": 20, "bits_per_dim": False}
    measured = evaluate_folder(folder, sampler="dpmsolver++", steps=4, guidance_interval=None, store=True, **kwargs)
    assert stored_sampling(folder) == {"sampler": "dpmsolver++", "num_inference_steps": 4}
    index = json.loads((folder / "model_index.json").read_text())
    assert index["scheduler"] == ["diffusers", "DPMSolverMultistepScheduler"] and not list(
        (folder / "scheduler").glob("*.py")
    )
    pipe = DDPMPipeline.from_pretrained(folder)
    # the trained schedule is kept in the sampler's config: our DDPM scheduler comes back from it as trained
    trained = DDPMScheduler.from_pretrained(tiny_ddpm_folder / "scheduler")
    back = DDPMScheduler.from_config(pipe.scheduler.config)
    assert {k: back.config[k] for k in trained.config if not k.startswith("_")} == {
        k: v for k, v in trained.config.items() if not k.startswith("_")
    }
    assert evaluate_folder(folder, **kwargs) == {**measured, "seconds": ANY}  # the defaults are now the stored ones
    pipe.set_progress_bar_config(disable=True)
    calls = []
    pipe.unet.register_forward_hook(lambda *args: calls.append(1))
    pipe(batch_size=1, output_type="np")  # nothing given: the stored 4 steps of DPM-Solver++
    assert len(calls) == 4
    with pytest.raises(ValueError, match="stores no η"):
        evaluate_folder(folder, sampler="ddim", eta=1.0, store=True, **kwargs)


def test_cli_writes_the_metrics_json(tiny_ddpm_folder, tmp_path, capsys):
    out = tmp_path / "e.json"
    returned = evaluate.main(
        [str(tiny_ddpm_folder), "--num_samples", "10", "--steps", "2", "--no_bits_per_dim", "--out", str(out)]
    )
    written = json.loads(out.read_text())
    assert written["num_samples"] == 10 and written["steps"] == 2
    assert "test_bits_per_dim" not in written
    assert written == json.loads(json.dumps(returned))
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{") :]) == written  # and prints the same JSON
    assert not (tiny_ddpm_folder / "evaluation.json").exists()  # --out, not the folder


def test_cli_takes_a_guidance_interval_or_none_and_refuses_a_bad_one():
    assert evaluate.parse_interval("0.5,4") == (0.5, 4.0)
    assert evaluate.parse_interval("none") is None
    for bad in ("4,0.5", "1", "a,b", "-1,2"):
        with pytest.raises(argparse.ArgumentTypeError, match="low,high"):
            evaluate.parse_interval(bad)


def test_eta_is_recorded_only_for_samplers_that_take_it(tiny_ddpm_folder):
    kwargs = {"num_samples": 10, "steps": 2, "bits_per_dim": False}
    assert "eta" not in evaluate_folder(tiny_ddpm_folder, sampler="sde-dpmsolver++", **kwargs)
    assert evaluate_folder(tiny_ddpm_folder, sampler="ddim", eta=0.5, **kwargs)["eta"] == 0.5


def test_folder_without_model_index_is_a_clear_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        evaluate_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        evaluate.main([str(tmp_path / "nowhere")])


def test_folder_naming_a_foreign_pipeline_is_a_clear_value_error(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ValueError, match="not one of this project's pipelines"):
        evaluate_folder(tmp_path)


def test_evaluate_folder_on_a_class_conditional_pixel_ddpm_reports_bits_per_dim(tmp_path):
    DDPMPipeline(
        tiny_unet(num_class_embeds=11, sample_size=28), DDPMScheduler(num_train_timesteps=50), None
    ).save_pretrained(tmp_path)
    metrics = evaluate_folder(tmp_path, num_samples=10, steps=2)
    assert 0 <= metrics["class_accuracy"] <= 1
    assert math.isfinite(metrics["test_bits_per_dim"]) and metrics["test_bits_per_dim"] > 0


def test_a_conditional_models_guidance_is_limited_to_the_interval_asked_for(tmp_path):
    torch.manual_seed(2)
    DDPMPipeline(
        tiny_unet(num_class_embeds=11, sample_size=28), DDPMScheduler(num_train_timesteps=50), None
    ).save_pretrained(tmp_path)
    kwargs = {"num_samples": 20, "steps": 3, "bits_per_dim": False}
    plain = evaluate_folder(tmp_path, guidance_scale=1.0, **kwargs)
    guided = evaluate_folder(tmp_path, guidance_scale=3.0, guidance_interval=None, **kwargs)
    nowhere = evaluate_folder(tmp_path, guidance_scale=3.0, guidance_interval=(50.0, 60.0), **kwargs)
    assert guided["frechet_distance"] != plain["frechet_distance"] and guided["guidance_interval"] is None
    assert nowhere["frechet_distance"] == plain["frechet_distance"]  # no step in the interval: w = 1 throughout
    assert nowhere["guidance_interval"] == [50.0, 60.0]


def test_vae_bounds_on_held_out_digits_are_plausible_and_iwae_is_tighter(monkeypatch):
    """The bundled VAE on 100 test digits (load_data patched to a subset to stay fast), IWAE with k = 20."""
    full = load_data("mnist", "test")
    monkeypatch.setattr(evaluate, "load_data", lambda source, split: ImageData(full.images[::5], full.labels[::5]))
    vae = VAEPipeline.from_pretrained(ROOT / "models" / "vae").vae
    bounds = vae_bounds(vae, iwae_k=20)
    assert set(bounds) == {"test_neg_elbo_binarized", "test_neg_iwae20_binarized", "test_neg_elbo_continuous"}
    assert 60 < bounds["test_neg_elbo_binarized"] < 200
    assert 60 < bounds["test_neg_elbo_continuous"] < 250
    # −IWAE_k ≤ −ELBO (in expectation; averaged over 100 digits the gap is several nats)
    assert bounds["test_neg_iwae20_binarized"] < bounds["test_neg_elbo_binarized"]
    assert bounds["test_neg_iwae20_binarized"] > 0.8 * bounds["test_neg_elbo_binarized"]


@pytest.mark.slow
def test_evaluate_folder_on_the_bundled_vae_reproduces_its_published_bounds():
    folder = ROOT / "models" / "vae"
    metrics = evaluate_folder(folder, num_samples=50)
    assert 60 < metrics["test_neg_elbo_binarized"] < 200
    assert metrics["test_neg_iwae100_binarized"] <= metrics["test_neg_elbo_binarized"] + 0.5
    assert metrics["prior_samples_num_samples"] == 50
    assert math.isclose(sum(metrics["prior_samples_digit_fractions"]), 1, abs_tol=1e-3)
    assert 0 <= metrics["prior_samples_confident_fraction"] <= 1
    assert metrics["prior_samples_frechet_distance"] > 0
    published = json.loads((folder / "evaluation.json").read_text())
    for key in ("test_neg_elbo_binarized", "test_neg_iwae100_binarized", "test_neg_elbo_continuous"):
        assert metrics[key] == pytest.approx(published[key], abs=0.05), key  # the bundled figures are reproducible


# ------------------------------------------------------------------------------------------------ classifier


def test_non_digits_are_in_range_and_keep_the_ink_of_shuffled_digits(test_digits):
    from training.classifier import non_digits

    digits = test_digits.images[:8]
    images = non_digits(digits, torch.Generator().manual_seed(0))
    assert images.shape == digits.shape and images.min() >= 0 and images.max() <= 1
    shuffled = images[3::4]  # every fourth is a pixel-shuffled digit: same ink, other places
    torch.testing.assert_close(shuffled.sum((1, 2, 3)), digits[3::4].sum((1, 2, 3)))
    assert not torch.equal(shuffled, digits[3::4])


def test_a_short_classifier_training_saves_loadable_weights_and_its_metrics(tmp_path):
    from training.classifier import train_classifier

    report = train_classifier(str(tmp_path), steps=40, batch_size=32)
    assert json.loads((tmp_path / "metrics.json").read_text()) == report
    assert report["test_accuracy"] > 0.3  # 40 steps already beat chance (0.1) by far
    scores = score_digits(load_data("mnist", "test").images[:50], classifier=load_classifier(tmp_path))
    assert scores["num_samples"] == 50
