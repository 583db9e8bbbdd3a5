"""Resuming is safe: a damaged latest checkpoint is skipped with a warning and the previous good one resumes to
the uninterrupted weights; folders that are not checkpoints are ignored; a corrupt state.json is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.training_runs import assert_same_state, ddpm_args
from training import train_ddpm
from training.checkpoints import checkpoint_problem, list_checkpoints, resolve_checkpoint


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """20 steps in one go, checkpoints at 10 and 20."""
    out = tmp_path_factory.mktemp("reference")
    train_ddpm.main(ddpm_args(out))
    return out


def run_with(reference: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    for name in ("checkpoint-10", "checkpoint-20"):
        shutil.copytree(reference / name, out / name)
    return out


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda c: truncate(c / "model.safetensors"), "model.safetensors is truncated or corrupt"),
        (lambda c: truncate(c / "optimizer.bin"), "optimizer.bin is truncated or corrupt"),
        (lambda c: (c / "ema.safetensors").unlink(), "ema.safetensors is missing"),
        (lambda c: truncate(c / "state.json"), "state.json is unreadable"),
    ],
)
def test_a_damaged_latest_checkpoint_is_skipped_and_the_previous_one_resumes_exactly(
    reference, tmp_path, damage, problem
):
    out = run_with(reference, tmp_path)
    damage(out / "checkpoint-20")
    assert checkpoint_problem(out / "checkpoint-10") is None
    with pytest.warns(UserWarning, match=f"skipping damaged checkpoint .*checkpoint-20: {problem}"):
        assert resolve_checkpoint(out, "latest") == out / "checkpoint-10"
    with pytest.warns(UserWarning, match="skipping damaged checkpoint"):
        train_ddpm.main(ddpm_args(out, "--resume_from_checkpoint", "latest"))
    assert_same_state(out / "checkpoint-20", reference / "checkpoint-20")  # retrained from step 10, rewritten
    with pytest.raises(ValueError, match=f"checkpoint-10.*is damaged: {problem}"):
        damage(out / "checkpoint-10")
        resolve_checkpoint(out, str(out / "checkpoint-10"))  # named explicitly: refused, never replaced


def test_folders_that_are_not_checkpoints_are_ignored_by_latest(reference, tmp_path):
    out = run_with(reference, tmp_path)
    for name in ("checkpoint-abc", "checkpoint-", "checkpoint-30-old", "checkpoint-40.tmp"):
        shutil.copytree(reference / "checkpoint-10", out / name)
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-10", "checkpoint-20"]
    assert resolve_checkpoint(out, "latest") == out / "checkpoint-20"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({}, r"corrupt state\.json \(step must be an integer ≥ 1, got None\)"),
        ({"step": -5, "train_seconds": 1.0}, r"corrupt state\.json \(step must be an integer ≥ 1, got -5\)"),
        ({"step": 7, "train_seconds": 1.0}, r"corrupt state\.json \(step 7 does not match the folder name\)"),
        ({"step": 20, "train_seconds": -1}, r"train_seconds must be a finite number ≥ 0, got -1"),
        ([20], r"corrupt state\.json \(not a JSON object"),
    ],
)
def test_a_corrupt_state_is_refused_with_a_clear_message(reference, tmp_path, state, message):
    out = run_with(reference, tmp_path)
    (out / "checkpoint-20" / "state.json").write_text(json.dumps(state))
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ValueError, match=message):
        train_ddpm.main(ddpm_args(out, "--resume_from_checkpoint", "latest"))
    assert sorted(p.name for p in out.iterdir()) == before  # refused before anything is written


def test_resuming_with_another_ema_setting_is_refused(reference, tmp_path):
    out = run_with(reference, tmp_path)
    with pytest.raises(ValueError, match="was written with EMA: resume with the ema_decay it was trained with"):
        train_ddpm.main(ddpm_args(out, "--resume_from_checkpoint", "latest", "--ema_decay", "0"))


def test_rotation_keeps_the_real_checkpoint_beside_a_damaged_one_with_a_higher_step(tmp_path):
    """A damaged checkpoint-9999 (only its state.json) must not count as the newest: with --keep_checkpoints 1 the
    real run keeps its own latest checkpoint, and a resume continues from it, not from scratch."""
    out = tmp_path / "run"
    damaged = out / "checkpoint-9999"
    damaged.mkdir(parents=True)
    (damaged / "state.json").write_text(json.dumps({"step": 9999, "train_seconds": 1.0}))
    train_ddpm.main(ddpm_args(out, "--keep_checkpoints", "1", steps=20, every=10))
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-20", "checkpoint-9999"]
    assert damaged.is_dir(), "a damaged folder is left for its owner to look at, never counted"
    with pytest.warns(UserWarning, match="skipping damaged checkpoint"):
        assert resolve_checkpoint(out, "latest") == out / "checkpoint-20"


def test_a_run_killed_before_its_checkpoint_logs_each_step_once_after_resuming(reference, tmp_path):
    """Steps 11-20 were logged, then the kill lost checkpoint-20: the resumed run logs them again, once."""
    out = tmp_path / "run"
    shutil.copytree(reference / "checkpoint-10", out / "checkpoint-10")
    shutil.copy(reference / "metrics.jsonl", out / "metrics.jsonl")
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 21, "lo')  # a line torn by the kill
    train_ddpm.main(ddpm_args(out, "--resume_from_checkpoint", "latest"))
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    reference_steps = [json.loads(line)["step"] for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert steps == reference_steps and len(steps) == len(set(steps))
