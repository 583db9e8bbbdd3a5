"""Checkpoints of the one training loop: ``checkpoint-<step>/`` folders written atomically with
``Accelerator.save_state`` (safetensors weights) plus the EMA weights and a ``state.json``, found again for
``--resume_from_checkpoint latest`` and loaded back.

A checkpoint is written into ``checkpoint-<step>.tmp/`` and renamed only once complete; ``state.json`` is
written last, so a folder without it is an interrupted save and never resumed from.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

CHECKPOINT_PREFIX = "checkpoint-"
TMP_SUFFIX = ".tmp"
CHECKPOINT_NAME = re.compile(rf"{CHECKPOINT_PREFIX}(\d+)")


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2))


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. A folder still being written carries TMP_SUFFIX and is ignored."""
    found = []
    for path in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*"):
        name = CHECKPOINT_NAME.fullmatch(path.name)
        if name and path.is_dir() and (path / "state.json").is_file():
            found.append((int(name.group(1)), path))
    return [path for _, path in sorted(found)]


def resolve_checkpoint(output_dir: Path, which: str) -> Path | None:
    if which == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(which)
    if not (path / "state.json").is_file():
        raise ValueError(f"resume_from_checkpoint={which!r} is not a complete checkpoint folder (no state.json).")
    return path


def save_checkpoint(
    accelerator: Accelerator, out: Path, step: int, seconds: float, best: float, ema: EMAModel | None, keep: int
) -> None:
    """Write checkpoint-<step> atomically: into a .tmp folder first, renamed only once complete."""
    final = out / f"{CHECKPOINT_PREFIX}{step}"
    tmp = out / f"{CHECKPOINT_PREFIX}{step}{TMP_SUFFIX}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        if ema is not None:
            save_file(
                {f"shadow.{i}": p.detach().contiguous() for i, p in enumerate(ema.shadow_params)},
                tmp / "ema.safetensors",
            )
        state = {
            "step": step,
            "train_seconds": seconds,
            "best": best if math.isfinite(best) else None,
            "ema_optimization_step": ema.optimization_step if ema is not None else None,
            "num_processes": accelerator.num_processes,
        }
        write_json(tmp / "state.json", state)  # written last: its presence marks a complete checkpoint
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in list_checkpoints(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_checkpoint(accelerator: Accelerator, ckpt: Path, ema: EMAModel | None) -> tuple[int, float, float]:
    """Restore model, optimizer, LR schedule and EMA from ``ckpt``; returns (step, train seconds, best metric)."""
    accelerator.load_state(str(ckpt))
    state = json.loads((ckpt / "state.json").read_text())
    if ema is not None:
        shadow = load_file(ckpt / "ema.safetensors")
        if len(shadow) != len(ema.shadow_params):
            raise ValueError(f"checkpoint {ckpt} holds EMA weights for a different model ({len(shadow)} tensors).")
        for i, p in enumerate(ema.shadow_params):
            p.copy_(shadow[f"shadow.{i}"])
        ema.optimization_step = state["ema_optimization_step"]
    best = state["best"] if state.get("best") is not None else math.inf
    return state["step"], state["train_seconds"], best
