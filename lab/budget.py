"""What the page's live training runs share: a bounded budget (wall-clock seconds, steps, a visitor's stop
flag) checked at every step, and one-file safetensors downloads that carry their configs.

A live run is a generator that trains one step at a time and yields its state every few steps; the page
streams each yield. :class:`Budget` ends it within one step of a Stop, at its time limit or at its step limit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pipelines.checks import check_number

if TYPE_CHECKING:  # only a type here; importing diffusers takes seconds, and the app's page reads this module
    from diffusers.configuration_utils import ConfigMixin

StopReason = Literal["running", "stopped", "time limit", "step limit"]
MAX_SECONDS = 60.0  # the longest a visitor's run may train


@dataclass
class Budget:
    """The limits of one run: ``max_seconds`` on ``clock`` (wall-clock time; a benchmark passes
    ``time.process_time`` to budget CPU seconds instead), ``max_steps`` steps, and a ``stop`` flag."""

    max_seconds: float
    max_steps: int
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self):
        check_number("max seconds", self.max_seconds, 0.1, MAX_SECONDS)
        check_number("max steps", self.max_steps, 1, 10_000_000, integer=True)
        self.started = self.clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def reason_to_stop(self, step: int) -> StopReason:
        """Why the run must end before step ``step + 1`` ("running" when it may go on); a Stop wins."""
        checks: dict[StopReason, bool] = {
            "stopped": self.stop.is_set(),
            "time limit": self.elapsed >= self.max_seconds,
            "step limit": step >= self.max_steps,
        }
        return next((reason for reason, hit in checks.items() if hit), "running")


def live_steps(run, budget: Budget, step, report, snapshot, report_every: int, snapshot_every: int) -> Iterator:
    """The loop both labs share. ``snapshot()`` at step 0 and yield ``run``; then, until ``budget`` ends it, call
    ``step()`` (one optimiser step, returning that step's metrics as a tensor); every ``report_every`` steps pass
    the window's mean metrics to ``report``, every ``snapshot_every`` steps call ``snapshot()``, and yield ``run``.
    At the end: a last snapshot (unless one was just taken), ``run.state`` set, and one more yield."""
    snapshot()
    yield run
    window, snapshot_step = [], 0
    while (reason := budget.reason_to_stop(run.step)) == "running":
        window.append(step())
        run.step += 1
        if run.step % report_every == 0:
            report(torch.stack(window).mean(0))
            window.clear()
            if run.step % snapshot_every == 0:
                snapshot()
                snapshot_step = run.step
            run.elapsed_s = budget.elapsed
            yield run
    if snapshot_step != run.step:
        snapshot()
    run.elapsed_s, run.state = budget.elapsed, reason
    yield run


def save_model_file(path: str | Path, model: torch.nn.Module, **configs: ConfigMixin) -> Path:
    """Write ``model``'s weights as one safetensors file; its config and each of ``configs`` (e.g. a scheduler)
    travel as JSON in the file's metadata, so :func:`load_model_file` rebuilds everything from the file alone."""
    metadata = {"model_class": type(model).__name__, "model_config": model.to_json_string()}
    metadata.update({f"{name}_config": config.to_json_string() for name, config in configs.items()})
    tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    return Path(path)


def load_model_file(path: str | Path, model_class: type) -> tuple[torch.nn.Module, dict[str, dict]]:
    """(the model, {name: config dict}) from a file of :func:`save_model_file`; safetensors only, nothing unpickled."""
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata() or {}
    if metadata.get("model_class") != model_class.__name__:
        raise ValueError(f"{path} holds a {metadata.get('model_class')!r}, not a {model_class.__name__}.")
    model = model_class.from_config(json.loads(metadata["model_config"]))
    model.load_state_dict(load_file(str(path)))
    configs = {
        key.removesuffix("_config"): json.loads(value)
        for key, value in metadata.items()
        if key.endswith("_config") and key != "model_config"
    }
    return model.eval(), configs
