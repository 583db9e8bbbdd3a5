"""diffusers' training-script names for the concepts our configs share (from
``diffusers/examples/unconditional_image_generation/train_unconditional.py``): accepted as flags and as
config-file keys by the one reader (:mod:`training.cli`), and translated to our fields.

``--train_batch_size`` is diffusers' batch PER DEVICE and per accumulation micro-step; our ``batch_size`` is
the global batch per optimizer step, so batch_size = train_batch_size × processes × gradient_accumulation_steps
(the processes counted from the launcher's ``WORLD_SIZE``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Alias:
    """A diffusers name for ``target``: a value flag (``--resolution 32``), with ``convert`` applied to the value,
    or, with ``switch``, an on/off flag (``--use_ema``) that sets fields (``off`` from a config file's false)."""

    target: str
    convert: Callable[[Any], Any] | None = None
    switch: dict[str, Any] = field(default_factory=dict)
    off: dict[str, Any] = field(default_factory=dict)


DIFFUSERS_ALIASES: dict[str, Alias] = {
    "resolution": Alias("image_size"),
    "train_batch_size": Alias("batch_size"),  # per device: converted by global_batch_size
    "use_ema": Alias("ema_warmup", switch={"ema_warmup": "power"}, off={"ema_decay": 0.0}),
    "ema_max_decay": Alias("ema_decay"),
    "checkpointing_steps": Alias("checkpoint_every"),
    "checkpoints_total_limit": Alias("keep_checkpoints"),
    "logger": Alias("report_to"),
    "hub_private_repo": Alias("hub_visibility", switch={"hub_visibility": "private"}, off={"hub_visibility": "public"}),
    "dataset_name": Alias("data", convert=lambda name: f"hf:{name}"),
    "train_data_dir": Alias("data"),
    "adam_weight_decay": Alias("weight_decay"),
    "ddpm_num_steps": Alias("num_train_timesteps"),
    "ddpm_beta_schedule": Alias("beta_schedule"),
    "ddpm_num_inference_steps": Alias("sample_steps"),
    "center_crop": Alias("crop", switch={"crop": "center"}, off={"crop": "random"}),
    "random_flip": Alias("flip", switch={"flip": "horizontal"}, off={"flip": "none"}),
    "eval_batch_size": Alias("sample_grid_size"),
    "dataset_config_name": Alias("dataset_config"),
}
# diffusers flags that change nothing here, as there: accepted (a switch, or a value) and ignored
IGNORED = {
    "overwrite_output_dir": "diffusers' script declares it and never reads it",
    "local_rank": "Accelerate reads the process's rank from the launcher (LOCAL_RANK), as diffusers' script does",
}
# diffusers flags that cannot apply here: refused with the reason, as a usage error
REFUSED = {
    "model_config_name_or_path": "the UNet is built from --block_out_channels, --layers_per_block and "
    "--attention_levels (or fine-tuned from a saved one with --init_from)",
    "enable_xformers_memory_efficient_attention": "xformers is not a dependency; diffusers' UNet already uses "
    "PyTorch's scaled_dot_product_attention",
    "hub_token": "a token on the command line would be saved in train_config.json; log in with `hf auth login` "
    "or set HF_TOKEN",
    "use_auth_token": "log in with `hf auth login` or set HF_TOKEN instead",
}
REFUSED_VALUES = {  # (diffusers flag, value) → why
    ("logger", "wandb"): "Weights & Biases is not a dependency of this project; use --logger tensorboard "
    "(metrics.jsonl is always written)",
}
# fields that diffusers spells the same but uses as on/off flags: given without a value they take this one
SWITCH_FIELDS = {"push_to_hub": "at_end"}


def aliases_for(fields: set[str]) -> dict[str, Alias]:
    """The aliases whose fields ``fields`` has (a VAE config has no ddpm_num_steps)."""
    return {name: a for name, a in DIFFUSERS_ALIASES.items() if a.target in fields and name not in fields}


def launcher_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def global_batch_size(per_device: int, gradient_accumulation_steps: int, processes: int) -> int:
    """Our global batch from diffusers' per-device batch: train_batch_size × processes × accumulation steps."""
    return per_device * processes * gradient_accumulation_steps
