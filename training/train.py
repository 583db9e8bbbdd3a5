"""Train a bundled model from scratch in one command, from its recipe ``training/recipes/<name>.yaml``:

    python -m training.train --recipe ddpm-latent [--output_root runs/recipes]
    python -m training.train --recipe ddpm-latent-fast   # its fast recipe, the time-to-quality benchmark's
    python -m training.train --recipe my-recipe.yaml     # a recipe file of your own, in the same format

A recipe lists stages, each a task of the one loop (vae, ddpm, classifier) with its config; a value "{stage}"
is the export folder of an earlier stage (a latent DDPM's --vae, a fine-tune's --init_from). ``export`` names
the stage that gives the model, ``guide`` the one attached as its autoguidance guide: a stage's export, or
``<stage>@<step>``, the EMA model that stage exported at a step of its ``snapshot_steps`` (the same network
trained shorter, at no extra cost). Stages resume from their
latest checkpoint, so a crashed recipe continues where it stopped. The model's training.json records the
recipe, the command and every stage's config.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import yaml

from .cli import run
from .config import (
    ClassifierTrainConfig,
    DDPMTrainConfig,
    TrainConfig,
    VAETrainConfig,
    config_to_dict,
    export_path,
    parse_config,
    snapshot_path,
)
from .fields import Range, check_fields

RECIPES = Path(__file__).resolve().parent / "recipes"
STAGE_REFERENCE = re.compile(r"\{([\w-]+)\}")
CONFIGS: dict[str, type[TrainConfig]] = {
    "vae": VAETrainConfig,
    "ddpm": DDPMTrainConfig,
    "classifier": ClassifierTrainConfig,
}
TASKS = {  # imported when used: each pulls in its model code
    "vae": ("training.train_vae", "VAETask"),
    "ddpm": ("training.train_ddpm", "DDPMTask"),
    "classifier": ("training.classifier", "ClassifierTask"),
}


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


@dataclass
class RecipeRun:
    """The command line of this script, read by the one config reader."""

    recipe: str = ""
    output_root: str = "runs/recipes"  # stage <s> of recipe <r> trains in <output_root>/<r>/<s>

    BOUNDS: ClassVar[dict[str, Range]] = {}
    LENGTHS: ClassVar[dict[str, Range]] = {}

    def __post_init__(self):
        check_fields(self, self.BOUNDS, self.LENGTHS)
        recipe_path(self.recipe)  # a clear error for an unknown recipe


def make_task(kind: str, config: TrainConfig):
    """The task of the one loop that trains ``config``."""
    module, name = TASKS[kind]
    return getattr(importlib.import_module(module), name)(config)


def recipe_path(name: str) -> Path:
    """A bundled recipe's name (training/recipes/<name>.yaml), or the path of a recipe file of your own."""
    if name in recipe_names():
        return RECIPES / f"{name}.yaml"
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return Path(name)
    raise ValueError(f"recipe must be one of {recipe_names()} or a .yaml file, got {name!r}.")


def recipe_stem(name: str) -> str:
    """The folder name of a recipe's runs: its name, or its file's name without .yaml."""
    return recipe_path(name).stem


def guide_reference(text: str) -> tuple[str, int | None]:
    """``"<stage>"`` → (stage, None); ``"<stage>@<step>"`` → (stage, step): that stage's snapshot at the step."""
    stage, _, step = text.partition("@")
    if step and not step.isdigit():
        raise ValueError(f"a guide is '<stage>' or '<stage>@<step>', got {text!r}.")
    return stage, int(step) if step else None


def load_recipe(name: str) -> dict:
    recipe = yaml.safe_load(recipe_path(name).read_text())
    stages = recipe.get("stages") or {}
    for key in ("export", "guide"):
        if key in recipe and guide_reference(str(recipe[key]))[0] not in stages:
            raise ValueError(f"recipe {name!r}: {key} names {recipe[key]!r}, which is not one of its stages.")
    guide_stage, guide_step = guide_reference(str(recipe.get("guide", "")))
    if guide_step and guide_step not in stages[guide_stage].get("config", {}).get("snapshot_steps", ()):
        raise ValueError(
            f"recipe {name!r}: guide {recipe['guide']!r} needs {guide_step} in that stage's snapshot_steps."
        )
    for stage, spec in stages.items():
        if spec.get("task") not in CONFIGS:
            raise ValueError(f"recipe {name!r}, stage {stage!r}: task must be one of {sorted(CONFIGS)}.")
    return recipe


def stage_configs(name: str, output_root: str | Path, overrides: dict[str, dict] | None = None) -> dict:
    """Every stage's config, checked before anything trains: {stage: (task, config)}. ``overrides`` maps a task
    to values that replace the recipe's (the tests' tiny variants)."""
    recipe, root = load_recipe(name), Path(output_root) / recipe_stem(name)
    configs: dict[str, tuple[str, TrainConfig]] = {}
    for stage, spec in recipe["stages"].items():
        values = {
            "resume_from_checkpoint": "latest",
            **spec.get("config", {}),
            **(overrides or {}).get(spec["task"], {}),
        }
        for key, value in values.items():
            reference = STAGE_REFERENCE.fullmatch(value) if isinstance(value, str) else None
            if reference:
                if reference.group(1) not in configs:
                    raise ValueError(f"recipe {name!r}, stage {stage!r}: {key} refers to a later or unknown stage.")
                values[key] = str(export_path(configs[reference.group(1)][1]))
        configs[stage] = (spec["task"], CONFIGS[spec["task"]](output_dir=str(root / stage), **values))
    return configs


def run_recipe(name: str, output_root: str | Path = "runs/recipes", overrides: dict | None = None) -> Path:
    """Train every stage in order, attach the guide, record training.json; returns the model's folder."""
    from .loop import train

    configs = stage_configs(name, output_root, overrides)
    for kind, config in configs.values():
        train(make_task(kind, config))
    return finish_recipe(name, configs)


def guide_folder(name: str, configs: dict) -> tuple[Path, int] | None:
    """Where the recipe's guide is, and the first step of the model's stage at which it exists. ``guide: <stage>``
    is that stage's export, ``guide: <stage>@<step>`` its snapshot at that step; a stage trained before the
    model's exists from step 0, one trained after it only at the end."""
    recipe = load_recipe(name)
    if "guide" not in recipe:
        return None
    stage, step = guide_reference(str(recipe["guide"]))
    model_stage, stages = recipe["export"], list(configs)
    config = configs[stage][1]
    folder = export_path(config) if step is None else snapshot_path(config, step)
    if stage == model_stage:
        return folder, step or 0
    if stages.index(stage) > stages.index(model_stage):
        return folder, configs[model_stage][1].max_steps
    return folder, 0


def _has_guide(model: Path, guide: Path) -> bool:
    """Whether ``model``'s guide_unet already holds the UNet weights of the pipeline folder ``guide``."""
    import torch
    from safetensors.torch import load_file

    weights = "diffusion_pytorch_model.safetensors"
    attached, source = model / "guide_unet" / weights, guide / "unet" / weights
    if not (attached.is_file() and source.is_file()):
        return False
    a, b = load_file(attached), load_file(source)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def finish_recipe(name: str, configs: dict, **facts) -> Path:
    """Attach the guide stage's model (if the recipe has one) to the exported stage's and write its training.json:
    the recipe, its command, every stage's config and ``facts`` (e.g. the CPU-minutes it took)."""
    recipe = load_recipe(name)
    model, guide = export_path(configs[recipe["export"]][1]), guide_folder(name, configs)
    if guide is not None and not _has_guide(model, guide[0]):  # a rerun after the guide changed attaches the new one
        from .attach_guide import attach_guide

        attach_guide(model, guide[0])
    record = {
        "recipe": recipe_stem(name),
        "command": f"python -m training.train --recipe {recipe_stem(name)}",
        "stages": {stage: {"task": kind, **config_to_dict(c)} for stage, (kind, c) in configs.items()},
        **facts,
    }
    (model / "training.json").write_text(json.dumps(record, indent=2))
    return model


def main(argv: list[str] | None = None) -> Path:
    args = parse_config(RecipeRun, argv)
    model = run_recipe(args.recipe, args.output_root)
    print(f"{args.recipe}: trained into {model}")
    return model


if __name__ == "__main__":
    run(main)
