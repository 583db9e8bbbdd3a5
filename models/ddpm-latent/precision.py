"""Which precision the networks run in while sampling: the dtype they were loaded in, or bf16 autocast when asked.

By default (``precision="loaded"``) a pipeline samples in its networks' own dtype, what ``from_pretrained(...,
torch_dtype=...)`` loaded, as diffusers' own pipelines do: fp32 weights sample in fp32, fp16 in fp16, bf16 in bf16,
and the same call gives the same images on every machine. ``precision="bf16"`` autocasts the networks' work to
bfloat16 over fp32 weights: an opt-in for CPUs that run bf16 natively. Nothing here times anything;
:func:`cpu_bf16_choice` says, from the CPU's feature flags alone, whether the CPU has such units, for an application
(the playground) to decide with.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["loaded", "bf16"]
PRECISIONS = ("loaded", "bf16")
# what a network's dtype is called in metrics and messages
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64"}


@dataclass(frozen=True)
class PrecisionChoice:
    """A precision, and why it was chosen."""

    precision: Precision
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


def cpu_bf16_choice() -> PrecisionChoice:
    """bf16 where the CPU has native bf16 units (AMX-BF16 tiles, or AVX512-BF16 instructions that oneDNN uses), the
    loaded dtype elsewhere (bf16 would be emulated, several times slower). Read from feature flags, never timed."""
    flags = cpu_flags()
    if not bf16_supported():
        return PrecisionChoice("loaded", "oneDNN reports no native bfloat16 on this CPU")
    if "amx_bf16" in flags:
        return PrecisionChoice("bf16", "the CPU has AMX-BF16 tile units")
    if "avx512_bf16" in flags:
        return PrecisionChoice("bf16", "the CPU has AVX512-BF16 instructions")
    return PrecisionChoice("loaded", "oneDNN reports bfloat16 but the CPU lists neither AMX-BF16 nor AVX512-BF16")


def check_precision(precision) -> Precision:
    """``precision`` itself, else a ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    return precision


def precision_name(precision: Precision, network: torch.nn.Module) -> str:
    """What a network computes in: "bf16" under autocast, else its own dtype ("fp32", "fp16", ...)."""
    return "bf16" if precision == "bf16" else DTYPE_NAMES.get(network.dtype, str(network.dtype))


def autocast(precision: Precision, device: torch.device) -> AbstractContextManager:
    """bf16 autocast for "bf16", nothing (the loaded dtype) for "loaded"."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
