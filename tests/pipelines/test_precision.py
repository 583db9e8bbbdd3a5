"""pipelines/precision.py: the networks' loaded dtype unless bf16 is asked for; the CPU's bf16 units read from its
feature flags, never timed."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from pipelines import precision
from tests.support.models import tiny_unet


@pytest.fixture
def cpu(monkeypatch):
    """Set what oneDNN reports and the CPU's flags."""

    def configure(native_bf16: bool, flags: set[str]):
        monkeypatch.setattr(precision, "bf16_supported", lambda: native_bf16)
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))

    return configure


@pytest.mark.parametrize(
    ("native", "flags", "expected", "reason"),
    [
        (False, {"avx512_bf16", "amx_bf16"}, "loaded", "no native bfloat16"),
        (True, {"avx512_bf16", "amx_bf16"}, "bf16", "AMX-BF16"),
        (True, {"avx512_bf16"}, "bf16", "AVX512-BF16"),
        (True, {"avx512f"}, "loaded", "neither"),
    ],
)
def test_the_cpu_bf16_choice_follows_the_feature_flags(cpu, native, flags, expected, reason):
    cpu(native_bf16=native, flags=flags)
    choice = precision.cpu_bf16_choice()
    assert choice.precision == expected and reason in choice.reason


def test_nothing_in_the_module_times_anything():
    source = inspect.getsource(precision)
    assert "perf_counter" not in source and "import time" not in source


def test_check_precision_passes_the_choices_and_names_them_otherwise():
    assert [precision.check_precision(p) for p in precision.PRECISIONS] == list(precision.PRECISIONS)
    for bad in ("auto", "fp32", "fp16", None):
        with pytest.raises(ValueError, match="precision must be one of"):
            precision.check_precision(bad)


@pytest.mark.parametrize(
    ("dtype", "name"), [(torch.float32, "fp32"), (torch.float16, "fp16"), (torch.bfloat16, "bf16")]
)
def test_precision_name_is_the_loaded_dtype_or_bf16_under_autocast(dtype, name):
    unet = tiny_unet().to(dtype)
    assert precision.precision_name("loaded", unet) == name
    assert precision.precision_name("bf16", unet) == "bf16"


def test_cpu_flags_come_from_proc_cpuinfo():
    flags = precision.cpu_flags()
    assert isinstance(flags, frozenset)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        assert flags == frozenset()
    else:
        assert ("fpu" in flags) == (" fpu " in text)
