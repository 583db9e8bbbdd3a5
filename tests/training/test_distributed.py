"""Multi-process training is right or refuses. Two CPU processes (torchrun, gloo, ACCELERATE_USE_CPU=1) split
every global batch between them, one of them writes, and they train like one process with the same global
batch (to round-off); killed and resumed they end exactly where an uninterrupted two-process run does; one
process continues their checkpoint. Launches that would run one process or two independent ones stop with the
command to run instead, having written nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.support.training_runs import ROOT, STEPS, assert_same_state, ddpm_args, logged_losses
from training import train_ddpm
from training.data import BatchSampler, load_data
from training.launch import LaunchMismatch, check_launch, requested_processes

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
ROUND_OFF = 1e-3  # weights of the two-process and one-process runs after 20 Adam steps (measured: 4e-5)


def launch(command: list[str], *, cpu: bool = True, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "MASTER_"))}
    environ.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **env)
    if cpu:
        environ["ACCELERATE_USE_CPU"] = "1"
    result = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600)
    if check and result.returncode:
        raise AssertionError(f"{command} failed:\n{result.stderr[-3000:]}")
    return result


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return {f"{n}:{k}": v for n in ("model", "ema") for k, v in load_file(ckpt / f"{n}.safetensors").items()}


def assert_close_weights(a: Path, b: Path, tolerance: float = ROUND_OFF) -> None:
    wa, wb = weights(a), weights(b)
    worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert worst < tolerance, f"{a} and {b} differ by {worst}"


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    train_ddpm.main(ddpm_args(out))
    return out


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> tuple[Path, Path]:
    """STEPS steps on two processes, recording each process's rows; returns (run folder, probe folder)."""
    base = tmp_path_factory.mktemp("two")
    out, probe = base / "run", base / "probe"
    probe.mkdir()
    result = launch([*TORCHRUN, "tests/support/launch_probe.py", *ddpm_args(out)], PROBE_DIR=str(probe))
    (probe / "stdout.txt").write_text(result.stdout)
    return out, probe


@pytest.mark.slow
def test_a_run_says_how_many_processes_really_started(two_processes):
    _, probe = two_processes
    said = (probe / "stdout.txt").read_text()
    assert said.count("Training on 2 processes (MULTI_CPU, gloo): global batch 16 = 2 × 8 rows.") == 1  # main only


@pytest.mark.slow
def test_two_processes_split_every_global_batch_and_train_like_one_process(two_processes, one_process):
    out, probe = two_processes
    data = load_data("sklearn-digits", "train+val", 8)
    sampler = BatchSampler(len(data), 16, seed=0)
    ranks = [json.loads((probe / f"rank-{r}.json").read_text()) for r in range(2)]
    for step in range(STEPS):
        single = [hashlib.sha1(row.numpy().tobytes()).hexdigest() for row in data.images[sampler.indices(step)]]
        halves = [rank[str(step)] for rank in ranks]
        assert [len(h) for h in halves] == [8, 8] and halves[0] + halves[1] == single, f"step {step}"
    # one writer: the same files as one process, plus the second process's RNG state in each checkpoint
    files = {str(p.relative_to(out)) for p in out.rglob("*")}
    expected = {str(p.relative_to(one_process)) for p in one_process.rglob("*")}
    assert files == expected | {f"checkpoint-{s}/random_states_1.pkl" for s in (10, STEPS)}
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == list(
        range(1, STEPS + 1)
    )
    # the logged loss is the global batch's (reduced across processes), the weights those of one process
    torch.testing.assert_close(logged_losses(out), logged_losses(one_process), rtol=1e-5, atol=0)
    for step in (10, STEPS):
        assert_close_weights(out / f"checkpoint-{step}", one_process / f"checkpoint-{step}")


@pytest.mark.slow
def test_two_processes_killed_and_resumed_end_exactly_where_an_uninterrupted_run_does(two_processes, tmp_path):
    out = tmp_path / "killed"
    killed = launch([*TORCHRUN, "tests/support/launch_probe.py", *ddpm_args(out)], check=False, PROBE_KILL_AT="15")
    assert killed.returncode != 0 and [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-10"]
    launch([*TORCHRUN, "-m", "training.train_ddpm", *ddpm_args(out, "--resume_from_checkpoint", "latest")])
    assert_same_state(out / f"checkpoint-{STEPS}", two_processes[0] / f"checkpoint-{STEPS}")


@pytest.mark.slow
def test_one_process_continues_a_two_process_checkpoint_as_the_two_would(two_processes, one_process, tmp_path):
    """docs/training.md's promise: the LR schedule and the data position follow the global step, so a checkpoint
    resumes on any number of processes (here 2 → 1) and ends where both uninterrupted runs end, to round-off."""
    out = tmp_path / "continued"
    shutil.copytree(two_processes[0] / "checkpoint-10", out / "checkpoint-10")
    train_ddpm.main(ddpm_args(out, "--resume_from_checkpoint", "latest"))
    assert_close_weights(out / f"checkpoint-{STEPS}", two_processes[0] / f"checkpoint-{STEPS}")
    assert_close_weights(out / f"checkpoint-{STEPS}", one_process / f"checkpoint-{STEPS}")
    assert json.loads((out / f"checkpoint-{STEPS}" / "state.json").read_text())["num_processes"] == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("launcher", "cpu", "message"),
    [
        ([*ACCELERATE, "--cpu", "--num_processes", "2"], False, "asked for 2 processes .*but Accelerate started 1"),
        ([*ACCELERATE, "--multi_gpu", "--num_processes", "2"], False, "each of the 2 processes would train alone"),
    ],
    ids=["accelerate-cpu", "accelerate-multi-gpu-without-gpus"],  # torchrun without ACCELERATE_USE_CPU: as the second
)
def test_misleading_launches_stop_with_the_command_to_run_and_write_nothing(tmp_path, launcher, cpu, message):
    out = tmp_path / "run"
    result = launch([*launcher, "-m", "training.train_ddpm", *ddpm_args(out)], cpu=cpu, check=False)
    assert result.returncode != 0
    assert "LaunchMismatch" in result.stderr and "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu" in result.stderr
    assert re.search(message, result.stderr), result.stderr[-2000:]
    assert not out.exists()


@pytest.mark.parametrize(
    ("env", "started", "refused"),
    [
        ({}, 1, False),
        ({"WORLD_SIZE": "2"}, 2, False),
        ({"WORLD_SIZE": "2"}, 1, True),  # torchrun or --multi_gpu without ACCELERATE_USE_CPU on a machine without GPUs
        ({"OMPI_COMM_WORLD_SIZE": "4"}, 4, False),
        ({"ACCELERATE_DYNAMO_BACKEND": "NO", "MASTER_ADDR": "127.0.0.1"}, 1, True),  # accelerate launch --cpu -n 2
        ({"ACCELERATE_DYNAMO_BACKEND": "NO"}, 1, False),  # accelerate launch, one process
    ],
)
def test_the_launch_check_compares_what_was_asked_with_what_started(env, started, refused):
    if refused:
        with pytest.raises(LaunchMismatch, match="Nothing was written. Run instead"):
            check_launch(env, started, "NO", script="training.train_ddpm")
    else:
        check_launch(env, started, "MULTI_CPU" if started > 1 else "NO")
    assert requested_processes({"WORLD_SIZE": "3"})[0] == 3


@pytest.mark.slow
def test_two_processes_on_a_lazily_decoded_colour_folder_train_like_one_process(tmp_path):
    from tests.support.colour_images import TINY, colour_folder

    data = colour_folder(tmp_path / "imgs", count=16)
    args = ["--data", str(data), "--image_size", "32", "--cache_dir", str(tmp_path / "cache"), "--batch_size", "8"]
    args += ["--crop", "random", "--flip", "horizontal", "--dataloader_num_workers", "1", "--max_steps", "4", *TINY]
    args += ["--sample_every", "0", "--checkpoint_every", "4", "--log_every", "1"]
    one, two = tmp_path / "one", tmp_path / "two"
    train_ddpm.main(["--output_dir", str(one), *args])
    result = launch([*TORCHRUN, "-m", "training.train_ddpm", "--output_dir", str(two), *args])
    assert "Training on 2 processes (MULTI_CPU, gloo): global batch 8 = 2 × 4 rows." in result.stdout
    torch.testing.assert_close(logged_losses(two), logged_losses(one), rtol=1e-4, atol=0)
    assert_close_weights(two / "checkpoint-4", one / "checkpoint-4")
