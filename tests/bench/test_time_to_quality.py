"""bench/bench_time_to_quality.py: a tiny recipe trains with snapshots on a CPU-time clock, every snapshot is scored
at the app's default sampler, and the curve, its plot and the first time each target is met are written."""

from __future__ import annotations

import json
import time

import pytest

from bench import bench_time_to_quality as ttq

TINY_LATENT = """
export: ddpm
guide: guide
stages:
  vae:
    task: vae
    config: {latent_type: spatial, latent_channels: 2, block_out_channels: [8, 8], binarize: none, max_steps: 3,
             batch_size: 16, eval_every: 0, sample_every: 0, checkpoint_every: 0}
  guide:
    task: ddpm
    config: {space: latent, vae: "{vae}", max_steps: 2, block_out_channels: [8], layers_per_block: 1,
             attention_levels: [], norm_num_groups: 4, num_train_timesteps: 50, batch_size: 16, sample_every: 0,
             checkpoint_every: 0, lr_warmup_steps: 1}
  ddpm:
    task: ddpm
    config: {space: latent, vae: "{vae}", max_steps: 12, block_out_channels: [8], layers_per_block: 1,
             attention_levels: [], norm_num_groups: 4, num_train_timesteps: 50, batch_size: 16, sample_every: 0,
             checkpoint_every: 0, lr_warmup_steps: 1}
"""


def point(confident, low, high, minutes):
    return {
        "confident_fraction": confident,
        "min_digit_fraction": low,
        "max_digit_fraction": high,
        "cpu_minutes": minutes,
    }


def test_first_meeting_needs_both_targets_when_digits_count():
    points = [point(0.95, 0.02, 0.2, 1.0), point(0.89, 0.08, 0.12, 2.0), point(0.91, 0.08, 0.12, 3.0)]
    assert ttq.first_meeting(points, digits=False) == 1.0
    assert ttq.first_meeting(points, digits=True) == 3.0
    assert ttq.first_meeting(points[:2], digits=True) is None


def test_cpu_clock_leaves_paused_work_out():
    clock = ttq.CpuClock()
    with clock.pause():
        end = time.process_time() + 0.3
        while time.process_time() < end:  # burn CPU while paused
            pass
    assert clock.minutes() < 0.1 / 60
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    assert clock.minutes() >= 0.3 / 60


def test_set_overrides_parse_and_bad_ones_are_named():
    assert ttq.parse_overrides(["ddpm.max_steps=20", "vae.beta=0.5", "ddpm.attention_levels=[]"]) == {
        "ddpm": {"max_steps": 20, "attention_levels": []},
        "vae": {"beta": 0.5},
    }
    with pytest.raises(ValueError, match="task.field=value"):
        ttq.parse_overrides(["max_steps=20"])


@pytest.mark.slow
def test_a_tiny_latent_recipe_gives_a_scored_curve_on_the_cpu_clock(tmp_path):
    recipe = tmp_path / "tiny-latent.yaml"
    recipe.write_text(TINY_LATENT)
    root = tmp_path / "runs"
    args = ["--recipe", str(recipe), "--output-root", str(root), "--every", "0.0005", "--samples", "8"]
    (curve,) = ttq.main([*args, "--final-samples", "16"])
    assert json.loads((root / "tiny-latent" / "time_to_quality.json").read_text()) == curve
    assert (root / "tiny-latent" / "time_to_quality.png").stat().st_size > 0
    points = curve["points"]
    assert len(points) >= 2, "snapshots are taken on the way, not only at the end"
    minutes = [p["cpu_minutes"] for p in points]
    assert minutes == sorted(minutes) and points[-1]["step"] == 12 and points[-1]["num_samples"] == 16
    assert all(p["num_samples"] == 8 for p in points[:-1]) and all(p["guided"] for p in points)
    assert list(curve["stage_cpu_minutes"]) == ["vae", "guide", "ddpm"]
    # the clock counts every stage: the last point is their sum (snapshot exports left out)
    assert points[-1]["cpu_minutes"] == pytest.approx(sum(curve["stage_cpu_minutes"].values()), rel=1e-3)
    assert points[0]["cpu_minutes"] > curve["stage_cpu_minutes"]["vae"] + curve["stage_cpu_minutes"]["guide"]
    for p in points:
        assert 0 <= p["confident_fraction"] <= 1 and p["frechet_distance"] >= 0
    # the training is recorded: --rescore scores the same snapshots again without training
    trained = json.loads((root / "tiny-latent" / "trained.json").read_text())
    assert [s["step"] for s in trained["snapshots"]] == [p["step"] for p in points]
    checkpoints_before = sorted((root / "tiny-latent").rglob("*.safetensors"))
    mtimes = {path: path.stat().st_mtime_ns for path in (root / "tiny-latent" / "ddpm").rglob("*.safetensors")}
    (rescored,) = ttq.main([*args, "--final-samples", "16", "--rescore"])
    assert [(p["cpu_minutes"], p["step"]) for p in rescored["points"]] == [
        (p["cpu_minutes"], p["step"]) for p in points
    ]
    assert rescored["stage_cpu_minutes"] == curve["stage_cpu_minutes"]
    assert sorted((root / "tiny-latent").rglob("*.safetensors")) == checkpoints_before
    assert {path: path.stat().st_mtime_ns for path in mtimes} == mtimes  # nothing was trained again
