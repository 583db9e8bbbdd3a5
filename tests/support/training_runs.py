"""Tiny training runs for the training tests: the command line of a 20-step DDPM on 8×8 digits, what it logged, and
checkpoints compared tensor for tensor."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
TINY_UNET = [
    "--data",
    "sklearn-digits",
    "--image_size",
    "8",
    "--batch_size",
    "16",
    "--block_out_channels",
    "8,16",
    "--attention_levels",
    "",
    "--layers_per_block",
    "1",
    "--norm_num_groups",
    "4",
    "--num_train_timesteps",
    "50",
    "--sample_every",
    "0",
    "--lr_warmup_steps",
    "2",
    "--learning_rate",
    "3e-3",
    "--sample_steps",
    "4",
    "--ema_decay",
    "0.9",
    "--num_threads",
    "1",
]

STEPS = 20


def ddpm_args(out: Path, *extra: str, steps: int = STEPS, every: int = 10) -> list[str]:
    return [
        "--output_dir",
        str(out),
        *TINY_UNET,
        "--max_steps",
        str(steps),
        "--checkpoint_every",
        str(every),
        "--log_every",
        "1",
        *extra,
    ]


def logged_losses(out: Path) -> list[float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


def checkpoint_tensors(ckpt: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {name: load_file(ckpt / f"{name}.safetensors") for name in ("model", "ema")}


def assert_same_state(a: Path, b: Path) -> None:
    """Model and EMA weights equal tensor for tensor; optimizer and LR-scheduler state files equal byte for byte."""
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    for name in ta:
        assert ta[name].keys() == tb[name].keys()
        for key in ta[name]:
            assert torch.equal(ta[name][key], tb[name][key]), f"{name}:{key} differs between {a} and {b}"
    for name in ("optimizer.bin", "scheduler.bin"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs between {a} and {b}"
    assert json.loads((a / "state.json").read_text())["step"] == json.loads((b / "state.json").read_text())["step"]
