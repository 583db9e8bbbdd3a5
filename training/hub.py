"""Publishing a saved pipeline folder to the Hugging Face Hub, as a repository plain diffusers loads.

The staged folder holds the configs and safetensors weights, the code diffusers runs with ``trust_remote_code=True``
(``pipelines/hub_code.py``: the project's own modules, copied fresh), a ``.gitattributes`` that stores the weights
and images with LFS/Xet, a sample grid and the model card (``training/model_card.py``). ``--dry-run`` writes
exactly what would be uploaded. The token is never handled here: huggingface_hub reads it from ``HF_TOKEN`` or
``hf auth login``. Each bundled ``models/`` folder is exactly what publishing it to its repo of ``BUNDLED_REPOS``
uploads: ``refresh_bundled`` stages it in place after the project's modules or the cards change, and
``stale_bundled`` says what a fresh staging would change.
"""

from __future__ import annotations

import json
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
from pipelines.hub_code import model_files, write_hub_code, write_model_code
from pipelines.image_grid import make_grid
from pipelines.loading import folder_classes
from pipelines.samplers import make_scheduler, stored_sampling

from .model_card import SAMPLES_FILE, build_classifier_card, build_model_card, evaluation_metrics, sampling_kwargs

PUBLISHABLE_MODELS = {"DigitClassifier": DigitClassifier}  # single models (no pipeline) that can be published

# Files the Hub stores with LFS/Xet instead of in git: the weights and the sample grid.
GITATTRIBUTES = "*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
RUN_ENTRIES = ("samples", "logs", "metrics.jsonl", "train_config.json", "export.tmp")  # a run folder's own files
SKIPPED_NAMES = ("README.md", ".git", ".cache", ".gitattributes")  # written fresh when staging
# The Hub account the bundled models are published under; each bundled folder's card names its repo.
HUB_OWNER = "vae-diffusion-playground"
BUNDLED_REPOS = {
    "ddpm-pixel": f"{HUB_OWNER}/mnist-ddpm-pixel",
    "ddpm-latent": f"{HUB_OWNER}/mnist-ddpm-latent",
    "ddpm-conditional": f"{HUB_OWNER}/mnist-ddpm-conditional",
    "vae": f"{HUB_OWNER}/mnist-vae",
    "vae-beta0.25": f"{HUB_OWNER}/mnist-vae-beta0.25",
    "vae-beta4": f"{HUB_OWNER}/mnist-vae-beta4",
    "mnist-classifier": f"{HUB_OWNER}/mnist-classifier",
}


def sample_grid(folder: Path):
    """The card's picture: the pipeline in ``folder`` sampled as the card's snippet does (seed 0), as one image."""
    pipeline_class, _ = folder_classes(folder)
    pipe = pipeline_class.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    unet = getattr(pipe, "unet", None)
    conditional = bool(unet and unet.config.num_class_embeds)
    sampler, kwargs = sampling_kwargs(evaluation_metrics(folder), conditional, bool(unet), stored_sampling(folder))
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


def _forget_local_path(config_file: Path) -> None:
    """Drop the ``_name_or_path`` diffusers records when a component was loaded from a folder (a trainer's own path,
    e.g. the VAE stage's export): the published repo is that component's home."""
    config = json.loads(config_file.read_text())
    if config.pop("_name_or_path", None) is not None:
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


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
        if relative.name in ("config.json", "model_index.json"):
            _forget_local_path(target / relative)
    write_hub_code(target, *classes)
    (target / ".gitattributes").write_text(GITATTRIBUTES)
    if not (target / SAMPLES_FILE).is_file():  # a folder's own grid is kept: delete it to draw a new one
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
    """The folders of ``models_dir`` that BUNDLED_REPOS names (each must be there)."""
    folders = [Path(models_dir) / name for name in sorted(BUNDLED_REPOS)]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise FileNotFoundError(f"bundled model folders {missing} do not exist.")
    return folders


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _staged(folder: Path, tmp: str) -> Path:
    stage = STAGERS[folder_kind(folder)]
    return stage(folder, Path(tmp) / folder.name, BUNDLED_REPOS[folder.name])


def refresh_bundled(models_dir: str | Path) -> list[Path]:
    """Make each bundled folder exactly what publishing it uploads: stage it, then write the staged files that differ
    (real files: a link becomes the file it points to) and remove the files staging leaves out."""
    folders = bundled_folders(models_dir)
    for folder in folders:
        with tempfile.TemporaryDirectory() as tmp:
            wanted, present = _files(_staged(folder, tmp)), _files(folder)
        for relative in sorted(set(present) - set(wanted)):
            (folder / relative).unlink()
        for relative, content in wanted.items():
            target = folder / relative
            if target.is_symlink() or present.get(relative) != content:
                target.unlink(missing_ok=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
    return folders


def stale_bundled(models_dir: str | Path) -> dict[str, list[str]]:
    """Per bundled folder, the files :func:`refresh_bundled` would write or remove (empty when up to date)."""
    stale = {}
    for folder in bundled_folders(models_dir):
        with tempfile.TemporaryDirectory() as tmp:
            wanted, present = _files(_staged(folder, tmp)), _files(folder)
        links = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_symlink()}
        paths = {p for p in set(wanted) | set(present) if wanted.get(p) != present.get(p)} | links
        if paths:
            stale[str(folder)] = sorted(paths)
    return stale


def code_lines(folder: str | Path) -> dict[str, int]:
    """The code a reviewer reads before ``trust_remote_code=True``: each .py file of the folder and its lines."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): len(p.read_text(encoding="utf-8").splitlines())
        for p in sorted(folder.rglob("*.py"))
    }


def list_in_space_readme(readme: str | Path, repo_id: str) -> list[str]:
    """Add ``repo_id`` to the ``models:`` of a Space README's front matter (the Space page then links the repo).
    Returns the listed repos."""
    import yaml

    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2) if text.startswith("---\n") else ("", None, text)
    if front is None:
        raise ValueError(f"{readme} has no YAML front matter (a Space README starts with ---).")
    lines = front.splitlines()
    models = yaml.safe_load(front).get("models") or []
    if repo_id not in models:
        models = sorted([*models, repo_id])
    listed = f"models: [{', '.join(models)}]"
    index = next((i for i, line in enumerate(lines) if line.startswith("models:")), None)
    if index is None:
        lines.append(listed)
    else:
        lines[index] = listed
    readme.write_text("---\n" + "\n".join(lines) + "\n---\n" + body, encoding="utf-8")
    return models
