"""Loading refuses what it does not check: shard indices that point anywhere but a safetensors file beside them,
shards that do not match the model, configs whose sizes would exhaust memory, non-finite weights and schedules, and
malformed folders, each with a clear error naming the file (and the field) before anything is allocated or run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from pipelines.folder_checks import MAX_DEPTH, MAX_NUMBER, MAX_PARAMETERS, MAX_SIDE
from pipelines.pipeline_ddpm import DDPMPipeline
from tests.support.tiny_pipelines import CLASSES, build
from tests.support.unsafe import write_pickle

INDEX = "diffusion_pytorch_model.safetensors.index.json"
WEIGHTS = "diffusion_pytorch_model.safetensors"


def sample(pipe) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    return pipe(batch_size=1, num_inference_steps=2, generator=generator, output_type="np").images


@pytest.fixture
def folder(tmp_path) -> Path:
    """A tiny DDPM pipeline folder."""
    build("ddpm")[0].save_pretrained(tmp_path / "pipe")
    return tmp_path / "pipe"


@pytest.fixture
def sharded(tmp_path) -> Path:
    """The same pipeline with its UNet saved in several safetensors shards and an index."""
    build("ddpm")[0].save_pretrained(tmp_path / "sharded", max_shard_size="8KB")
    assert len(list((tmp_path / "sharded" / "unet").glob("*.safetensors"))) > 2
    return tmp_path / "sharded"


def edit_json(path: Path, edit) -> None:
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def first_shard(folder: Path) -> Path:
    return folder / "unet" / sorted(json.loads((folder / "unet" / INDEX).read_text())["weight_map"].values())[0]


def test_a_sharded_model_loads_and_samples_as_the_single_file_one(folder, sharded):
    np.testing.assert_array_equal(
        sample(DDPMPipeline.from_pretrained(sharded)), sample(DDPMPipeline.from_pretrained(folder))
    )


@pytest.mark.parametrize("name", ["weights.json", "README.md", "../elsewhere.safetensors", ".hidden.safetensors"])
def test_an_index_naming_anything_but_a_safetensors_file_beside_it_is_refused_unread(sharded, tmp_path, name):
    marker = tmp_path / "marker-created-by-unpickling"
    target = (sharded / "unet" / name).resolve()
    write_pickle(target, marker, "torch.save")
    shard = first_shard(sharded).name
    edit_json(
        sharded / "unet" / INDEX,
        lambda c: c["weight_map"].update({k: name for k, v in c["weight_map"].items() if v == shard}),
    )
    with pytest.raises(ValueError, match=f"{INDEX}.*{name}.*safetensors"):
        DDPMPipeline.from_pretrained(sharded)
    assert not marker.exists()


def _reshape(tensors: dict) -> None:
    key = sorted(tensors)[0]
    tensors[key] = torch.zeros(*(n + 1 for n in tensors[key].shape))


SHARD_TAMPERINGS = {
    "wrong-shape": (lambda p: _save_edited(p, _reshape), ValueError),
    "extra-tensor": (lambda p: _save_edited(p, lambda t: t.update({"injected.weight": torch.zeros(3)})), ValueError),
    "missing-tensor": (lambda p: _save_edited(p, lambda t: t.pop(sorted(t)[0])), ValueError),
    "integer-weights": (lambda p: _save_edited(p, lambda t: t.update({k: v.int() for k, v in t.items()})), ValueError),
    "garbage-header": (lambda p: p.write_bytes(p.read_bytes()[:8] + b"{not json" + p.read_bytes()[17:]), OSError),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-1]), OSError),
}


def _save_edited(path: Path, edit) -> None:
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


@pytest.mark.parametrize("tampering", list(SHARD_TAMPERINGS))
def test_every_shard_is_checked_like_a_single_file(sharded, tampering):
    tamper, error = SHARD_TAMPERINGS[tampering]
    shard = first_shard(sharded)
    tamper(shard)
    with pytest.raises(error, match=shard.name):
        DDPMPipeline.from_pretrained(sharded)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda c: c.pop("metadata"), "metadata"),  # diffusers: KeyError 'metadata'
        (lambda c: c.update(weight_map={}), "weight_map"),
        (lambda c: c["weight_map"].update({"x": "missing.safetensors"}), "missing.safetensors"),
    ],
    ids=["no-metadata", "empty-map", "missing-shard"],
)
def test_a_malformed_index_is_a_clear_error_naming_it(sharded, edit, words):
    edit_json(sharded / "unet" / INDEX, edit)
    with pytest.raises((ValueError, FileNotFoundError), match=f"{INDEX}.*{words}|{words}.*{INDEX}"):
        DDPMPipeline.from_pretrained(sharded)


# (component, config file, field, value) that would allocate far too much or build far too many modules
HUGE_CONFIGS = {
    "channels": ("unet", "config.json", "block_out_channels", [100_000]),
    "classes": ("unet", "config.json", "num_class_embeds", 1e10),
    "unet-timesteps": ("unet", "config.json", "num_train_timesteps", 10**10),
    "side": ("unet", "config.json", "sample_size", 10**5),
    "depth": ("unet", "config.json", "layers_per_block", 10**6),
    "blocks": ("unet", "config.json", "down_block_types", ["DownBlock2D"] * 1000),
    "scheduler-timesteps": ("scheduler", "scheduler_config.json", "num_train_timesteps", 10**10),
    "vae-dim": ("vae", "config.json", "latent_dim", 10**9),
}


@pytest.mark.parametrize("case", list(HUGE_CONFIGS))
def test_configs_are_bounded_before_anything_is_allocated(tmp_path, case):
    component, config, field, value = HUGE_CONFIGS[case]
    kind = "latent" if component == "vae" else "ddpm"
    build(kind)[0].save_pretrained(tmp_path / "pipe")
    edit_json(tmp_path / "pipe" / component / config, lambda c: c.update({field: value}))
    with pytest.raises(ValueError, match=f"{component}/{config}.*{field}|{field}.*{component}/{config}"):
        CLASSES[kind].from_pretrained(tmp_path / "pipe")


def test_the_bounds_leave_every_bundled_model_16_times_room():
    """The bounds sit far above the bundled models (whose configs pass) and below what exhausts memory."""
    models = Path(__file__).resolve().parents[2] / "models"
    configs = [json.loads(p.read_text()) for p in models.glob("*/*/*config.json")]
    numbers = [v for c in configs for v in c.values() if isinstance(v, int) and not isinstance(v, bool)]
    lists = [len(v) for c in configs for v in c.values() if isinstance(v, list) and len(v) < 100]  # not trained_betas
    assert (
        16 * max(numbers) <= MAX_NUMBER
        and 16 * max(c["sample_size"] for c in configs if "sample_size" in c) <= MAX_SIDE
    )
    assert 4 * max(lists) <= MAX_DEPTH
    parameters = max(p.stat().st_size for p in models.rglob("*.safetensors")) / 4  # fp32 bytes → parameters
    assert 16 * parameters <= MAX_PARAMETERS <= 4 * 10**8  # at most 1.6 GB in fp32


def test_a_model_too_big_in_total_is_refused_from_its_config(tmp_path):
    build("ddpm")[0].save_pretrained(tmp_path / "pipe")
    wide = {
        "block_out_channels": [4096] * 4,
        "down_block_types": ["DownBlock2D"] * 4,
        "up_block_types": ["UpBlock2D"] * 4,
    }
    edit_json(tmp_path / "pipe" / "unet" / "config.json", lambda c: c.update(wide, norm_num_groups=32))
    with pytest.raises(ValueError, match="unet/config.json.*parameters"):
        DDPMPipeline.from_pretrained(tmp_path / "pipe")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_file(folder, bad):
    weights = folder / "unet" / WEIGHTS
    _save_edited(weights, lambda t: t[sorted(t)[0]].view(-1).__setitem__(0, bad))
    with pytest.raises(ValueError, match=f"{weights}.*NaN or infinite"):
        DDPMPipeline.from_pretrained(folder)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"beta_end": 5}, "beta_end"),
        ({"beta_start": -0.1, "beta_schedule": "scaled_linear"}, "beta_start"),
        ({"beta_start": 0.5, "beta_end": 0.1}, "beta_start"),
        ({"trained_betas": [0.1, 1.5]}, "trained_betas"),
        ({"trained_betas": "NaN"}, "NaN"),
        ({"num_train_timesteps": 0}, "num_train_timesteps"),
        ({"num_train_timesteps": 2.5}, "num_train_timesteps"),
    ],
    ids=[
        "beta-end-5",
        "negative-start",
        "start-after-end",
        "beta-above-1",
        "nan-betas",
        "no-steps",
        "fractional-steps",
    ],
)
def test_schedules_that_are_not_noise_schedules_are_refused(folder, changes, words):
    config = folder / "scheduler" / "scheduler_config.json"
    text = json.dumps({**json.loads(config.read_text()), **changes}).replace('"NaN"', "[0.1, NaN]")
    config.write_text(text)
    with pytest.raises(ValueError, match=f"scheduler_config.json.*{words}"):
        DDPMPipeline.from_pretrained(folder)


def _deep(n: int) -> str:
    return "[" * n + "]" * n


MALFORMED = {
    "entry-not-a-list": (
        "model_index.json",
        lambda f: edit_json(f / "model_index.json", lambda c: c.update(unet="diffusers")),
        "unet",
    ),
    "entry-too-short": (
        "model_index.json",
        lambda f: edit_json(f / "model_index.json", lambda c: c.update(unet=["diffusers"])),
        "unet",
    ),
    "entry-not-strings": (
        "model_index.json",
        lambda f: edit_json(f / "model_index.json", lambda c: c.update(unet=[1, 2])),
        "unet",
    ),
    "no-class-name": (
        "model_index.json",
        lambda f: edit_json(f / "model_index.json", lambda c: c.pop("_class_name")),
        "_class_name",
    ),
    "climbing-component": (
        "model_index.json",
        lambda f: edit_json(f / "model_index.json", lambda c: c.update({"../unet": ["diffusers", "UNet2DModel"]})),
        "../unet",
    ),
    "unknown-component": (
        "model_index.json",
        lambda f: (
            shutil.copytree(f / "unet", f / "extra"),
            edit_json(f / "model_index.json", lambda c: c.update(extra=["diffusers", "UNet2DModel"])),
        ),
        "extra",
    ),
    "missing-unet": ("model_index.json", lambda f: edit_json(f / "model_index.json", lambda c: c.pop("unet")), "unet"),
    "not-a-model": (
        "model_index.json",
        lambda f: edit_json(f / "model_index.json", lambda c: c.update(unet=["diffusers", "DiffusionPipeline"])),
        "DiffusionPipeline",
    ),
    "config-a-list": ("unet/config.json", lambda f: (f / "unet" / "config.json").write_text("[1, 2]"), "JSON object"),
    "config-nested-deep": (
        "unet/config.json",
        lambda f: (f / "unet" / "config.json").write_text(_deep(100_000)),
        "nested",
    ),
    "index-nested-deep": ("model_index.json", lambda f: (f / "model_index.json").write_text(_deep(100_000)), "nested"),
    "config-nan": (
        "unet/config.json",
        lambda f: edit_json(f / "unet" / "config.json", lambda c: c.update(dropout=float("nan"))),
        "NaN",
    ),
    "config-huge-file": (
        "unet/config.json",
        lambda f: (f / "unet" / "config.json").write_text(" " * 2_000_000 + "{}"),
        "bytes",
    ),
    "scheduler-config-missing": (
        "scheduler",
        lambda f: (f / "scheduler" / "scheduler_config.json").unlink(),
        "scheduler_config.json",
    ),
    "weights-a-folder": ("unet", lambda f: ((f / "unet" / WEIGHTS).unlink(), (f / "unet" / WEIGHTS).mkdir()), WEIGHTS),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_folders_get_a_clear_error_naming_the_file(folder, case):
    """Cases that gave a KeyError, a RecursionError, random weights or "cannot connect to the Hub" before."""
    where, damage, words = MALFORMED[case]
    damage(folder)
    with pytest.raises((ValueError, FileNotFoundError)) as raised:
        DDPMPipeline.from_pretrained(folder)
    message = str(raised.value)
    assert where in message and words in message, message


def test_our_loader_refuses_trust_remote_code_and_names_the_diffusers_route(folder):
    with pytest.raises(ValueError, match=r"DiffusionPipeline\.from_pretrained\(\.\.\., trust_remote_code=True\)"):
        DDPMPipeline.from_pretrained(folder, trust_remote_code=True)
