"""Autoguidance's two passes: side by side on idle CPU cores, one after another otherwise, always the same numbers."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from pipelines import guidance
from tests.support.tiny_pipelines import guided_pipe, sample


@pytest.fixture(params=["side by side", "one after another"])
def threading_mode(request, monkeypatch):
    """Makes guide_beside_main answer as on a machine with enough idle cores, or with too few."""
    cores = 2 * torch.get_num_threads() if request.param == "side by side" else 2 * torch.get_num_threads() - 1
    monkeypatch.setattr(guidance, "available_cores", lambda: cores)
    return request.param


def record_threads_and_modes(unet):
    """Record, per forward call, the thread it ran in and the grad / autocast modes it saw."""
    seen = []
    unet.register_forward_hook(
        lambda m, args, out: seen.append(
            (threading.get_ident(), torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"))
        )
    )
    return seen


def hold_each_main_pass_until_its_guide_pass_starts(pipe):
    """Without this, a loaded machine can be slow to start the worker: the step then takes the queued guide pass
    back and runs it in its own thread (as it should), and which thread ran it would depend on the load."""
    guide_started = threading.Event()
    pipe.guide_unet.register_forward_pre_hook(lambda m, args: guide_started.set())

    def wait_for_the_guide(m, args):
        assert guide_started.wait(10), "the step's guide pass never started"
        guide_started.clear()

    pipe.unet.register_forward_pre_hook(wait_for_the_guide)


def test_the_guide_runs_in_another_thread_only_where_cores_are_idle(threading_mode):
    pipe = guided_pipe()
    main_calls, guide_calls = record_threads_and_modes(pipe.unet), record_threads_and_modes(pipe.guide_unet)
    hold_each_main_pass_until_its_guide_pass_starts(pipe)
    sample(pipe, autoguidance_scale=2.0)
    assert len(guide_calls) == len(main_calls) > 0
    here = threading.get_ident()
    assert {thread for thread, *_ in main_calls} == {here}
    guide_threads = {thread for thread, *_ in guide_calls}
    assert (here not in guide_threads) if threading_mode == "side by side" else (guide_threads == {here})


@pytest.mark.parametrize("precision", ["loaded", "bf16"])
def test_the_guide_pass_keeps_the_callers_no_grad_and_autocast(threading_mode, precision):
    pipe = guided_pipe()
    main_calls, guide_calls = record_threads_and_modes(pipe.unet), record_threads_and_modes(pipe.guide_unet)
    sample(pipe, autoguidance_scale=2.0, precision=precision)
    modes = {(grad, autocast) for _, grad, autocast in main_calls + guide_calls}
    assert modes == {(False, precision == "bf16")}


@pytest.mark.parametrize("precision", ["loaded", "bf16"])
def test_side_by_side_and_one_after_another_sample_the_same_images(monkeypatch, precision):
    pipe, images = guided_pipe(), {}
    for cores in (2 * torch.get_num_threads(), 1):
        monkeypatch.setattr(guidance, "available_cores", lambda cores=cores: cores)
        assert guidance.guide_beside_main(torch.device("cpu")).beside == (cores > 1)
        images[cores] = sample(pipe, autoguidance_scale=2.5, precision=precision, output_type="pt").images
    first, second = images.values()
    assert torch.equal(first, second)


def test_a_failing_main_pass_waits_for_the_guide_then_raises(monkeypatch):
    monkeypatch.setattr(guidance, "available_cores", lambda: 2 * torch.get_num_threads())
    started, finished = threading.Event(), threading.Event()

    def slow_guide():
        started.set()
        time.sleep(0.2)
        finished.set()
        return torch.zeros(1)

    def failing_main():
        assert started.wait(10)  # the guide is under way when the main pass fails
        raise RuntimeError("main pass failed")

    with pytest.raises(RuntimeError, match="main pass failed"):
        guidance.guide_and_main(slow_guide, failing_main, "cpu")
    assert finished.is_set()  # no guide pass outlives the step that started it


def test_a_gpu_or_too_few_cores_run_the_passes_one_after_another(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setattr(guidance, "available_cores", lambda: 2 * threads - 1)
    busy = guidance.guide_beside_main(torch.device("cpu"))
    assert not busy.beside and f"{threads} torch threads on {2 * threads - 1} cores" in busy.reason
    monkeypatch.setattr(guidance, "available_cores", lambda: 64)
    assert not guidance.guide_beside_main(torch.device("cuda")).beside
    assert guidance.guide_beside_main(torch.device("cpu")).beside


def test_a_guide_pass_no_worker_has_started_runs_in_the_callers_thread(monkeypatch):
    monkeypatch.setattr(guidance, "available_cores", lambda: 2 * torch.get_num_threads())
    one_worker = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(guidance, "_guide_pool", lambda: one_worker)
    release, taken = threading.Event(), threading.Event()
    busy = one_worker.submit(lambda: taken.set() or release.wait(10))  # the only worker is taken
    assert taken.wait(10)
    try:
        ran_in = []
        guide, main = guidance.guide_and_main(
            lambda: ran_in.append(threading.get_ident()) or torch.ones(1), lambda: torch.zeros(1), "cpu"
        )
        assert ran_in == [threading.get_ident()] and guide.item() == 1 and main.item() == 0
    finally:
        release.set()
        busy.result()
        one_worker.shutdown()
