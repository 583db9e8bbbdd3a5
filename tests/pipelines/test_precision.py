"""pipelines/precision.py: what precision="auto" picks, and why, by CPU flags or a one-off timing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipelines import precision
from tests.support.models import tiny_unet

CPU = torch.device("cpu")
SHAPE = (8, 1, 8, 8)


@pytest.fixture
def cpu(monkeypatch):
    """Set the CPU's bf16 support, flags and fp32/bf16 timings; returns the list of timed precisions."""
    timed = []

    def configure(native_bf16: bool, flags: set[str], seconds: dict[str, float] | None = None):
        monkeypatch.setattr(precision, "bf16_supported", lambda: native_bf16)
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(precision, "_timed", type(precision._timed)())
        monkeypatch.setattr(
            precision, "time_forward", lambda unet, sample, p: timed.append((p, tuple(sample.shape))) or seconds[p]
        )
        return timed

    return configure


def test_not_a_cpu_or_no_native_bf16_means_fp32_without_timing(cpu):
    timed = cpu(native_bf16=True, flags={"avx512_bf16", "amx_bf16"})
    choice = precision.choose_precision(torch.device("cuda"), tiny_unet(), SHAPE)
    assert choice.precision == "fp32" and "CPUs only" in choice.reason
    cpu(native_bf16=False, flags=set())
    choice = precision.choose_precision(CPU, tiny_unet(), SHAPE)
    assert choice.precision == "fp32" and "no native bfloat16" in choice.reason
    assert timed == []


def test_amx_means_bf16_without_timing(cpu):
    timed = cpu(native_bf16=True, flags={"avx512_bf16", "amx_tile", "amx_bf16"})
    choice = precision.choose_precision(CPU, tiny_unet(), SHAPE)
    assert choice == precision.PrecisionChoice("bf16", "the CPU has AMX-BF16 tile units")
    assert timed == []


@pytest.mark.parametrize(
    "fp32_seconds, bf16_seconds, expected",
    [(1.0, 0.5, "bf16"), (1.0, 1.0 / precision.MIN_BF16_SPEEDUP, "bf16"), (1.0, 0.95, "fp32"), (1.0, 1.3, "fp32")],
)
def test_avx512_bf16_without_amx_times_the_unet_once(cpu, fp32_seconds, bf16_seconds, expected):
    timed = cpu(native_bf16=True, flags={"avx512_bf16"}, seconds={"fp32": fp32_seconds, "bf16": bf16_seconds})
    unet = tiny_unet()
    choice = precision.choose_precision(CPU, unet, SHAPE)
    assert choice.precision == expected
    assert f"{fp32_seconds / bf16_seconds:.2f}×" in choice.reason
    timing_shape = (min(SHAPE[0], precision.TIMING_BATCH), *SHAPE[1:])
    assert timed == [("fp32", timing_shape), ("bf16", timing_shape)]
    assert precision.choose_precision(CPU, unet, SHAPE) is choice  # cached: timed once
    # other weights, same architecture: the same choice without timing (copies of a model sample alike)
    assert precision.choose_precision(CPU, tiny_unet(seed=1), SHAPE) is choice
    assert len(timed) == 2
    precision.choose_precision(CPU, tiny_unet(num_class_embeds=4), SHAPE)  # another architecture is timed afresh
    assert len(timed) == 4


def test_resolve_precision_passes_explicit_choices_and_refuses_others(cpu):
    cpu(native_bf16=True, flags={"amx_bf16"})
    assert precision.resolve_precision("fp32", CPU) == "fp32"
    assert precision.resolve_precision("bf16", CPU) == "bf16"
    assert precision.resolve_precision("auto", CPU, tiny_unet(), SHAPE) == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve_precision("fp16", CPU)


def test_the_real_timing_runs_a_forward_pass_in_each_precision():
    seconds = precision.time_forward(tiny_unet(num_class_embeds=4), torch.randn(2, 1, 8, 8), "bf16")
    assert 0 < seconds < 60


def test_cpu_flags_come_from_proc_cpuinfo():
    flags = precision.cpu_flags()
    assert isinstance(flags, frozenset)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        assert flags == frozenset()
    else:
        assert ("fpu" in flags) == (" fpu " in text)
