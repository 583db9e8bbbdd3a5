"""Training configuration: one dataclass per model, all sharing :class:`TrainConfig`, read from the command
line and/or a JSON/YAML file (``--config file.yaml``; command-line flags win) by :func:`parse_config`.

Every field is typed and bounded: :func:`training.fields.check_fields` checks each value against its
annotation and the class's ``BOUNDS`` table (NaN and ±∞ are never accepted), then ``check`` tests what
involves several fields. All of it runs when a config is built, before any data, model or file exists.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from .cli import parse_config
from .data import Split
from .fields import Range, check_fields

__all__ = [
    "ClassifierTrainConfig",
    "DDPMTrainConfig",
    "TrainConfig",
    "VAETrainConfig",
    "config_to_dict",
    "export_path",
    "parse_config",
    "snapshot_path",
]

# diffusers' schedules (diffusers.optimization.get_scheduler) and torch's one-cycle policy
LRSchedule = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "one_cycle"
]
REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
FRACTION = Range(0, 1)
STEPS = Range(0)  # a number of steps, 0 allowed
EVERY = Range(1)  # a period in steps


@dataclass
class TrainConfig:
    output_dir: str = "runs/model"  # the run folder: the exported pipeline itself, its checkpoints beside it
    data: str = "mnist"  # mnist | sklearn-digits | sklearn-patches | a folder of images | hf:<dataset>
    image_size: int = 28
    # a folder or Hub data set (decoded lazily, batch by batch): the shorter side is resized to image_size, then
    # a square is cropped, at the centre or at a place drawn per batch (diffusers' --center_crop, or not)
    crop: Literal["random", "center"] = "random"
    flip: Literal["none", "horizontal"] = "none"  # "horizontal": each image mirrored with probability 1/2
    channels: int = 0  # of a folder or Hub data set: 1 grey, 3 RGB, 4 RGBA; 0 = 3 if any image has colour, else 1
    # the fraction of a folder or Hub data set held out for validation (0: every image trains); the named sources
    # (mnist, sklearn-digits, sklearn-patches) keep their fixed split instead
    validation_split: float = 0.0
    dataset_config: str = ""  # a Hub data set's configuration (diffusers' --dataset_config_name)
    cache_dir: str = ""  # where 🤗 datasets caches a folder's index or a Hub download; "" = its default
    dataloader_num_workers: int = 0  # processes decoding a folder or Hub data set (0: in the training process)
    seed: int = 0
    batch_size: int = 64  # global batch per optimizer step (all processes, all accumulation micro-batches)
    max_steps: int = 10_000
    num_epochs: int = (
        0  # > 0: train this many passes over the data instead (max_steps = num_epochs × batches per epoch)
    )
    max_minutes: float = 0.0  # stop (checkpoint, export) after this many minutes; 0 = no limit
    learning_rate: float = 2e-4
    lr_scheduler: LRSchedule = "cosine"
    lr_warmup_steps: int = 200
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0  # 0 = no clipping
    gradient_accumulation_steps: int = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    # "inductor": torch.compile the model (Accelerate's dynamo_backend, as `accelerate launch --dynamo_backend`):
    # more steps per CPU-minute after a one-off compile (docs/training.md#commands)
    dynamo_backend: Literal["no", "inductor"] = "no"
    ema_decay: float = 0.999  # the EMA's decay (its maximum with a warm-up); 0 turns EMA off
    # diffusers' EMAModel warm-up of the decay at optimizer step t: "ratio" min(ema_decay, (1 + t)/(10 + t)),
    # "power" min(ema_decay, 1 − (1 + t/ema_inv_gamma)^−ema_power) (diffusers' --use_ema)
    ema_warmup: Literal["ratio", "power"] = "ratio"
    ema_inv_gamma: float = 1.0
    ema_power: float = 0.75
    augment_shift: int = 0  # random translation by up to this many pixels
    log_every: int = 50
    sample_every: int = 1_000  # 0 = no sample grids
    sample_grid_size: int = 16  # images in a sample grid (diffusers' --eval_batch_size)
    # > 0: these many epochs instead of sample_every / eval_every steps (diffusers' --save_*_epochs)
    save_images_epochs: int = 0
    save_model_epochs: int = 0
    eval_every: int = 0  # 0 = evaluate only at the end
    checkpoint_every: int = 1_000  # 0 = only at the end
    keep_checkpoints: int = 2
    # also export the EMA model at these steps, to <output_dir>/snapshot-<step> (e.g. an autoguidance guide: the
    # same network trained for a third of the steps, at no extra training cost; Karras et al. 2024, §4)
    snapshot_steps: tuple[int, ...] = ()
    resume_from_checkpoint: str | None = None  # a checkpoint folder, or "latest"
    export_dir: str = ""  # where the trained model is exported; "" = output_dir itself (see export_path)
    report_to: Literal["none", "tensorboard"] = "none"  # metrics.jsonl always; tensorboard: scalars and sample grids
    logging_dir: str = "logs"  # the tensorboard logs' folder inside output_dir
    push_to_hub: Literal["no", "at_end"] = "no"  # at_end: publish the exported model with training.hub
    hub_model_id: str = ""  # user/name on the Hugging Face Hub
    hub_visibility: Literal["public", "private"] = "public"
    num_threads: int = 0  # torch threads; 0 = torch's default

    BOUNDS: ClassVar[dict[str, Range]] = {
        "image_size": Range(1, 1024),
        "channels": Range(0, 4),
        "validation_split": Range(0, 1, high_open=True),
        "dataloader_num_workers": Range(0, 256),
        "sample_grid_size": Range(1, 1024),
        "save_images_epochs": Range(0),
        "save_model_epochs": Range(0),
        "seed": Range(0, 2**32 - 1),
        "batch_size": Range(1),
        "max_steps": Range(1),
        "num_epochs": Range(0),
        "max_minutes": Range(0),
        "learning_rate": Range(0, low_open=True),
        "lr_warmup_steps": STEPS,
        "weight_decay": Range(0),
        "adam_beta1": Range(0, 1, high_open=True),
        "adam_beta2": Range(0, 1, high_open=True),
        "adam_epsilon": Range(0, 1, low_open=True),
        "max_grad_norm": Range(0),
        "gradient_accumulation_steps": Range(1, 4096),
        "ema_decay": Range(0, 1, high_open=True),
        "ema_inv_gamma": Range(0, low_open=True),
        "ema_power": Range(0, low_open=True),
        "augment_shift": Range(0, 64),
        "log_every": EVERY,
        "sample_every": STEPS,
        "eval_every": STEPS,
        "checkpoint_every": STEPS,
        "keep_checkpoints": Range(1),
        "snapshot_steps": Range(1),
        "num_threads": Range(0, 4096),
    }
    LENGTHS: ClassVar[dict[str, Range]] = {"snapshot_steps": Range(0, 64)}

    def __post_init__(self):
        """Reject values the loop cannot honour, naming the field, before any data or model is loaded."""
        check_fields(self, self.BOUNDS, self.LENGTHS)
        self.check()

    def check(self) -> None:
        """The conditions that involve several fields."""
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of gradient_accumulation_steps "
                f"({self.gradient_accumulation_steps})."
            )
        if any(step >= self.max_steps for step in self.snapshot_steps):
            raise ValueError(
                f"snapshot_steps {self.snapshot_steps} must lie below max_steps ({self.max_steps}): "
                "the model at max_steps is the export itself."
            )
        if self.augment_shift >= self.image_size:
            raise ValueError(f"augment_shift ({self.augment_shift}) must be below image_size ({self.image_size}).")
        if self.lr_scheduler == "one_cycle" and not 2 <= self.lr_warmup_steps < self.max_steps:
            raise ValueError(
                f"lr_warmup_steps ({self.lr_warmup_steps}) must be in [2, max_steps = {self.max_steps}) "
                "for the one_cycle schedule (it rises over them, then anneals)."
            )
        for name in ("output_dir", "data", "logging_dir"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty.")
        if self.channels == 2:
            raise ValueError("channels must be 1 (grey), 3 (RGB) or 4 (RGBA), or 0 to follow the data; got 2.")
        if self.push_to_hub == "at_end" and not REPO_ID.fullmatch(self.hub_model_id):
            raise ValueError(f"push_to_hub needs hub_model_id as 'user/name', got {self.hub_model_id!r}.")
        self._check_folders()

    def _check_folders(self) -> None:
        out = Path(self.output_dir)
        for name in ("output_dir", "export_dir"):
            path = Path(getattr(self, name))
            if getattr(self, name) and path.exists() and not path.is_dir():
                raise ValueError(f"{name}={str(path)!r} is a file, not a folder.")
        if self.export_dir:
            export = Path(self.export_dir).resolve()
            if export == out.resolve() or export in out.resolve().parents:
                raise ValueError(
                    f"export_dir={self.export_dir!r} would replace the run folder output_dir={self.output_dir!r}: "
                    "choose a folder outside it (or inside it)."
                )
        if self.resume_from_checkpoint is not None and not self.resume_from_checkpoint.strip():
            raise ValueError("resume_from_checkpoint must be 'latest' or a checkpoint folder, got ''.")


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
    split: Split = "train"  # the VAE keeps `val` for early stopping
    eval_every: int = 250

    BOUNDS: ClassVar[dict[str, Range]] = {
        **TrainConfig.BOUNDS,
        "latent_dim": Range(1, 4096),
        "latent_channels": Range(1, 1024),
        "block_out_channels": Range(1, 2048),
        "beta": Range(0),
        "kl_warmup_steps": STEPS,
    }
    LENGTHS: ClassVar[dict[str, Range]] = {**TrainConfig.LENGTHS, "block_out_channels": Range(1, 8)}


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
    attention_levels: tuple[int, ...] = (2,)  # which resolution levels get self-attention (beyond the last: none)
    norm_num_groups: int = 8
    num_train_timesteps: int = 1000
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"] = "linear"
    prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon"
    snr_gamma: float = 0.0  # 0: the notes' unweighted loss; γ > 0: min-SNR-γ loss weights (γ = 5 in Hang et al. 2023)
    sample_steps: int = 50  # DDIM steps for the sample grids
    split: Split = "train+val"

    BOUNDS: ClassVar[dict[str, Range]] = {
        **TrainConfig.BOUNDS,
        "num_classes": Range(0, 10_000),
        "label_dropout": FRACTION,
        "block_out_channels": Range(1, 2048),
        "layers_per_block": Range(1, 16),
        "attention_levels": Range(0, 7),
        "norm_num_groups": Range(1, 2048),
        "num_train_timesteps": Range(2, 100_000),
        "snr_gamma": Range(0),
        "sample_steps": Range(1, 100_000),
    }
    LENGTHS: ClassVar[dict[str, Range]] = {
        **TrainConfig.LENGTHS,
        "block_out_channels": Range(1, 8),
        "attention_levels": Range(0, 8),
    }

    def check(self) -> None:
        super().check()
        if any(channels % self.norm_num_groups for channels in self.block_out_channels):
            raise ValueError(
                f"norm_num_groups ({self.norm_num_groups}) must divide every entry of block_out_channels "
                f"{self.block_out_channels} (group normalisation splits the channels into equal groups)."
            )
        if self.space == "latent" and self.flip != "none":
            raise ValueError(
                "flip (diffusers' --random_flip) cannot apply to space='latent': the latents are encoded once, before "
                "training; add mirrored images to the data, or train in pixel space."
            )
        if self.sample_steps > self.num_train_timesteps:
            raise ValueError(
                f"sample_steps ({self.sample_steps}) must be ≤ num_train_timesteps ({self.num_train_timesteps})."
            )


@dataclass
class ClassifierTrainConfig(TrainConfig):
    """The bundled MNIST classifier's recipe (its held-out accuracy: docs/models.md)."""

    output_dir: str = "runs/classifier"
    split: Split = "train+val"
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

    BOUNDS: ClassVar[dict[str, Range]] = {
        **TrainConfig.BOUNDS,
        "num_classes": Range(2, 10_000),
        "channels": Range(1, 1024),
        "feature_dim": Range(1, 65_536),
        "outlier_weight": Range(0),
    }

    def check(self) -> None:
        super().check()
        if self.push_to_hub != "no":
            raise ValueError("push_to_hub publishes pipelines; the classifier is not one (copy its export instead).")


LEGACY_EXPORT = "model"  # run folders begun before output_dir became the pipeline keep exporting into this subfolder


def export_path(cfg: TrainConfig) -> Path:
    """Where the loop exports the trained model: ``export_dir``; else ``output_dir`` itself, which then loads with
    ``DiffusionPipeline.from_pretrained(output_dir)`` beside its checkpoints, as diffusers' training scripts do. A
    run folder begun before this layout (it holds ``model/``, or its train_config.json predates the layout) keeps
    exporting into ``output_dir/model``, so resuming it changes nothing."""
    if cfg.export_dir:
        return Path(cfg.export_dir)
    out = Path(cfg.output_dir)
    return out / LEGACY_EXPORT if _legacy_layout(out) else out


def _legacy_layout(out: Path) -> bool:
    if (out / LEGACY_EXPORT).is_dir():
        return True
    saved = out / "train_config.json"
    try:
        fields = json.loads(saved.read_text()) if saved.is_file() else None
    except (OSError, ValueError):
        return False
    if not isinstance(fields, dict):
        return False
    pinned = fields.get("export_dir") and Path(fields["export_dir"]) == out / LEGACY_EXPORT  # by an earlier resume
    return "validation_split" not in fields or bool(pinned)  # validation_split: a field of the new layout


def snapshot_path(cfg: TrainConfig, step: int) -> Path:
    """Where the EMA model exported at ``step`` (a step of ``snapshot_steps``) lives."""
    return Path(cfg.output_dir) / f"snapshot-{step}"


def config_to_dict(config: TrainConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
