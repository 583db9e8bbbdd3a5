"""Every bundled model has a recipe (training/recipes/<name>.yaml) that trains it from scratch in one command:
each recipe parses, its stages are the training commands recorded in the model's training.json, and a tiny
variant of each runs end to end (guide attached where the model has one, the recipe recorded in training.json).
Two kinds of recipe train models that are not bundled: the colour ones (sklearn-patches, docs/training.md#colour)
and the fast ones ("<model>-fast", the time-to-quality benchmark's, docs/time-to-quality.md)."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest
import torch
import yaml

from training import train as recipes
from training.config import ClassifierTrainConfig, DDPMTrainConfig, VAETrainConfig, parse_config

MODELS = Path(__file__).resolve().parents[2] / "models"
SCRIPTS = {"training.train_vae": ("vae", VAETrainConfig), "training.train_ddpm": ("ddpm", DDPMTrainConfig)}
# where a recipe may differ from a recorded command: folders, threads, and the budgets a recipe replaces by the
# step at which the budget stopped a constant-LR run (explained in each recipe's comment)
NOT_COMPARED = ("output_dir", "vae", "init_from", "resume_from_checkpoint", "num_threads", "max_minutes", "max_steps")
TINY = {
    "vae": {"block_out_channels": [8, 8], "latent_dim": 4, "batch_size": 32, "eval_every": 0},
    "ddpm": {"block_out_channels": [8], "layers_per_block": 1, "attention_levels": [], "norm_num_groups": 4,
             "num_train_timesteps": 50, "sample_steps": 4, "batch_size": 16, "lr_warmup_steps": 1},
    "classifier": {"channels": 8, "feature_dim": 16, "batch_size": 32, "max_steps": 3, "lr_warmup_steps": 2},
}  # fmt: skip
COLOUR = ("colour-latent", "colour-pixel")  # recipes of models trained in docs/training.md, not bundled
FAST = tuple(name for name in recipes.recipe_names() if name.endswith("-fast"))  # the time-to-quality benchmark's
COMMON = {"data": "sklearn-digits", "image_size": 8, "max_steps": 2, "max_minutes": 0, "checkpoint_every": 0}
COMMON |= {"sample_every": 0, "num_threads": 1}  # each stage keeps its own mixed_precision


# a recipe's own record differs only in where it ran (its folders and thread count)
FOLDERS_AND_THREADS = ("output_dir", "vae", "init_from", "export_dir", "num_threads")


def comparable(config, ignored: tuple[str, ...] = NOT_COMPARED) -> dict:
    """The config's fields, each ignored one at its default (not a config again: a default max_steps may lie below a
    stage's snapshot_steps)."""
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.name in ignored}
    return {**dataclasses.asdict(config), **defaults}


def recorded_configs(model: str) -> list[tuple[str, dict]]:
    """The training commands in models/<model>/training.json, as (task, comparable config)."""
    info = json.loads((MODELS / model / "training.json").read_text())
    found = []
    for line in (info.get("command", "") + "\n" + info.get("vae_command", "")).splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] == ["python", "-m"] and words[2] in SCRIPTS:
            kind, cls = SCRIPTS[words[2]]
            found.append((kind, comparable(parse_config(cls, words[3:]))))
    return found


def recorded_stages(record: dict) -> list[tuple[str, object]]:
    """The stages a recipe's training.json records, as (task, config)."""
    found = []
    for values in record["stages"].values():
        kind, values = values["task"], {k: v for k, v in values.items() if k != "task"}
        found.append(
            (kind, recipes.CONFIGS[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}))
        )
    return found


def test_every_bundled_model_has_a_recipe():
    bundled = [name for name in recipes.recipe_names() if name not in COLOUR + FAST]
    assert bundled == sorted(p.name for p in MODELS.iterdir() if p.is_dir())
    assert FAST and all(name.removesuffix("-fast") in bundled for name in FAST)  # a fast recipe of a bundled model


@pytest.mark.parametrize("name", recipes.recipe_names())
def test_each_recipe_parses_and_its_stages_are_the_recorded_commands(name, tmp_path):
    stages = recipes.stage_configs(name, tmp_path)
    ours = [(kind, comparable(config)) for kind, config in stages.values()]
    record_file = MODELS / name / "training.json"
    if record_file.is_file() and "recipe" in json.loads(record_file.read_text()):  # trained by this recipe
        record = json.loads(record_file.read_text())
        assert record["recipe"] == name and record["command"] == f"python -m training.train --recipe {name}"
        mine = [(kind, comparable(config, FOLDERS_AND_THREADS)) for kind, config in stages.values()]
        assert [(kind, comparable(config, FOLDERS_AND_THREADS)) for kind, config in recorded_stages(record)] == mine
    elif name in COLOUR:
        assert all(config.data == "sklearn-patches" and config.image_size == 32 for _, config in stages.values())
    elif name in FAST:  # the same networks as the bundled model's recipe, trained for fewer steps
        bundled = recipes.stage_configs(name.removesuffix("-fast"), tmp_path)
        networks = ("block_out_channels", "layers_per_block", "latent_channels", "num_classes", "space")
        for stage, (kind, config) in stages.items():  # each stage has its namesake in the bundled recipe
            bundled_kind, bundled_config = bundled[stage]
            assert kind == bundled_kind and config.max_steps <= bundled_config.max_steps
            assert all(getattr(config, k, None) == getattr(bundled_config, k, None) for k in networks)
    elif record_file.is_file():
        recorded = recorded_configs(name)
        assert recorded, f"no training command found in models/{name}/training.json"
        assert all(stage in recorded for stage in ours) and all(command in ours for command in recorded)
    else:  # the classifier records metrics only: its recipe is ClassifierTrainConfig's defaults
        assert ours == [("classifier", comparable(ClassifierTrainConfig()))]
    for stage, (_, config) in stages.items():
        assert config.output_dir == str(tmp_path / name / stage) and config.resume_from_checkpoint == "latest"


def test_a_recipe_refers_only_to_earlier_stages(tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text("export: a\nstages:\n  a: {task: ddpm, config: {init_from: '{b}'}}\n")
    monkeypatch.setattr(recipes, "RECIPES", tmp_path)
    with pytest.raises(ValueError, match="init_from refers to a later or unknown stage"):
        recipes.stage_configs("bad", tmp_path)
    with pytest.raises(ValueError, match="recipe must be one of"):
        recipes.main(["--recipe", "nonexistent"])


def tiny_recipe(name: str, folder: Path) -> str:
    """The recipe itself; or, where a stage keeps snapshots (which must lie below the tiny max_steps), a copy of it in
    ``folder`` with each such stage's snapshot at step 1 (and the guide, where it is a snapshot, taken there)."""
    recipe = recipes.load_recipe(name)
    snapshotting = [spec for spec in recipe["stages"].values() if spec.get("config", {}).get("snapshot_steps")]
    if not snapshotting:
        return name
    for spec in snapshotting:
        spec["config"]["snapshot_steps"] = [1]
    stage, step = recipes.guide_reference(str(recipe.get("guide", "")))
    if step is not None:
        recipe["guide"] = f"{stage}@1"
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("name", recipes.recipe_names())
def test_a_tiny_variant_of_each_recipe_runs_end_to_end(name, tmp_path):
    recipe = recipes.load_recipe(name)
    recipe_file = tiny_recipe(name, tmp_path)
    model = recipes.run_recipe(recipe_file, tmp_path, overrides={kind: COMMON | tiny for kind, tiny in TINY.items()})
    record = json.loads((model / "training.json").read_text())
    assert record["command"] == f"python -m training.train --recipe {name}"
    assert list(record["stages"]) == list(recipe["stages"])
    if name == "mnist-classifier":
        from pipelines.digit_classifier import load_classifier

        assert load_classifier(model)(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
        return
    from training.evaluate import load_pipeline

    pipe = load_pipeline(model)
    assert ("guide" in recipe) == (getattr(pipe, "guide_unet", None) is not None)
    pipe.set_progress_bar_config(disable=True)
    kwargs = {"num_inference_steps": 2} if hasattr(pipe, "unet") else {}
    kwargs |= {"class_labels": [1]} if name.startswith("ddpm-conditional") else {}
    images = pipe(batch_size=1, generator=torch.Generator().manual_seed(0), output_type="pt", **kwargs).images
    assert images.shape == (1, 1, 8, 8) and torch.isfinite(images).all()


SNAPSHOT_GUIDE = """
export: ddpm
guide: ddpm@{guide_step}
stages:
  ddpm:
    task: ddpm
    config: {{snapshot_steps: [2], max_steps: 4}}
"""


def test_a_guide_can_be_the_models_own_earlier_snapshot(tmp_path):
    recipe = tmp_path / "own-guide.yaml"
    recipe.write_text(SNAPSHOT_GUIDE.format(guide_step=2))
    tiny = COMMON | TINY["ddpm"] | {"max_steps": 4}
    model = recipes.run_recipe(str(recipe), tmp_path / "runs", overrides={"ddpm": tiny})
    from training.evaluate import load_pipeline

    snapshot = load_pipeline(tmp_path / "runs" / "own-guide" / "ddpm" / "snapshot-2")
    pipe = load_pipeline(model)
    assert {**pipe.guide_unet.config, "_name_or_path": ""} == {**snapshot.unet.config, "_name_or_path": ""}
    guide, early, final = (m.state_dict() for m in (pipe.guide_unet, snapshot.unet, pipe.unet))
    assert all(torch.equal(guide[k], early[k]) for k in guide)  # the guide is the snapshot at step 2 …
    assert not all(torch.equal(guide[k], final[k]) for k in guide)  # … not the model at step 4
    configs = recipes.stage_configs(str(recipe), tmp_path / "runs", {"ddpm": tiny})
    assert recipes.guide_folder(str(recipe), configs) == (tmp_path / "runs" / "own-guide" / "ddpm" / "snapshot-2", 2)


def test_a_guide_snapshot_must_be_one_the_stage_exports(tmp_path):
    recipe = tmp_path / "bad-guide.yaml"
    recipe.write_text(SNAPSHOT_GUIDE.format(guide_step=3))
    with pytest.raises(ValueError, match="needs 3 in that stage's snapshot_steps"):
        recipes.load_recipe(str(recipe))
    with pytest.raises(ValueError, match="snapshot_steps .* must lie below max_steps"):
        DDPMTrainConfig(snapshot_steps=(4,), max_steps=4)


def test_a_recipe_run_again_attaches_its_own_guide_over_a_stale_one(tmp_path):
    """After a recipe's guide changed, running it again must not keep the guide the last run attached."""
    from safetensors.torch import load_file, save_file

    recipe_file = tiny_recipe("ddpm-latent-fast", tmp_path)
    overrides = {kind: COMMON | tiny for kind, tiny in TINY.items()}
    model = recipes.run_recipe(recipe_file, tmp_path, overrides=overrides)
    weights = model / "guide_unet" / "diffusion_pytorch_model.safetensors"
    wanted = load_file(weights)
    save_file({name: tensor + 1 for name, tensor in wanted.items()}, weights)  # another guide, attached before
    recipes.run_recipe(recipe_file, tmp_path, overrides=overrides)  # every stage done: only finishing runs
    again = load_file(weights)
    assert again.keys() == wanted.keys() and all(torch.equal(again[k], wanted[k]) for k in wanted)
