"""Score a saved pipeline folder: sample quality through the project's MNIST classifier, the VAE's held-out
bounds, and the DDPM's variational bound in bits/dim.

    python -m training.evaluate models/ddpm-pixel --num_samples 1000
    python -m training.evaluate models/ddpm-pixel --sampler ddim --steps 50
    python -m training.evaluate models/vae
    python -m training.evaluate --real_digits      # real digits scored the same way: the ceiling

Samples as the model recommends (its stored settings, else the project's) unless told otherwise. Writes
``evaluation.json`` into the folder and stores the sampling it measured as the model's settings, what ``pipe()``
samples with (or writes only --out), and prints it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from functools import cache
from pathlib import Path

import numpy as np
import torch
from scipy import linalg

from pipelines import schedules
from pipelines.data_range import to_model_range
from pipelines.defaults import (
    DEFAULT_DDIM_ETA,
    RECOMMENDED,
    app_sampling_kwargs,
    app_scheduler,
    recommended_sampling,
)
from pipelines.digit_classifier import is_confident, load_classifier
from pipelines.distributions import DiagonalGaussian
from pipelines.guidance import null_class_label, validate_guidance_interval
from pipelines.hub_code import PIPELINE_ENTRY, component_entries, write_hub_code
from pipelines.loading import folder_classes, pipeline_class_name
from pipelines.precision import PRECISIONS, Precision, precision_name
from pipelines.samplers import SAMPLERS, resolve_sampler
from pipelines.sampling_settings import GUIDANCE_KEYS, check_sampling_settings
from pipelines.scheduling_ddpm import DDPMScheduler

from .data import load_data
from .train_vae import BINARIZE_SEED, binarize

PIPELINE_ENTRY_FILE = f"{PIPELINE_ENTRY}.py"
LAMBDA_FLOOR = -1000.0  # log-SNR λ_t = log(√ᾱ_t/√(1 − ᾱ_t)) of any non-zero-SNR schedule lies far above
CLASSIFIER_DIR = Path(__file__).resolve().parents[1] / "models" / "mnist-classifier"


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2(Σ_a Σ_b)^½) between Gaussians fitted to two feature sets (FID's formula)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


@cache
def scoring_classifier():
    """The bundled scoring classifier, loaded once per process."""
    return load_classifier(CLASSIFIER_DIR)


@cache
@torch.no_grad()
def reference_features(classifier) -> np.ndarray:
    """The classifier's features of the held-out test digits: the reference of every Fréchet distance (computed once
    per classifier, whose weights do not change while it scores)."""
    return classifier.features(load_data("mnist", "test").images).numpy()


@torch.no_grad()
def score_digits(images: torch.Tensor, requested: torch.Tensor | None = None, classifier=None) -> dict:
    """Classifier metrics of generated digits (N, 1, 28, 28) in [0, 1]."""
    classifier = classifier or scoring_classifier()
    probs = torch.softmax(classifier(images), dim=1)
    confidence, predicted = probs.max(1)
    histogram = torch.bincount(predicted, minlength=10).float() / len(images)
    metrics = {
        "num_samples": len(images),
        "confident_fraction": is_confident(probs).float().mean().item(),
        "digit_fractions": [round(v, 4) for v in histogram.tolist()],
        "min_digit_fraction": histogram.min().item(),
        "max_digit_fraction": histogram.max().item(),
        "frechet_distance": frechet_distance(classifier.features(images).numpy(), reference_features(classifier)),
    }
    if requested is not None:
        metrics["class_accuracy"] = (predicted == requested).float().mean().item()
    return metrics


@torch.no_grad()
def real_digits_ceiling(num_samples: int = 1000, resamples: int = 20, seed: int = 0) -> dict:
    """The real-data anchor of every model figure, scored exactly as samples are: the held-out test digits' confident
    share and digit shares (the classifier never saw them), and the Fréchet distance to the test reference of
    ``num_samples`` real training digits drawn ``resamples`` times (a model that drew real digits would score this;
    the distance has a finite-sample bias, so samples are compared at the same count)."""
    classifier = scoring_classifier()
    test, train = load_data("mnist", "test").images, load_data("mnist", "train+val").images
    held_out = score_digits(test, classifier=classifier)
    reference = reference_features(classifier)
    generator = torch.Generator().manual_seed(seed)
    draws = [torch.randperm(len(train), generator=generator)[:num_samples] for _ in range(resamples)]
    features = classifier.features(train).numpy()
    distances = np.array([frechet_distance(features[draw.numpy()], reference) for draw in draws])
    confident = [score_digits(train[draw], classifier=classifier)["confident_fraction"] for draw in draws[:3]]
    return {
        "held_out_confident_fraction": held_out["confident_fraction"],
        "held_out_min_digit_fraction": held_out["min_digit_fraction"],
        "held_out_max_digit_fraction": held_out["max_digit_fraction"],
        "held_out_num_digits": len(test),
        "real_frechet_distance_mean": float(distances.mean()),
        "real_frechet_distance_std": float(distances.std(ddof=1)),
        "real_frechet_distance_min": float(distances.min()),
        "real_frechet_distance_max": float(distances.max()),
        "real_training_digits_confident_fraction": float(np.mean(confident)),
        "num_samples": num_samples,
        "resamples": resamples,
    }


def load_pipeline_class(folder: Path):
    """The project pipeline class that ``folder``/model_index.json names."""
    name = pipeline_class_name(json.loads((Path(folder) / "model_index.json").read_text()))
    import pipelines

    if not hasattr(pipelines, name):
        raise ValueError(f"{folder}/model_index.json names {name!r}, which is not one of this project's pipelines.")
    return getattr(pipelines, name)


def load_pipeline(folder: Path):
    """The project pipeline that ``folder``/model_index.json names, loaded from ``folder`` (safetensors only)."""
    return load_pipeline_class(folder).from_pretrained(folder)


@torch.no_grad()
def evaluate_sampler(
    pipe,
    num_samples: int,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float = DEFAULT_DDIM_ETA,
    guidance_scale: float | None = None,
    batch_size: int = 250,
    autoguidance_scale: float | None = None,
    guidance_interval: tuple[float, float] | None | str = RECOMMENDED,
    precision: Precision = "loaded",
) -> dict:
    """Sample ``num_samples`` images (seeded per batch) and score them, as the model recommends
    (:func:`pipelines.defaults.recommended_sampling`: its stored settings, else the project's) unless told otherwise:
    ``sampler`` a key or label of :data:`pipelines.samplers.SAMPLERS` ("ddim", "DDPM", ...), ``steps`` (None: the
    recommended ones for the recommended sampler, else the sampler's default), the guidance weights and interval
    (None: every step; :data:`RECOMMENDED`: the recommended one).

    The networks run in their loaded dtype (fp32 for the bundled models) unless ``precision="bf16"``: nothing timed
    decides the numerics, so a model's score is the same on every run."""
    recommended = recommended_sampling(pipe)
    spec = resolve_sampler(sampler or recommended["sampler"])
    if steps is None:
        steps = recommended["num_inference_steps"] if spec.key == recommended["sampler"] else spec.default_steps
    sampler = spec.key
    pipe.scheduler = app_scheduler(pipe, sampler)
    conditional = bool(pipe.unet.config.num_class_embeds)
    # classes 0..n−1 in turn; the null label n (the last class embedding) means "no class"
    requested = torch.arange(num_samples) % null_class_label(pipe.unet) if conditional else None
    guidance = app_sampling_kwargs(pipe, guidance_scale, autoguidance_scale, guidance_interval)
    images, start = [], time.perf_counter()
    for i, lo in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - lo)
        kwargs = dict(guidance)
        if conditional:
            kwargs["class_labels"] = requested[lo : lo + n]
        out = pipe(
            batch_size=n,
            generator=torch.Generator().manual_seed(i),
            num_inference_steps=steps,
            eta=eta,
            precision=precision,
            output_type="pt",
            **kwargs,
        )
        images.append(out.images)
    metrics = score_digits(torch.cat(images), requested)
    used = precision_name(precision, pipe.unet)
    metrics.update(sampler=sampler, steps=steps, precision=used, seconds=time.perf_counter() - start)
    if spec.takes_eta:
        metrics["eta"] = eta
    for key, value in guidance.items():
        metrics[key] = list(value) if key == "guidance_interval" and value is not None else value
    return metrics


def measured_settings(metrics: dict) -> dict:
    """The sampling settings an evaluation measured, as a model stores them (pipelines/sampling_settings.py)."""
    settings = {"num_inference_steps": metrics["steps"]}
    settings.update({key: metrics[key] for key in GUIDANCE_KEYS if key in metrics})
    return check_sampling_settings(settings)


def store_sampling(folder: str | Path, pipe, metrics: dict) -> None:
    """Make ``folder`` sample as ``metrics`` measured ``pipe``: its scheduler becomes the sampler measured (made from
    the trained scheduler config, which it keeps, so ``DDPMScheduler.from_config`` gives the trained one back), and
    model_index.json's ``"sampling"`` holds the steps and guidance. Code it carries is rewritten to match."""
    folder = Path(folder)
    if metrics.get("eta", 0.0) != 0.0:
        raise ValueError("a model stores no η: store the settings of a sampler that takes none (or η = 0).")
    if pipe.scheduler.config.get("lambda_min_clipped") == -math.inf:
        # a folder's configs hold finite numbers only (pipelines/folder_checks.py): a floor below every λ_t of the
        # schedule clips what −∞ clips, nothing
        pipe.scheduler.register_to_config(lambda_min_clipped=LAMBDA_FLOOR)
    for entry in (folder / "scheduler").glob("*.py"):  # the code of the scheduler it replaces
        entry.unlink()
    pipe.scheduler.save_pretrained(folder / "scheduler")
    index_file = folder / "model_index.json"
    index = json.loads(index_file.read_text())
    index["scheduler"] = component_entries({"scheduler": type(pipe.scheduler)})["scheduler"]
    index["sampling"] = measured_settings(metrics)
    index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    if (folder / PIPELINE_ENTRY_FILE).exists():  # a folder that carries its code: rewritten to match
        write_hub_code(folder, *folder_classes(folder))


def sampler_summary(metrics: dict) -> str:
    """How samples were drawn, in one line: "sde-dpmsolver++-12", plus η and the guidance interval where recorded."""
    text = f"{metrics['sampler']}-{metrics['steps']}"
    if "eta" in metrics:
        text += f", eta {metrics['eta']:g}"
    if metrics.get("guidance_interval"):
        low, high = metrics["guidance_interval"]
        text += f", guided where {low:g} < sigma <= {high:g}"
    if metrics.get("precision", "fp32") != "fp32":
        text += f", {metrics['precision']}"
    return text


@torch.no_grad()
def vae_bounds(vae, iwae_k: int = 100) -> dict:
    """Held-out −ELBO and −IWAE bound (nats) on the binarized test digits, and −ELBO on continuous intensities."""
    test = load_data("mnist", "test").images
    binary = binarize(test, torch.Generator().manual_seed(BINARIZE_SEED))
    g = lambda: torch.Generator().manual_seed(0)
    return {
        "test_neg_elbo_binarized": -vae.elbo(binary, generator=g()).elbo.mean().item(),
        f"test_neg_iwae{iwae_k}_binarized": -vae.iwae_bound(binary, iwae_k, generator=g()).mean().item(),
        "test_neg_elbo_continuous": -vae.elbo(test, generator=g()).elbo.mean().item(),
    }


def _discretized_gaussian_nll(x, mean, logvar):
    """−ln ∫_bin N(u; mean, σ²) du over the 8-bit bin of x ∈ [−1, 1] (Ho et al. 2020, §3.3)."""
    std, half = (0.5 * logvar).exp(), 1 / 255
    cdf = lambda v: 0.5 * (1 + torch.erf(v / math.sqrt(2)))
    upper = torch.where(x > 0.999, torch.ones_like(x), cdf((x + half - mean) / std))
    lower = torch.where(x < -0.999, torch.zeros_like(x), cdf((x - half - mean) / std))
    return -torch.log((upper - lower).clamp(min=1e-12))


@torch.no_grad()
def ddpm_bits_per_dim(pipe, num_images: int = 200, t_per_image: int = 4, seed: int = 0) -> dict:
    """Monte-Carlo estimate of the variational bound L = L_T + Σ_t L_{t−1} + L_0 in bits/dim on held-out digits:
    each image gets ``t_per_image`` uniformly drawn t, and T·E_t[L_t] estimates the sum (unbiased)."""
    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    ab = sched.alphas_cumprod.double()
    T = len(ab)
    x = to_model_range(load_data("mnist", "test").images[:num_images].double())
    g = torch.Generator().manual_seed(seed)
    D = x[0].numel()
    # a conditional model is scored as p(x): its "no class" label
    no_class = torch.full((len(x),), null_class_label(pipe.unet)) if pipe.unet.config.num_class_embeds else None
    # L_T = KL(q(z_T|x) ‖ N(0, I)), closed form
    L_T = DiagonalGaussian(ab[-1].sqrt() * x, torch.log(1 - ab[-1]).expand_as(x)).kl()
    per_step = []
    for _ in range(t_per_image):
        t = torch.randint(0, T, (len(x),), generator=g)
        noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
        z = schedules.closed_form_sample(x, noise, ab, t)
        out = pipe.unet(z.float(), t, class_labels=no_class).sample.double()
        a_t = ab[t].view(-1, 1, 1, 1)
        a_prev = torch.where(t > 0, ab[(t - 1).clamp(min=0)], torch.ones_like(ab[t])).view(-1, 1, 1, 1)
        x0_hat = schedules.predict_original_sample(out, z, a_t, sched.config.prediction_type).clamp(-1, 1)
        # L_{t−1} = KL(q(z_{t−1} | z_t, x) ‖ p(z_{t−1} | z_t)): two Gaussians of variance β̃_t, means μ̃_t(z_t, ·)
        mean_model = schedules.posterior_mean(x0_hat, z, a_t, a_prev)
        mean_true = schedules.posterior_mean(x, z, a_t, a_prev)
        logvar = torch.log(schedules.posterior_variance(a_t, a_prev).clamp(min=1e-20)).expand_as(x)
        kl = DiagonalGaussian(mean_true, logvar).kl(DiagonalGaussian(mean_model, logvar))
        # t = 0 (the notes' t = 1): the decoder term −ln p(x | z_1), discretized, with σ² = β_1
        nll0 = (
            _discretized_gaussian_nll(x, mean_model, torch.log(sched.betas[0].double()).expand_as(x)).flatten(1).sum(1)
        )
        per_step.append(torch.where(t > 0, kl, nll0) * T)
    terms = torch.stack(per_step, 1).mean(1) + L_T  # nats per image
    bpd = terms / (D * math.log(2))
    return {
        "test_bits_per_dim": bpd.mean().item(),
        "test_bits_per_dim_stderr": (bpd.std() / math.sqrt(len(bpd))).item(),
        "bpd_images": num_images,
        "bpd_t_per_image": t_per_image,
    }


def evaluate_folder(
    folder: str | Path,
    num_samples: int = 1000,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float = DEFAULT_DDIM_ETA,
    guidance_scale: float | None = None,
    bits_per_dim: bool = True,
    autoguidance_scale: float | None = None,
    guidance_interval: tuple[float, float] | None | str = RECOMMENDED,
    precision: Precision = "loaded",
    store: bool = False,
) -> dict:
    """Score the pipeline in ``folder`` (:func:`evaluate_sampler`'s defaults: as the model recommends); ``store``
    writes the sampling measured into the folder as the model's settings (:func:`store_sampling`)."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a saved pipeline folder (no model_index.json).")
    pipe = load_pipeline(folder)
    if hasattr(pipe, "unet"):
        metrics = evaluate_sampler(
            pipe,
            num_samples,
            sampler,
            steps,
            eta,
            guidance_scale,
            autoguidance_scale=autoguidance_scale,
            guidance_interval=guidance_interval,
            precision=precision,
        )
        if store:
            store_sampling(folder, pipe, metrics)
        if bits_per_dim and not hasattr(pipe, "vae"):
            metrics.update(ddpm_bits_per_dim(pipe))
    else:
        metrics = vae_bounds(pipe.vae)
        metrics.update(
            {
                f"prior_samples_{k}": v
                for k, v in score_digits(
                    pipe(batch_size=num_samples, generator=torch.Generator().manual_seed(0), output_type="pt").images
                ).items()
            }
        )
    return metrics


def parse_interval(text: str) -> tuple[float, float] | None:
    """ "low,high" → (low, high); "none" → None (guide every step)."""
    if text.strip().lower() == "none":
        return None
    if text == RECOMMENDED:  # the default (argparse passes it through here too)
        return RECOMMENDED
    try:
        low, high = (float(part) for part in text.split(","))
        return validate_guidance_interval((low, high))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f'expected "low,high" with 0 ≤ low < high, or "none"; got {text!r}') from error


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="a saved pipeline folder (not needed with --real_digits)")
    parser.add_argument(
        "--real_digits",
        action="store_true",
        help="score real digits instead of a model: the ceiling every model figure is compared with",
    )
    parser.add_argument("--num_samples", type=int, default=1000)
    parser.add_argument("--sampler", choices=tuple(SAMPLERS), help="default: the model's recommended one")
    parser.add_argument("--steps", type=int, help="default: the model's recommended ones, or the sampler's own")
    parser.add_argument("--eta", type=float, default=DEFAULT_DDIM_ETA)
    parser.add_argument("--guidance_scale", type=float, help="default: the model's recommended one")
    parser.add_argument(
        "--autoguidance_scale", type=float, help="used when the pipeline ships a guide_unet (default: recommended)"
    )
    parser.add_argument(
        "--guidance_interval",
        type=parse_interval,
        default=RECOMMENDED,
        help='guidance only where σ_t lies in (low, high], as "low,high"; "none": every step (default: recommended)',
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="loaded",
        help='"loaded": the networks\' own dtype (default); "bf16": bf16 autocast',
    )
    parser.add_argument("--no_bits_per_dim", action="store_true")
    parser.add_argument(
        "--out",
        help="where to write the JSON; by default <folder>/evaluation.json, and the folder then stores the sampling "
        "measured as the model's settings (what pipe() samples with)",
    )
    args = parser.parse_args(argv)
    if args.real_digits:
        metrics = real_digits_ceiling(args.num_samples)
        print(json.dumps(metrics, indent=2))
        if args.out:
            Path(args.out).write_text(json.dumps(metrics, indent=2))
        return metrics
    if not args.folder:
        parser.error("a pipeline folder is needed (or --real_digits)")
    metrics = evaluate_folder(
        args.folder,
        args.num_samples,
        args.sampler,
        args.steps,
        args.eta,
        args.guidance_scale,
        not args.no_bits_per_dim,
        args.autoguidance_scale,
        args.guidance_interval,
        args.precision,
        store=args.out is None,
    )
    Path(args.out or Path(args.folder) / "evaluation.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()
