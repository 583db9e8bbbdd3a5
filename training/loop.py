"""The one training loop every model uses, through Accelerate.

A model plugs in as a :class:`TrainingTask` (its network, its loss, how to export it); the loop owns the rest:
mixed precision, gradient accumulation, EMA (diffusers' ``EMAModel``), LR warm-up and decay (diffusers'
``get_scheduler``), atomic checkpoints (:mod:`training.checkpoints`), ``--resume_from_checkpoint latest``,
sample grids, a JSON-lines metrics log, early stopping on a validation metric, a NaN guard and a wall-clock
budget. :func:`train` reads as the recipe: start, then per step train, log, sample, checkpoint, evaluate and
export; finish.

Resuming is exact: batches, noise and augmentation are pure functions of (seed, batch number)
(:class:`training.data.BatchSampler`, :class:`training.data.BatchDraws`), so a run killed and resumed from a
checkpoint ends with the weights an uninterrupted run would have had.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from .checkpoints import (
    TMP_SUFFIX,
    load_checkpoint,
    read_state,
    resolve_checkpoint,
    save_checkpoint,
    write_json,
)
from .config import TrainConfig, config_to_dict, export_path, snapshot_path
from .data import BatchDraws, BatchSampler, ImageData, LazyImages, batch_stream, random_flip, random_shift
from .launch import check_launch
from .optimization import build_lr_scheduler, build_optimizer, make_ema

__all__ = ["TrainingTask", "train"]


class TrainingTask:
    """What a model contributes to the loop. Subclasses set ``config`` and ``data`` and implement the methods."""

    config: TrainConfig
    data: ImageData | LazyImages  # in memory, or a folder / Hub data set decoded batch by batch
    selection_metric: str | None = None  # an evaluate() key, lower is better: export the best model by it

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def loss(
        self, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, draws: BatchDraws, step: int
    ) -> torch.Tensor:
        """The loss of this process's rows of the batch; every random number comes from ``draws``."""
        raise NotImplementedError

    def export(self, model: torch.nn.Module, path: Path) -> None:
        """Save ``model`` (EMA weights already applied) as a pipeline folder."""
        raise NotImplementedError

    def sample_grid(self, model: torch.nn.Module, generator: torch.Generator) -> torch.Tensor | None:
        """A few samples (N, C, H, W) in [0, 1] for the progress grid, or None."""
        return None

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return {}


@dataclass
class Run:
    """What one training run holds between the steps of :func:`train`."""

    task: TrainingTask
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: EMAModel | None
    sampler: BatchSampler
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = iter(())  # this process's micro-batches from `step` on
    step: int = 0
    best: float = math.inf  # the best selection metric so far
    seconds_before: float = 0.0  # training time before a resume
    started: float = field(default_factory=time.perf_counter)
    last_log: float = field(default_factory=time.perf_counter)
    images_seen: int = 0  # by this process since the last log

    @property
    def cfg(self) -> TrainConfig:
        return self.task.config

    @property
    def out(self) -> Path:
        return Path(self.task.config.output_dir)

    @property
    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started


def train(task: TrainingTask, after_step: Callable[[Run], None] | None = None) -> Path:
    """Train ``task``; returns the folder of the exported model (:func:`training.config.export_path`).
    ``after_step(run)``, if given, is called after every optimizer step (benchmarks take snapshots with it)."""
    run = start(task)
    cfg = run.cfg
    bar = tqdm(
        total=cfg.max_steps, initial=run.step, disable=not run.accelerator.is_local_main_process, desc=run.out.name
    )
    while run.step < cfg.max_steps:
        loss = training_step(run)
        done = run.step >= cfg.max_steps or out_of_time(run)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if run.step % cfg.log_every == 0 or done:
            log_progress(run, loss)
        if cfg.sample_every and _due(run.step, cfg.sample_every, done):
            save_sample_grid(run)
        if _due(run.step, cfg.checkpoint_every, done):
            save_checkpoint(run.accelerator, run.out, run.step, run.elapsed, run.best, run.ema, cfg.keep_checkpoints)
        if _due(run.step, cfg.eval_every, done):
            evaluate_and_export(run)
        if run.step in cfg.snapshot_steps:
            export_snapshot(run, snapshot_path(cfg, run.step))
        if after_step is not None:
            after_step(run)
        if done:
            break
    bar.close()
    if not is_exported(export_path(cfg)):  # resumed from a checkpoint at max_steps, before its export was written
        evaluate_and_export(run)
    return finish(run)


def is_exported(folder: Path) -> bool:
    """Whether ``folder`` holds an export: a pipeline's model_index.json, or a single model's config.json."""
    return (folder / "model_index.json").is_file() or (folder / "config.json").is_file()


def _due(step: int, every: int, done: bool) -> bool:
    """Every ``every`` steps (0: never on the way) and always at the end."""
    return done or (every > 0 and step % every == 0)


# ------------------------------------------------------------------------------------------------- start


def start(task: TrainingTask) -> Run:
    """Accelerator, output folder, model, optimizer, LR schedule and EMA; resumed from a checkpoint if asked.
    Everything is checked (launch, batch split, checkpoint) before the first file is written."""
    accelerator = make_accelerator(task.config)
    sampler = make_sampler(task, accelerator)
    cfg = task.config  # with max_steps from num_epochs
    checkpoint = checkpoint_to_resume(cfg, accelerator)
    if not cfg.export_dir and export_path(cfg) != Path(cfg.output_dir):  # a run folder of the older layout: pinned
        task.config = cfg = dataclasses.replace(cfg, export_dir=str(export_path(cfg)))
    if accelerator.is_main_process:
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(cfg.output_dir) / "train_config.json", config_to_dict(cfg))
    if accelerator.log_with:
        accelerator.init_trackers(cfg.logging_dir, config={k: str(v) for k, v in config_to_dict(cfg).items()})
    torch.manual_seed(cfg.seed)  # the initial weights
    model = task.build_model()
    optimizer = build_optimizer(cfg, model)
    lr_scheduler = build_lr_scheduler(cfg, optimizer)
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    ema = make_ema(cfg, accelerator.unwrap_model(model, keep_torch_compile=False))
    run = Run(task, accelerator, model, optimizer, lr_scheduler, ema, sampler)
    if checkpoint is not None:
        run.step, run.seconds_before, run.best = load_checkpoint(accelerator, checkpoint, ema)
        if accelerator.is_main_process:
            forget_metrics_after(run.out / "metrics.jsonl", run.step)
        accelerator.print(f"Resumed from {checkpoint} at step {run.step}.")
    accumulation = cfg.gradient_accumulation_steps
    run.batches = batch_stream(
        task.data, sampler, run.step * accumulation, cfg.max_steps * accumulation, cfg.dataloader_num_workers
    )
    return run


def forget_metrics_after(path: Path, step: int) -> None:
    """Drop the metrics.jsonl records of steps after ``step``: a resumed run logs them again, so a run killed
    between a log line and its next checkpoint keeps one record per step. The file is replaced atomically."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _logged_step(line) <= step]
    if len(kept) != len(lines):
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)


def _logged_step(line: str) -> float:
    """The step of one metrics.jsonl line; a line that is not a record (a torn last write) counts as after all."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


TRACKERS = {"none": None, "tensorboard": "tensorboard"}  # report_to → Accelerate's log_with


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    """The Accelerator, after checking that it started the processes the launcher asked for."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    # Accelerate keeps one AcceleratorState per process and refuses to change it: a recipe's later stage (another
    # mixed precision or dynamo backend) starts from a cleared one. The processes' group (PartialState) stays.
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        dynamo_backend=None if cfg.dynamo_backend == "no" else cfg.dynamo_backend,  # None: the launcher's choice
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        step_scheduler_with_optimizer=False,  # stepped once per optimizer step: the schedule follows the global step
        log_with=TRACKERS[cfg.report_to],
        project_dir=cfg.output_dir,
    )
    check_launch(os.environ, accelerator.num_processes, accelerator.distributed_type.name)
    return accelerator


def make_sampler(task: TrainingTask, accelerator: Accelerator) -> BatchSampler:
    """This process's batches; with num_epochs, max_steps becomes that many passes over the data."""
    cfg, processes = task.config, accelerator.num_processes
    if cfg.batch_size % (cfg.gradient_accumulation_steps * processes):
        raise ValueError(
            f"batch_size ({cfg.batch_size}) must be a multiple of gradient_accumulation_steps × processes "
            f"({cfg.gradient_accumulation_steps} × {processes}): it is the global batch."
        )
    micro_batch = cfg.batch_size // cfg.gradient_accumulation_steps
    backend = f", {accelerator.state.backend}" if accelerator.state.backend else ""
    accelerator.print(  # what the launcher really started, not what its flags asked for
        f"Training on {processes} process{'es' if processes > 1 else ''} ({accelerator.distributed_type.name}{backend}): "
        f"global batch {cfg.batch_size} = {processes} × {cfg.batch_size // processes} rows."
    )
    sampler = BatchSampler(len(task.data), micro_batch, cfg.seed, accelerator.process_index, processes)
    epoch = sampler.per_epoch / cfg.gradient_accumulation_steps  # optimizer steps per pass over the data
    in_steps = {  # diffusers' periods in epochs, as steps
        "max_steps": math.ceil(cfg.num_epochs * epoch),
        "sample_every": math.ceil(cfg.save_images_epochs * epoch),
        "eval_every": math.ceil(cfg.save_model_epochs * epoch),
    }
    epochs = {"max_steps": cfg.num_epochs, "sample_every": cfg.save_images_epochs, "eval_every": cfg.save_model_epochs}
    task.config = dataclasses.replace(cfg, **{k: max(1, v) for k, v in in_steps.items() if epochs[k]})
    return sampler


def checkpoint_to_resume(cfg: TrainConfig, accelerator: Accelerator) -> Path | None:
    """The checkpoint resume_from_checkpoint names (damaged ones skipped for "latest"), its state checked."""
    if not cfg.resume_from_checkpoint:
        return None
    checkpoint = resolve_checkpoint(Path(cfg.output_dir), cfg.resume_from_checkpoint)
    if checkpoint is None:
        accelerator.print(f"No checkpoint in {cfg.output_dir}; starting from scratch.")
        return None
    read_state(checkpoint)
    return checkpoint


# ------------------------------------------------------------------------------------------------- steps


def training_step(run: Run) -> float:
    """One optimizer step over gradient_accumulation_steps micro-batches; returns its mean loss."""
    cfg, accelerator = run.cfg, run.accelerator
    run.model.train()
    losses = []
    for micro in range(cfg.gradient_accumulation_steps):
        batch_number = run.step * cfg.gradient_accumulation_steps + micro
        images, labels = next(run.batches)
        draws = run.sampler.draws(batch_number, accelerator.device)
        images = random_shift(images.to(accelerator.device), cfg.augment_shift, draws)
        if cfg.flip == "horizontal":
            images = random_flip(images, draws)
        labels = labels.to(accelerator.device)
        with accelerator.accumulate(run.model):
            with accelerator.autocast():  # the forward pass only: backward and the optimizer run outside autocast
                loss = run.task.loss(run.model, images, labels, draws, run.step)
            losses.append(_global_loss(run, loss))
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(run.model.parameters(), cfg.max_grad_norm)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
        run.images_seen += len(images)
    if not run.optimizer.step_was_skipped:  # an fp16 overflow skips the optimizer step: the schedule waits too
        run.lr_scheduler.step()
    if run.ema is not None:
        run.ema.step(accelerator.unwrap_model(run.model, keep_torch_compile=False).parameters())
    run.step += 1
    return sum(losses) / len(losses)


def _global_loss(run: Run, loss: torch.Tensor) -> float:
    """The loss of the whole global batch: the mean of the processes' losses (each the mean over an equal share
    of rows). A NaN or infinite loss on any process stops them all before it reaches the weights."""
    value = run.accelerator.reduce(loss.detach().float(), "mean").item()
    if not math.isfinite(value):
        latest = resolve_checkpoint(run.out, "latest")
        raise FloatingPointError(
            f"The loss became {value} at step {run.step}: training stopped. Nothing was saved after "
            f"the last good checkpoint ({latest or 'none yet'}). Lower --learning_rate or check the data."
        )
    return value


def out_of_time(run: Run) -> bool:
    """Whether the max_minutes budget is spent; with several processes, on any of them (they stop together)."""
    minutes = run.cfg.max_minutes
    spent = minutes > 0 and run.elapsed >= minutes * 60
    if minutes > 0 and run.accelerator.num_processes > 1:
        votes = run.accelerator.reduce(torch.tensor(float(spent), device=run.accelerator.device), "sum")
        spent = votes.item() > 0
    if spent:
        run.accelerator.print(f"Stopping at step {run.step}: the {minutes}-minute budget is spent.")
        return True
    return False


def log_progress(run: Run, loss: float) -> None:
    now = time.perf_counter()
    record = {
        "step": run.step,
        "loss": loss,
        "lr": run.lr_scheduler.get_last_lr()[0],
        "images_per_s": run.images_seen * run.accelerator.num_processes / (now - run.last_log),
        "minutes": run.elapsed / 60,
    }
    run.last_log, run.images_seen = now, 0
    write_metrics(run, record)


def write_metrics(run: Run, record: dict) -> None:
    """Append ``record`` to output_dir/metrics.jsonl (main process) and to the tracker of report_to."""
    if run.accelerator.is_main_process:
        with (run.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
    if run.accelerator.trackers:
        run.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])


class _ema_weights:
    """Context: an eval-mode copy of the unwrapped model holding the EMA weights (the training weights stay)."""

    def __init__(self, run: Run):
        self.model = copy.deepcopy(run.accelerator.unwrap_model(run.model, keep_torch_compile=False)).float()
        if run.ema is not None:
            run.ema.copy_to(self.model.parameters())
        self.model.eval()

    def __enter__(self) -> torch.nn.Module:
        self._grad = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        return self.model

    def __exit__(self, *exc) -> None:
        torch.set_grad_enabled(self._grad)


def save_sample_grid(run: Run) -> None:
    """samples/step-<step>.png: a grid drawn from the EMA model with a fixed seed (main process)."""
    if not run.accelerator.is_main_process:
        return
    with _ema_weights(run) as model:
        grid = run.task.sample_grid(model, torch.Generator().manual_seed(run.cfg.seed))
    if grid is not None:
        from pipelines.image_grid import make_grid

        image = make_grid(grid)
        (run.out / "samples").mkdir(exist_ok=True)
        image.save(run.out / "samples" / f"step-{run.step:07d}.png")
        if run.cfg.report_to == "tensorboard":
            writer = run.accelerator.get_tracker("tensorboard", unwrap=True)
            writer.add_image("samples", np.asarray(image.convert("RGB")), run.step, dataformats="HWC")


def export_atomically(run: Run, model: torch.nn.Module, path: Path, state: dict | None = None) -> None:
    """``run.task.export(model)`` into ``path``, whole or absent: written beside it, then renamed over it. Into the
    run folder itself, each entry is renamed over its namesake, the model index last: until then the folder holds
    the previous export (or none), never a mix that loads."""
    in_run = path.resolve() == run.out.resolve()
    tmp = path / f"export{TMP_SUFFIX}" if in_run else path.with_name(path.name + TMP_SUFFIX)
    shutil.rmtree(tmp, ignore_errors=True)
    run.task.export(model, tmp)
    if state is not None:
        write_json(tmp / "training_state.json", state)
    if not in_run:
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
        return
    index = [p for p in (tmp / "model_index.json", tmp / "config.json") if p.exists()]
    (path / index[0].name).unlink(missing_ok=True)
    for entry in sorted(tmp.iterdir(), key=lambda p: p in index):
        target = path / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)
    tmp.rmdir()


def export_snapshot(run: Run, path: Path) -> None:
    """Export the EMA model as it is now to ``path`` (main process), without evaluating it."""
    if run.accelerator.is_main_process:
        with _ema_weights(run) as model:
            export_atomically(run, model, path)


def evaluate_and_export(run: Run) -> None:
    """Evaluate the EMA model; export it when it is the best so far (or always, without a selection metric)."""
    if not run.accelerator.is_main_process:
        return
    with _ema_weights(run) as model:
        metrics = run.task.evaluate(model)
        if metrics:
            write_metrics(run, {"step": run.step, **metrics})
        key = run.task.selection_metric
        if key is None or metrics.get(key, math.inf) < run.best:
            run.best = metrics.get(key, run.best) if key else run.best
            state = {"step": run.step, "minutes": run.elapsed / 60, **metrics}
            export_atomically(run, model, export_path(run.cfg), state)


def finish(run: Run) -> Path:
    """Wait for every process, close the trackers and publish the export when push_to_hub asks."""
    run.accelerator.wait_for_everyone()
    run.accelerator.end_training()
    if run.cfg.push_to_hub == "at_end" and run.accelerator.is_main_process:
        from .hub import publish

        url = publish(export_path(run.cfg), run.cfg.hub_model_id, private=run.cfg.hub_visibility == "private")
        run.accelerator.print(f"Published {export_path(run.cfg)} to {url}.")
    return export_path(run.cfg)
