"""Which precision the UNet runs in while sampling: fp32, or bf16 autocast where that is faster.

``precision="auto"`` decides once per UNet, by the first rule that applies:

1. not a CPU → fp32 (autocast to bf16 is used on CPUs only);
2. oneDNN reports no native bfloat16 on this CPU → fp32 (it would be emulated, several times slower);
3. the CPU has AMX-BF16 tile units → bf16 (matrix work in bf16 runs several times faster there);
4. otherwise (AVX512-BF16 without AMX) it depends on the network: one forward pass of the UNet is timed in both
   precisions and bf16 is used only when it is at least ``MIN_BF16_SPEEDUP`` times faster (what it picks for the
   bundled UNets on this project's machine, and the command that prints it: docs/speed.md#precision).

:func:`choose_precision` returns the decision with its reason, so that benchmarks can print it; it is also logged.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS = ("auto", "fp32", "bf16")
MIN_BF16_SPEEDUP = 1.1  # bf16 changes the images slightly: worth it only for a clear gain
TIMING_BATCH = 16  # the most samples of the one-off timing (smaller batches understate the bf16 gain)
TIMING_REPEATS = 3

logger = logging.getLogger(__name__)
_timed: dict[tuple, PrecisionChoice] = {}  # architecture(unet, shape) → its timed PrecisionChoice


@dataclass(frozen=True)
class PrecisionChoice:
    """What "auto" picked for a UNet on a device, and why."""

    precision: Literal["fp32", "bf16"]
    reason: str


def bf16_supported() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS or Windows)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def time_forward(unet, sample: torch.Tensor, precision: Literal["fp32", "bf16"]) -> float:
    """Median seconds of one UNet forward pass on ``sample`` in ``precision`` (after one warm-up pass)."""
    timestep = torch.tensor(500)
    labels = torch.zeros(len(sample), dtype=torch.long) if getattr(unet.config, "num_class_embeds", None) else None
    times = []
    with torch.no_grad(), autocast(precision, sample.device):
        for i in range(TIMING_REPEATS + 1):
            start = time.perf_counter()
            unet(sample, timestep, class_labels=labels)
            if i:  # the first pass warms up oneDNN's kernels
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def architecture(unet, sample_shape: tuple[int, ...]) -> tuple:
    """What a UNet's speed depends on: its class, its config (not its weights), its dtype and the sample's size."""
    config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    return type(unet).__qualname__, json.dumps(config, sort_keys=True, default=str), str(unet.dtype), sample_shape[1:]


def timed_choice(unet, sample_shape: tuple[int, ...]) -> PrecisionChoice:
    """Rule 4: time the UNet's forward pass in fp32 and in bf16 autocast and keep the faster; timed once per
    architecture in a process, so that two copies of one model always sample alike."""
    key = architecture(unet, sample_shape)
    if key in _timed:
        return _timed[key]
    sample = torch.randn((min(sample_shape[0], TIMING_BATCH), *sample_shape[1:]), dtype=unet.dtype)
    fp32, bf16 = time_forward(unet, sample, "fp32"), time_forward(unet, sample, "bf16")
    speedup = fp32 / bf16
    precision = "bf16" if speedup >= MIN_BF16_SPEEDUP else "fp32"
    choice = PrecisionChoice(
        precision,
        f"AVX512-BF16 without AMX: bf16 autocast ran this UNet {speedup:.2f}× as fast as fp32 "
        f"(timed once; bf16 is used from {MIN_BF16_SPEEDUP}×)",
    )
    _timed[key] = choice
    logger.info("precision auto → %s: %s", choice.precision, choice.reason)
    return choice


def choose_precision(device: torch.device, unet=None, sample_shape: tuple[int, ...] | None = None) -> PrecisionChoice:
    """The precision "auto" uses for ``unet`` sampling (batch, channels, height, width) on ``device``, and why."""
    if device.type != "cpu":
        return PrecisionChoice("fp32", f"{device.type}: bf16 autocast is used on CPUs only")
    if not bf16_supported():
        return PrecisionChoice("fp32", "oneDNN reports no native bfloat16 on this CPU (bf16 would be emulated)")
    if "amx_bf16" in cpu_flags():
        return PrecisionChoice("bf16", "the CPU has AMX-BF16 tile units")
    if unet is None or sample_shape is None:
        return PrecisionChoice("fp32", "AVX512-BF16 without AMX and no UNet to time: fp32")
    return timed_choice(unet, sample_shape)


def resolve_precision(
    precision: Precision, device: torch.device, unet=None, sample_shape: tuple[int, ...] | None = None
) -> Literal["fp32", "bf16"]:
    """ "fp32" and "bf16" as asked; "auto" by :func:`choose_precision`. A ValueError names a bad value."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "auto":
        return choose_precision(device, unet, sample_shape).precision
    return precision


def autocast(precision: Literal["fp32", "bf16"], device: torch.device) -> AbstractContextManager:
    """bf16 autocast for "bf16", nothing for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
