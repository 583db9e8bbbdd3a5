"""Publishing a saved pipeline folder to the Hugging Face Hub, as a repository plain diffusers loads.

The staged folder holds the configs and safetensors weights, the code diffusers runs with ``trust_remote_code=True``
(``pipelines/hub_code.py``: the project's own modules, copied fresh), a ``.gitattributes`` that stores the weights
and images with LFS/Xet, a sample grid and the model card (``training/model_card.py``). ``--dry-run`` writes
exactly what would be uploaded. The token is never handled here: huggingface_hub reads it from ``HF_TOKEN`` or
``hf auth login``. ``refresh_bundled`` rewrites the code of the bundled ``models/`` folders (links into
``pipelines/``) after the project's modules change.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from huggingface_hub import HfApi

from pipelines.digit_classifier import DigitClassifier
from pipelines.folder_checks import (
    TRAINING_STATE,
    check_config_bounds,
    check_weights,
    expected_tensors,
    find_pickles,
    read_json,
    weight_files,
)
from pipelines.hub_code import model_files, stale_hub_code, write_hub_code, write_model_code
from pipelines.image_grid import make_grid
from pipelines.loading import folder_classes
from pipelines.samplers import make_scheduler

from .model_card import SAMPLES_FILE, build_classifier_card, build_model_card, evaluation_metrics, sampling_kwargs

PUBLISHABLE_MODELS = {"DigitClassifier": DigitClassifier}  # single models (no pipeline) that can be published

# Files the Hub stores with LFS/Xet instead of in git: the weights and the sample grid.
GITATTRIBUTES = "*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
RUN_ENTRIES = ("samples", "logs", "metrics.jsonl", "train_config.json", "export.tmp")  # a run folder's own files
SKIPPED_NAMES = ("README.md", ".git", ".cache", ".gitattributes", SAMPLES_FILE)  # written fresh when staging


def sample_grid(folder: Path):
    """The card's picture: the pipeline in ``folder`` sampled as the card's snippet does (seed 0), as one image."""
    pipeline_class, _ = folder_classes(folder)
    pipe = pipeline_class.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    unet = getattr(pipe, "unet", None)
    sampler, kwargs = sampling_kwargs(
        evaluation_metrics(folder), bool(unet and unet.config.num_class_embeds), bool(unet)
    )
    if sampler:
        pipe.scheduler = make_scheduler(pipe.scheduler.config, sampler)
    images = pipe(**kwargs, generator=torch.Generator().manual_seed(0), output_type="pt").images
    return make_grid(images, nrow=len(images) if len(images) <= 10 else 8)  # the ten digits in one row


def _skipped(relative: Path) -> bool:
    """Written fresh when staging, or what a run folder keeps beside its export (checkpoints, snapshots, logs)."""
    top = relative.parts[0]
    return top in SKIPPED_NAMES or top in RUN_ENTRIES or TRAINING_STATE.fullmatch(top) or top.startswith("snapshot-")


def _is_code(relative: Path, components: set[str]) -> bool:
    """A .py file of the folder's root or of a component folder: code is written fresh from the project."""
    return relative.suffix == ".py" and (len(relative.parts) == 1 or relative.parts[0] in components)


def stage_folder(
    folder: str | Path, target: str | Path, repo_id: str, license: str = "mit", source_url: str | None = None
) -> Path:
    """Write into ``target`` exactly what would be uploaded. Refuses a folder with pickle weights (checked first)."""
    folder, target = Path(folder), Path(target)
    card = build_model_card(folder, repo_id, license, source_url)  # checks the folder first
    classes = folder_classes(folder)
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"dry-run folder {str(target)!r} is not empty; choose a new --dry-run-dir.")
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if _skipped(relative) or path.is_dir() or _is_code(relative, set(classes[1])):
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)  # follows links: the staged folder holds real files
    write_hub_code(target, *classes, mode="copy")
    (target / ".gitattributes").write_text(GITATTRIBUTES)
    sample_grid(target).save(target / SAMPLES_FILE)
    card.save(target / "README.md")
    return target


def stage_model(
    folder: str | Path, target: str | Path, repo_id: str, license: str = "mit", source_url: str | None = None
) -> Path:
    """A single model (the scoring classifier): config, weights, metrics, its code for ``diffusers.AutoModel``."""
    folder, target = Path(folder), Path(target)
    model_class, config = check_model_folder(folder)
    modules = [
        f"{Path(p).parent.name}/{Path(p).name}" for p in model_files(model_class).values() if isinstance(p, Path)
    ]
    card = build_classifier_card(folder, repo_id, config, modules, license, source_url)
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"dry-run folder {str(target)!r} is not empty; choose a new --dry-run-dir.")
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix != ".py" and path.name not in SKIPPED_NAMES:
            shutil.copy2(path, target / path.name)
    write_model_code(target, model_class)
    (target / ".gitattributes").write_text(GITATTRIBUTES)
    card.save(target / "README.md")
    return target


def check_model_folder(folder: Path) -> tuple[type, dict]:
    """A saved single model: a known class, a bounded config, safetensors matching the class, no pickles."""
    if find_pickles(folder):
        raise ValueError(
            f"model folder {str(folder)!r} holds pickle files {find_pickles(folder)}; only safetensors load."
        )
    config = read_json(folder / "config.json")
    check_config_bounds(config, folder / "config.json")
    model_class = PUBLISHABLE_MODELS.get(config.get("_class_name"))
    if model_class is None:
        raise ValueError(
            f"{folder / 'config.json'} names {config.get('_class_name')!r}, not one of {sorted(PUBLISHABLE_MODELS)}."
        )
    check_weights(
        weight_files(folder), expected_tensors(model_class, config, folder / "config.json"), model_class.__name__
    )
    return model_class, config


STAGERS = {"pipeline": stage_folder, "model": stage_model}  # what a folder holds → how it is staged


def folder_kind(folder: Path) -> str:
    """ "pipeline" (a model_index.json) or "model" (a config.json alone)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist.")
    return "pipeline" if (folder / "model_index.json").is_file() or not (folder / "config.json").is_file() else "model"


def publish(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    dry_run_dir: str | Path | None = None,
    source_url: str | None = None,
) -> str:
    """Create ``repo_id`` (if needed) and upload the staged folder; with ``dry_run_dir`` only stage it there.
    Returns the repo URL, or the dry-run folder."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'user/name', got {repo_id!r}.")
    stage = STAGERS[folder_kind(Path(folder))]
    if dry_run_dir is not None:
        return str(stage(folder, dry_run_dir, repo_id, source_url=source_url))
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage(folder, Path(tmp) / "upload", repo_id, source_url=source_url)
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
