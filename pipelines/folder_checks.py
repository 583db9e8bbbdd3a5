"""Checks on a saved pipeline folder, made before anything in it is loaded; each failure names the file and field.

What is checked: no pickle files; model_index.json and every config are small JSON objects whose numbers are finite
and bounded (before anything is allocated); a model's safetensors (one file or the shards of an index) hold
exactly the tensors its class has, with their shapes and float dtypes; a schedule's betas lie in (0, 1).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import torch

from .checks import finite_float, is_positive_int

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MODEL_CONFIG = "config.json"
SCHEDULER_CONFIG = "scheduler_config.json"
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")

# Bounds on a config, checked before anything is allocated: far above this project's MNIST-sized models, so that
# larger runs of the same code on a GPU load, and far below configs that ask for gigabytes (10^10 classes).
MAX_CONFIG_BYTES = 1_000_000  # a config is under 2 kB; a trained_betas list of 65,536 values is under 1 MB
MAX_NUMBER = 65_536  # any number in a config (channels, dims, classes, timesteps): 64× the largest bundled one
MAX_SIDE = 1024  # sample_size, the side of the sampled images or latents (latents of N × 4 × 1024² are 16 MB each)
MAX_DEPTH = 16  # layers per block and the length of block lists: a UNet builds that many modules per entry
MAX_PARAMETERS = 100_000_000  # 400 MB in fp32: far above the bundled models, far below what exhausts memory
DEPTH_FIELDS = ("layers_per_block",)
BLOCK_LISTS = ("block_out_channels", "down_block_types", "up_block_types")


def read_json(path: Path) -> dict:
    """A JSON object from a small file; NaN/Infinity, deep nesting and huge files are refused naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path} is {path.stat().st_size:,} bytes; a config is at most {MAX_CONFIG_BYTES:,}.")

    def refuse(constant: str):
        raise ValueError(f"{path} holds {constant}; numbers in a config must be finite.")

    try:
        value = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be a config.") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}.")
    return value


def _numbers(value, field: str):
    """(field, number) for each number in a config value, lists and nested objects included."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield field, value
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{field}.{key}")


def check_config_bounds(config: dict, path: Path) -> None:
    """Every number finite and within MAX_NUMBER; sample_size within MAX_SIDE; block counts within MAX_DEPTH."""
    for field, value in config.items():
        for name, number in _numbers(value, field):
            if not math.isfinite(number) or abs(number) > MAX_NUMBER:
                raise ValueError(f"{path}: {name} = {number} is out of bounds (|value| ≤ {MAX_NUMBER:,}).")
    limits = {"sample_size": MAX_SIDE, **dict.fromkeys(DEPTH_FIELDS, MAX_DEPTH)}
    for field, limit in limits.items():
        for name, number in _numbers(config.get(field), field):
            if number > limit:
                raise ValueError(f"{path}: {name} = {number} is larger than {limit}.")
    for field in BLOCK_LISTS:
        if isinstance(config.get(field), list) and len(config[field]) > MAX_DEPTH:
            raise ValueError(f"{path}: {field} has {len(config[field])} entries; at most {MAX_DEPTH}.")


def check_schedule_config(config: dict, path: Path) -> None:
    """A noise schedule: 1 ≤ num_train_timesteps, and betas (given, or from beta_start ≤ beta_end) in (0, 1)."""
    steps = config.get("num_train_timesteps", 1)
    if not is_positive_int(steps):
        raise ValueError(f"{path}: num_train_timesteps must be a positive integer, got {steps!r}.")
    betas = config.get("trained_betas")
    if betas is not None:
        if not isinstance(betas, list) or not all(_is_probability(b) for b in betas):
            raise ValueError(f"{path}: trained_betas must be a list of numbers in (0, 1).")
        return
    start, end = config.get("beta_start", 1e-4), config.get("beta_end", 0.02)
    if not (_is_probability(start) and _is_probability(end) and start <= end):
        raise ValueError(
            f"{path}: beta_start = {start} and beta_end = {end} must satisfy 0 < beta_start ≤ beta_end < 1."
        )


def _is_probability(value) -> bool:
    return finite_float(value) is not None and 0 < value < 1


def check_betas(scheduler, path: Path) -> None:
    """The constructed schedule itself: every β_t finite and in (0, 1] (1 only for a zero-terminal-SNR rescale)."""
    betas = getattr(scheduler, "betas", None)
    if betas is not None and not bool(((betas > 0) & (betas <= 1)).all()):
        raise ValueError(f"{path}: the schedule's betas are not all in (0, 1]; this config is not a noise schedule.")


def expected_tensors(model_class: type, config: dict, path: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """name → (shape, dtype) of the model the config describes, built on the meta device (nothing allocated)."""
    try:
        with torch.device("meta"):
            model = model_class.from_config(config)
    except Exception as error:  # an inconsistent config: say which file, whatever the class raised
        raise ValueError(f"{path} does not describe a valid {model_class.__name__}: {error}") from None
    tensors = {name: (tuple(t.shape), t.dtype) for name, t in model.state_dict().items()}
    count = sum(math.prod(shape) for shape, _ in tensors.values())
    if count > MAX_PARAMETERS:
        raise ValueError(f"{path} describes {count:,} parameters; at most {MAX_PARAMETERS:,} are loaded.")
    return tensors


def weight_files(component_folder: Path, variant: str | None = None) -> list[Path]:
    """The safetensors files diffusers will read for a component: each shard its index names (the index wins, as
    in diffusers), else the single file. The index may only name .safetensors files beside it."""
    from diffusers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFETENSORS_WEIGHTS_NAME, _add_variant

    single = component_folder / _add_variant(SAFETENSORS_WEIGHTS_NAME, variant)
    index = component_folder / _add_variant(SAFE_WEIGHTS_INDEX_NAME, variant)
    if not index.is_file():
        if not single.is_file():
            raise FileNotFoundError(f"component folder {str(component_folder)!r} has no {single.name} weights.")
        return [single]
    content = read_json(index)
    weight_map = content.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or not isinstance(content.get("metadata"), dict):
        raise ValueError(f"{index} must hold a weight_map (tensor name → shard file) and a metadata object.")
    shards = sorted({str(shard) for shard in weight_map.values()})
    for shard in shards:
        if Path(shard).name != shard or not shard.endswith(".safetensors") or shard.startswith("."):
            raise ValueError(f"{index} names the shard {shard!r}; shards must be .safetensors files beside it.")
        if not (component_folder / shard).is_file():
            raise FileNotFoundError(f"{index} names the shard {shard!r}, which is not in {component_folder}.")
    if not all(isinstance(shard, str) for shard in weight_map.values()):
        raise ValueError(f"{index}: every weight_map value must be a shard file name.")
    return [component_folder / shard for shard in shards]


def saved_tensors(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """name → (shape, dtype) from a safetensors header; an unreadable file is an OSError naming it."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            names = file.keys()  # a safetensors file handle is not iterable: keys() lists its tensors
            return {key: (tuple(file.get_slice(key).get_shape()), file.get_slice(key).get_dtype()) for key in names}
    except Exception as error:  # safetensors raises its own error type for a bad header or a short file
        raise OSError(f"{path} is not a readable safetensors file: {error}") from None


def check_weights(files: list[Path], expected: dict, model_name: str) -> None:
    """The files hold exactly the expected tensors, each once, with its shape, and a float dtype where it is float."""
    saved, where = {}, {}
    for path in files:
        for key, value in saved_tensors(path).items():
            if key in saved:
                raise ValueError(f"tensor {key!r} is in both {where[key]} and {path}.")
            saved[key], where[key] = value, path
    missing, extra = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
    wrong = sorted(
        key
        for key in set(expected) & set(saved)
        if saved[key][0] != expected[key][0]
        or (expected[key][1].is_floating_point and saved[key][1] not in FLOAT_DTYPES)
    )
    if missing or extra or wrong:
        named = ", ".join(str(p) for p in files)
        raise ValueError(
            f"{named} does not match its model {model_name}: missing tensors {missing[:5]}, "
            f"unexpected tensors {extra[:5]}, wrong shape or dtype {wrong[:5]}."
        )


def check_finite(module: torch.nn.Module, files: list[Path]) -> None:
    """Loaded float weights must be finite: a NaN or Inf weight turns every sample into NaN."""
    bad = sorted(
        name for name, t in module.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
    )
    if bad:
        named = ", ".join(str(p) for p in files)
        raise ValueError(f"{named} holds NaN or infinite values in tensors {bad[:5]}.")


# a training run's checkpoints beside the pipeline it exports (diffusers' layout): Accelerate's training state, which
# no pipeline loader reads
TRAINING_STATE = re.compile(r"checkpoint-\d+(\.tmp)?")


def find_pickles(folder: Path) -> list[str]:
    """Pickle files anywhere in ``folder`` but its training checkpoints."""
    found = (p.relative_to(folder) for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
    return sorted(str(p) for p in found if not TRAINING_STATE.fullmatch(p.parts[0]))


def check_component_name(name: str, index_file: Path) -> None:
    """A component is a sub-folder: its name may not climb out of the pipeline folder."""
    if not name or name != Path(name).name or name.startswith(".") or os.sep in name:
        raise ValueError(f"{index_file}: component name {name!r} is not a plain folder name.")
