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
import warnings
import zipfile
from pathlib import Path

from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from pipelines.checks import is_positive_int

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
    """The checkpoint to resume from: ``which`` itself, or for "latest" the newest complete checkpoint that is
    not damaged (a damaged one is skipped with a warning). None when there is none."""
    if which != "latest":
        path = Path(which)
        if not (path / "state.json").is_file():
            raise ValueError(f"resume_from_checkpoint={which!r} is not a complete checkpoint folder (no state.json).")
        problem = checkpoint_problem(path)
        if problem:
            raise ValueError(f"resume_from_checkpoint={which!r} is damaged: {problem}.")
        return path
    for path in reversed(list_checkpoints(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        warnings.warn(f"skipping damaged checkpoint {path}: {problem}; trying the one before.", stacklevel=2)
    return None


REQUIRED_FILES = ("model.safetensors", "optimizer.bin", "scheduler.bin")


def checkpoint_problem(path: Path) -> str | None:
    """What makes the checkpoint ``path`` unreadable (a missing, truncated or corrupt file), or None. Reads the
    safetensors headers and the torch archives' checksums; unpickles nothing."""
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"state.json is unreadable ({err})"
    wants_ema = isinstance(state, dict) and state.get("ema_optimization_step") is not None
    for name in (*REQUIRED_FILES, *(["ema.safetensors"] if wants_ema else [])):
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        try:
            if name.endswith(".safetensors"):
                with safe_open(file, "pt"):
                    pass
            else:
                with zipfile.ZipFile(file) as archive:
                    bad = archive.testzip()
                if bad:
                    return f"{name} fails its checksum ({bad})"
        except (OSError, zipfile.BadZipFile, SafetensorError) as err:
            return f"{name} is truncated or corrupt ({err})"
    return None


def read_state(path: Path) -> dict:
    """state.json checked: a corrupt one (not what save_checkpoint writes) is refused, never guessed at."""
    state = json.loads((path / "state.json").read_text())
    number = CHECKPOINT_NAME.fullmatch(path.name)

    def refuse(why: str) -> ValueError:
        return ValueError(f"checkpoint {str(path)!r} has a corrupt state.json ({why}); resume from another checkpoint.")

    if not isinstance(state, dict):
        raise refuse(f"not a JSON object: {state!r}")
    step, seconds = state.get("step"), state.get("train_seconds")
    if not is_positive_int(step):
        raise refuse(f"step must be an integer ≥ 1, got {step!r}")
    if number and int(number.group(1)) != step:
        raise refuse(f"step {step} does not match the folder name")
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise refuse(f"train_seconds must be a finite number ≥ 0, got {seconds!r}")
    best = state.get("best")
    if best is not None and not (isinstance(best, (int, float)) and math.isfinite(best)):
        raise refuse(f"best must be a finite number or null, got {best!r}")
    ema_step = state.get("ema_optimization_step")
    if ema_step is not None and not (isinstance(ema_step, int) and ema_step >= 0):
        raise refuse(f"ema_optimization_step must be an integer ≥ 0 or null, got {ema_step!r}")
    return state


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
        for old in checkpoints_to_rotate(out, step, keep):
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def checkpoints_to_rotate(out: Path, step: int, keep: int) -> list[Path]:
    """The checkpoints up to ``step`` older than its ``keep`` newest sound ones (0: keep all). A damaged checkpoint
    newer than those, or one past ``step`` (another run's), neither counts as kept nor is deleted: rotation never
    removes the last good checkpoint because a broken or foreign folder sorts after it. Only the newest are read
    (checked for damage), not every older one at every save."""
    if keep <= 0:
        return []
    ours = [path for path in list_checkpoints(out) if int(CHECKPOINT_NAME.fullmatch(path.name).group(1)) <= step]
    kept = 0
    for index in range(len(ours) - 1, -1, -1):
        kept += checkpoint_problem(ours[index]) is None
        if kept == keep:
            return ours[:index]
    return []


def load_checkpoint(accelerator: Accelerator, ckpt: Path, ema: EMAModel | None) -> tuple[int, float, float]:
    """Restore model, optimizer, LR schedule and EMA from ``ckpt``; returns (step, train seconds, best metric)."""
    state = read_state(ckpt)
    if (ema is None) != (state.get("ema_optimization_step") is None):
        raise ValueError(
            f"checkpoint {ckpt} was written {'without' if ema is not None else 'with'} EMA: resume with the "
            f"ema_decay it was trained with ({'0' if ema is not None else '> 0'})."
        )
    accelerator.load_state(str(ckpt))
    if ema is not None:
        shadow = load_file(ckpt / "ema.safetensors")
        if len(shadow) != len(ema.shadow_params):
            raise ValueError(f"checkpoint {ckpt} holds EMA weights for a different model ({len(shadow)} tensors).")
        for i, p in enumerate(ema.shadow_params):
            p.copy_(shadow[f"shadow.{i}"])
        ema.optimization_step = state["ema_optimization_step"]
    best = state["best"] if state.get("best") is not None else math.inf
    return state["step"], state["train_seconds"], best
