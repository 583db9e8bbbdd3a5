"""The one training loop every model uses, through Accelerate.

A model plugs in as a :class:`TrainingTask` (its network, its loss, how to export it as a pipeline); the
loop owns the rest: mixed precision, gradient accumulation, EMA (diffusers' ``EMAModel``), LR warm-up and
decay (diffusers' ``get_scheduler``), atomic checkpoints with ``Accelerator.save_state`` (safetensors),
``--resume_from_checkpoint latest``, sample grids, a JSON-lines metrics log (and TensorBoard if installed),
early stopping on a validation metric, a NaN guard and a wall-clock budget.

Resuming is exact: batches, noise and augmentation are pure functions of (seed, batch number)
(:class:`training.data.BatchSampler`), so a run killed and resumed from a checkpoint ends with the weights
an uninterrupted run would have had.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .config import TrainConfig, config_to_dict
from .data import BatchSampler, ImageData, random_shift

CHECKPOINT_PREFIX = "checkpoint-"
TMP_SUFFIX = ".tmp"


class TrainingTask:
    """What a model contributes to the loop. Subclasses set ``data`` and implement the methods."""

    config: TrainConfig
    data: ImageData
    selection_metric: str | None = None  # an evaluate() key, lower is better: export the best model by it

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def loss(
        self, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, step: int
    ) -> torch.Tensor:
        raise NotImplementedError

    def export(self, model: torch.nn.Module, path: Path) -> None:
        """Save ``model`` (EMA weights already applied) as a pipeline folder."""
        raise NotImplementedError

    def sample_grid(self, model: torch.nn.Module, generator: torch.Generator) -> torch.Tensor | None:
        """A few samples (N, C, H, W) in [0, 1] for the progress grid, or None."""
        return None

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return {}


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. A folder still being written carries TMP_SUFFIX and is ignored."""
    found = []
    for p in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*"):
        if p.is_dir() and not p.name.endswith(TMP_SUFFIX) and (p / "state.json").is_file():
            found.append(p)
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def resolve_checkpoint(output_dir: Path, which: str) -> Path | None:
    if which == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(which)
    if not (path / "state.json").is_file():
        raise ValueError(f"resume_from_checkpoint={which!r} is not a complete checkpoint folder (no state.json).")
    return path


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2))


def train(task: TrainingTask) -> Path:
    """Train ``task``; returns the folder of the exported pipeline (``output_dir/model``)."""
    cfg = task.config
    out = Path(cfg.output_dir)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    log_with = "tensorboard" if _has_tensorboard() else None
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        log_with=log_with,
        project_dir=str(out),
    )
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "train_config.json", config_to_dict(cfg))
    if log_with:
        accelerator.init_trackers("logs", config={k: str(v) for k, v in config_to_dict(cfg).items()})

    torch.manual_seed(cfg.seed)  # the initial weights
    model = task.build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    lr_scheduler = get_scheduler(
        cfg.lr_scheduler,
        optimizer,
        num_warmup_steps=cfg.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=cfg.max_steps * accelerator.num_processes,
    )
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    ema = EMAModel(accelerator.unwrap_model(model).parameters(), decay=cfg.ema_decay) if cfg.ema_decay > 0 else None

    step, seconds_before, best = 0, 0.0, math.inf
    if cfg.resume_from_checkpoint:
        ckpt = resolve_checkpoint(out, cfg.resume_from_checkpoint)
        if ckpt is None:
            accelerator.print(f"No checkpoint in {out}; starting from scratch.")
        else:
            step, seconds_before, best = _load_checkpoint(accelerator, ckpt, ema)
            accelerator.print(f"Resumed from {ckpt} at step {step}.")

    micro_batch = cfg.batch_size // cfg.gradient_accumulation_steps
    sampler = BatchSampler(len(task.data), micro_batch, cfg.seed, accelerator.process_index, accelerator.num_processes)
    metrics_path = out / "metrics.jsonl"
    start = time.perf_counter()
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not accelerator.is_local_main_process, desc=out.name)
    last_log, images_seen = time.perf_counter(), 0
    while step < cfg.max_steps:
        model.train()
        for micro in range(cfg.gradient_accumulation_steps):
            batch_number = step * cfg.gradient_accumulation_steps + micro
            idx = sampler.indices(batch_number)
            generator = sampler.generator(batch_number)
            images = random_shift(task.data.images[idx], cfg.augment_shift, generator).to(accelerator.device)
            labels = task.data.labels[idx].to(accelerator.device)
            with accelerator.accumulate(model):
                with accelerator.autocast():  # the forward pass only: backward and the optimizer run outside autocast
                    loss = task.loss(model, images, labels, generator, step)
                if not torch.isfinite(loss):
                    latest = resolve_checkpoint(out, "latest")
                    raise FloatingPointError(
                        f"The loss became {loss.item()} at step {step}: training stopped. Nothing was saved after "
                        f"the last good checkpoint ({latest or 'none yet'}). Lower --learning_rate or check the data."
                    )
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            images_seen += len(idx)
        step += 1
        if ema is not None:
            ema.step(accelerator.unwrap_model(model).parameters())
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        elapsed = seconds_before + time.perf_counter() - start
        out_of_time = cfg.max_minutes > 0 and elapsed >= cfg.max_minutes * 60
        done = step >= cfg.max_steps or out_of_time

        if step % cfg.log_every == 0 or done:
            now = time.perf_counter()
            record = {
                "step": step,
                "loss": loss.item(),
                "lr": lr_scheduler.get_last_lr()[0],
                "images_per_s": images_seen * accelerator.num_processes / (now - last_log),
                "minutes": elapsed / 60,
            }
            last_log, images_seen = now, 0
            _log(accelerator, metrics_path, record)
        if accelerator.is_main_process and cfg.sample_every and (step % cfg.sample_every == 0 or done):
            with _ema_weights(accelerator, model, ema) as m:
                grid = task.sample_grid(m, torch.Generator().manual_seed(cfg.seed))
            if grid is not None:
                from pipelines.image_grid import make_grid

                (out / "samples").mkdir(exist_ok=True)
                make_grid(grid).save(out / "samples" / f"step-{step:07d}.png")
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or done:
            _save_checkpoint(accelerator, out, step, elapsed, best, ema, cfg.keep_checkpoints)
        if (cfg.eval_every and step % cfg.eval_every == 0) or done:
            best = _evaluate_and_export(accelerator, task, model, ema, out, step, best, metrics_path)
        if out_of_time:
            accelerator.print(f"Stopping at step {step}: the {cfg.max_minutes}-minute budget is spent.")
            break
    bar.close()
    accelerator.end_training()
    return out / "model"


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401  (only checks that it is installed)
    except ImportError:
        return False
    return True


def _log(accelerator: Accelerator, path: Path, record: dict) -> None:
    if accelerator.is_main_process:
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
    if accelerator.trackers:
        accelerator.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])


class _ema_weights:
    """Context: an eval-mode copy of the unwrapped model holding the EMA weights (the training weights stay)."""

    def __init__(self, accelerator: Accelerator, model: torch.nn.Module, ema: EMAModel | None):
        self.model = copy.deepcopy(accelerator.unwrap_model(model)).float()
        if ema is not None:
            ema.copy_to(self.model.parameters())
        self.model.eval()

    def __enter__(self) -> torch.nn.Module:
        self._grad = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        return self.model

    def __exit__(self, *exc) -> None:
        torch.set_grad_enabled(self._grad)


def _evaluate_and_export(accelerator, task, model, ema, out: Path, step: int, best: float, metrics_path: Path) -> float:
    """Evaluate the EMA model; export it when it is the best so far (or always, without a selection metric)."""
    if not accelerator.is_main_process:
        return best
    with _ema_weights(accelerator, model, ema) as m:
        metrics = task.evaluate(m)
        if metrics:
            _log(accelerator, metrics_path, {"step": step, **metrics})
        key = task.selection_metric
        if key is None or metrics.get(key, math.inf) < best:
            best = metrics.get(key, best) if key else best
            tmp = out / f"model{TMP_SUFFIX}"
            shutil.rmtree(tmp, ignore_errors=True)
            task.export(m, tmp)
            _write_json(tmp / "training_state.json", {"step": step, **metrics})
            shutil.rmtree(out / "model", ignore_errors=True)
            os.replace(tmp, out / "model")
    return best


def _save_checkpoint(
    accelerator: Accelerator, out: Path, step: int, seconds: float, best: float, ema, keep: int
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
        }
        _write_json(tmp / "state.json", state)  # written last: its presence marks a complete checkpoint
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in list_checkpoints(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _load_checkpoint(accelerator: Accelerator, ckpt: Path, ema) -> tuple[int, float, float]:
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
