"""Training configuration: one dataclass per model, all sharing :class:`TrainConfig`, read from the command
line and/or a JSON/YAML file (``--config file.yaml``; command-line flags win)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# diffusers' schedules (diffusers.optimization.get_scheduler) and torch's one-cycle policy
LRSchedule = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "one_cycle"
]


@dataclass
class TrainConfig:
    output_dir: str = "runs/model"
    data: str = "mnist"  # mnist | sklearn-digits | a folder of images | hf:<dataset>
    image_size: int = 28
    seed: int = 0
    batch_size: int = 64  # global batch per optimizer step, before gradient accumulation
    max_steps: int = 10_000
    max_minutes: float = 0.0  # stop (checkpoint, export) after this many minutes; 0 = no limit
    learning_rate: float = 2e-4
    lr_scheduler: LRSchedule = "cosine"
    lr_warmup_steps: int = 200
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    ema_decay: float = 0.999  # 0 turns EMA off
    augment_shift: int = 0  # random translation by up to this many pixels
    log_every: int = 50
    sample_every: int = 1_000  # 0 = no sample grids
    eval_every: int = 0  # 0 = evaluate only at the end
    checkpoint_every: int = 1_000  # 0 = only at the end
    keep_checkpoints: int = 2
    resume_from_checkpoint: str | None = None  # a checkpoint folder, or "latest"
    export_dir: str = ""  # where the trained model is exported; "" = <output_dir>/model
    num_threads: int = 0  # torch threads; 0 = torch's default

    def __post_init__(self):
        """Reject values the loop cannot honour, naming the field, before any data or model is loaded."""
        at_least = {
            "batch_size": 1,
            "max_steps": 1,
            "gradient_accumulation_steps": 1,
            "log_every": 1,
            "keep_checkpoints": 1,
            "image_size": 1,
            "max_minutes": 0,
            "sample_every": 0,
            "eval_every": 0,
            "checkpoint_every": 0,
            "lr_warmup_steps": 0,
            "weight_decay": 0,
            "max_grad_norm": 0,
            "num_threads": 0,
        }
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be ≥ {low}, got {getattr(self, name)}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0 turns EMA off), got {self.ema_decay}.")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of gradient_accumulation_steps "
                f"({self.gradient_accumulation_steps})."
            )


@dataclass
class VAETrainConfig(TrainConfig):
    output_dir: str = "runs/vae"
    latent_type: Literal["vector", "spatial"] = "vector"
    latent_dim: int = 16
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (32, 64)
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    beta: float = 1.0  # β-VAE weight on the KL term
    kl_warmup_steps: int = 0  # β ramps linearly from 0 over these steps
    binarize: Literal["dynamic", "none"] = "dynamic"  # resample binary pixels x ~ Bernoulli(intensity) each batch
    learning_rate: float = 1e-3
    split: str = "train"  # the VAE keeps `val` for early stopping
    eval_every: int = 250


@dataclass
class DDPMTrainConfig(TrainConfig):
    output_dir: str = "runs/ddpm"
    space: Literal["pixel", "latent"] = "pixel"
    vae: str = ""  # the VAE (a saved VAE or VAE-pipeline folder) whose latents a latent DDPM models
    init_from: str = ""  # fine-tune: start from the UNet of a saved pipeline folder (a resumed checkpoint wins)
    num_classes: int = 0  # 0: unconditional; 10: class-conditional with classifier-free guidance
    label_dropout: float = 0.1  # P(label → "no class") while training a conditional model
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 2
    attention_levels: tuple[int, ...] = (2,)  # which resolution levels get self-attention
    norm_num_groups: int = 8
    num_train_timesteps: int = 1000
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"] = "linear"
    prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon"
    snr_gamma: float = 0.0  # 0: the notes' unweighted loss; γ > 0: min-SNR-γ loss weights (γ = 5 in Hang et al. 2023)
    sample_steps: int = 50  # DDIM steps for the sample grids
    split: str = "train+val"

    def __post_init__(self):
        super().__post_init__()
        if self.snr_gamma < 0:
            raise ValueError(f"snr_gamma must be ≥ 0 (0 turns the min-SNR weighting off), got {self.snr_gamma}.")


@dataclass
class ClassifierTrainConfig(TrainConfig):
    """The bundled MNIST classifier's recipe (98.6% held-out accuracy in 1,500 steps)."""

    output_dir: str = "runs/classifier"
    split: str = "train+val"
    num_classes: int = 10
    channels: int = 32  # of the first convolution; the next two have twice as many
    feature_dim: int = 128  # the penultimate layer, used for the Fréchet distance
    outlier_weight: float = 0.5  # weight of the outlier-exposure term (non-digits → uniform)
    batch_size: int = 128
    max_steps: int = 1_500
    learning_rate: float = 2e-3
    lr_scheduler: LRSchedule = "one_cycle"
    lr_warmup_steps: int = 450  # the one-cycle warm-up: 30% of the steps
    weight_decay: float = 1e-4
    max_grad_norm: float = 0.0
    ema_decay: float = 0.0
    augment_shift: int = 2
    sample_every: int = 0
    checkpoint_every: int = 500


def _parse_value(kind, text: str):
    origin = typing.get_origin(kind)
    if origin is tuple:
        return tuple(int(v) for v in text.split(",") if v.strip())
    if kind is bool:
        return text.lower() in ("1", "true", "yes")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return None if text.lower() == "none" else text
    if origin is Literal:
        return text
    return kind(text)


def parse_config(cls: type[TrainConfig], argv: list[str] | None = None) -> TrainConfig:
    """Build ``cls`` from ``--config FILE`` (JSON or YAML) and ``--field value`` flags; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    parser = argparse.ArgumentParser(
        description=f"Train with {cls.__name__}. Every field can be given as --name value."
    )
    parser.add_argument("--config", help="a JSON or YAML file of field: value pairs")
    for f in dataclasses.fields(cls):
        choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is Literal else None
        parser.add_argument(f"--{f.name}", type=str, default=None, choices=choices, help=f"default: {f.default}")
    args = parser.parse_args(argv)
    values: dict = {}
    if args.config:
        values.update(load_config_file(args.config))
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown config keys in {args.config}: {sorted(unknown)}")
    for f in dataclasses.fields(cls):
        text = getattr(args, f.name)
        if text is not None:
            values[f.name] = _parse_value(hints[f.name], text)
    for name, value in values.items():
        if typing.get_origin(hints[name]) is tuple and isinstance(value, list):
            values[name] = tuple(value)
    return cls(**values)


def load_config_file(path: str) -> dict:
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


def config_to_dict(config: TrainConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
