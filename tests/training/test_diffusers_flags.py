"""diffusers' train_unconditional.py flag names go through the one config reader to the same config as ours;
their EMA warm-up is used for real, --num_epochs sets the steps, --report_to tensorboard logs scalars and sample
grids, and --push_to_hub publishes the export through training.hub (checked at the huggingface_hub API)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from huggingface_hub import HfApi
from safetensors.torch import load_file

from tests.support.training_runs import ddpm_args
from training import train_ddpm
from training.config import DDPMTrainConfig, VAETrainConfig, parse_config
from training.data import load_data

DIFFUSERS = [
    *(
        [
            "--resolution",
            "16",
            "--train_batch_size",
            "8",
            "--gradient_accumulation_steps",
            "2",
            "--use_ema",
            "--ema_max_decay",
            "0.9999",
        ]
    ),
    *(
        [
            "--ema_inv_gamma",
            "2",
            "--ema_power",
            "0.5",
            "--checkpointing_steps",
            "250",
            "--checkpoints_total_limit",
            "3",
            "--logger",
            "tensorboard",
        ]
    ),
    *(
        [
            "--push_to_hub",
            "--hub_model_id",
            "me/digits",
            "--hub_private_repo",
            "--dataset_name",
            "ylecun/mnist",
            "--output_dir",
            "o",
        ]
    ),
    *(
        [
            "--num_epochs",
            "3",
            "--learning_rate",
            "1e-4",
            "--lr_scheduler",
            "cosine",
            "--lr_warmup_steps",
            "500",
            "--adam_beta1",
            "0.95",
        ]
    ),
    *(["--adam_beta2", "0.99", "--adam_weight_decay", "1e-6", "--adam_epsilon", "1e-07", "--mixed_precision", "bf16"]),
    *(["--prediction_type", "sample", "--ddpm_num_steps", "500", "--ddpm_beta_schedule", "squaredcos_cap_v2"]),
    *(["--ddpm_num_inference_steps", "25", "--resume_from_checkpoint", "latest"]),
]
OURS = [
    *(
        [
            "--image_size",
            "16",
            "--batch_size",
            "16",
            "--gradient_accumulation_steps",
            "2",
            "--ema_warmup",
            "power",
            "--ema_decay",
            "0.9999",
        ]
    ),
    *(
        [
            "--ema_inv_gamma",
            "2",
            "--ema_power",
            "0.5",
            "--checkpoint_every",
            "250",
            "--keep_checkpoints",
            "3",
            "--report_to",
            "tensorboard",
        ]
    ),
    *(
        [
            "--push_to_hub",
            "at_end",
            "--hub_model_id",
            "me/digits",
            "--hub_visibility",
            "private",
            "--data",
            "hf:ylecun/mnist",
            "--output_dir",
            "o",
        ]
    ),
    *(
        [
            "--num_epochs",
            "3",
            "--learning_rate",
            "1e-4",
            "--lr_scheduler",
            "cosine",
            "--lr_warmup_steps",
            "500",
            "--adam_beta1",
            "0.95",
        ]
    ),
    *(["--adam_beta2", "0.99", "--weight_decay", "1e-6", "--adam_epsilon", "1e-07", "--mixed_precision", "bf16"]),
    *(["--prediction_type", "sample", "--num_train_timesteps", "500", "--beta_schedule", "squaredcos_cap_v2"]),
    *(["--sample_steps", "25", "--resume_from_checkpoint", "latest"]),
]


def test_diffusers_flag_names_parse_to_the_same_config_as_ours(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert parse_config(DDPMTrainConfig, DIFFUSERS) == parse_config(DDPMTrainConfig, OURS)
    # --train_batch_size is per device and per accumulation step: the global batch counts the processes too
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert parse_config(DDPMTrainConfig, DIFFUSERS).batch_size == 8 * 2 * 2
    assert parse_config(DDPMTrainConfig, ["--train_data_dir", "digits/"]).data == "digits/"
    with pytest.raises(SystemExit):  # a VAE has no diffusion schedule, so no --ddpm_num_steps
        parse_config(VAETrainConfig, ["--ddpm_num_steps", "10"])


def test_diffusers_names_in_a_config_file_and_their_conflicts(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"resolution": 16, "train_batch_size": 8, "use_ema": True, "logger": "tensorboard"}))
    from_file = parse_config(DDPMTrainConfig, ["--config", str(file)])
    assert from_file == parse_config(
        DDPMTrainConfig, ["--resolution", "16", "--train_batch_size", "8", "--use_ema", "--logger", "tensorboard"]
    )
    assert (from_file.image_size, from_file.batch_size, from_file.ema_warmup) == (16, 8, "power")
    assert parse_config(DDPMTrainConfig, ["--config", str(file), "--batch_size", "32"]).batch_size == 32  # flags win
    file.write_text(json.dumps({"use_ema": False}))
    assert parse_config(DDPMTrainConfig, ["--config", str(file)]).ema_decay == 0  # diffusers without --use_ema
    with pytest.raises(ValueError, match="gives image_size twice .*--resolution"):
        parse_config(DDPMTrainConfig, ["--resolution", "16", "--image_size", "28"])
    with pytest.raises(ValueError, match="gives batch_size twice .*--train_batch_size"):
        parse_config(DDPMTrainConfig, ["--train_batch_size", "8", "--batch_size", "16"])
    file.write_text(json.dumps({"use_ema": "yes"}))
    with pytest.raises(ValueError, match="use_ema must be true or false, got 'yes'"):
        parse_config(DDPMTrainConfig, ["--config", str(file)])
    with pytest.raises(ValueError, match="push_to_hub needs hub_model_id as 'user/name', got ''"):
        parse_config(DDPMTrainConfig, ["--push_to_hub"])


def test_the_power_ema_warmup_follows_diffusers_formula(tmp_path):
    """EMA_t = d_t·EMA_{t−1} + (1 − d_t)·θ_t with d_t = min(decay, 1 − (1 + (t − 1)/γ)^−p), EMA_0 = θ_0."""
    out, steps, gamma, power = tmp_path / "ema", 3, 2.0, 0.5
    args = ["--ema_warmup", "power", "--ema_inv_gamma", str(gamma), "--ema_power", str(power), "--ema_decay", "0.99"]
    train_ddpm.main(ddpm_args(out, *args, "--keep_checkpoints", "3", steps=steps, every=1))
    shadow, ratio = {}, {}  # the power warm-up, and (as a control) EMAModel's default (1 + t)/(10 + t)
    for t in range(1, steps + 1):
        theta = load_file(out / f"checkpoint-{t}" / "model.safetensors")
        decay = 0.0 if t == 1 else min(0.99, 1 - (1 + (t - 1) / gamma) ** -power)
        shadow = {k: decay * shadow[k] + (1 - decay) * v if shadow else v for k, v in theta.items()}
        decay = 0.0 if t == 1 else t / (9 + t)
        ratio = {k: decay * ratio[k] + (1 - decay) * v if ratio else v for k, v in theta.items()}
    ema = load_file(out / f"checkpoint-{steps}" / "ema.safetensors")
    task = train_ddpm.DDPMTask(parse_config(DDPMTrainConfig, ddpm_args(out)))
    names = [name for name, _ in task.build_model().named_parameters()]  # the EMA keeps the parameters' order
    assert len(ema) == len(shadow) == len(names)
    for i, name in enumerate(names):
        torch.testing.assert_close(ema[f"shadow.{i}"], shadow[name])
    assert max((ema[f"shadow.{i}"] - ratio[n]).abs().max().item() for i, n in enumerate(names)) > 1e-4


def test_num_epochs_trains_that_many_passes_over_the_data(tmp_path):
    out = tmp_path / "epochs"
    args = ("--num_epochs", "1", "--batch_size", "64", "--gradient_accumulation_steps", "2")
    train_ddpm.main(ddpm_args(out, *args, every=0))
    batches = len(load_data("sklearn-digits", "train+val", 8)) // 32  # micro-batches of 64 / 2
    steps = math.ceil(batches / 2)
    assert json.loads((out / "train_config.json").read_text())["max_steps"] == steps
    assert [c.name for c in out.glob("checkpoint-*")] == [f"checkpoint-{steps}"]


def test_report_to_tensorboard_logs_the_scalars_and_the_sample_grids(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    train_ddpm.main(ddpm_args(out, "--report_to", "tensorboard", "--sample_every", "2", steps=4, every=4))
    events = EventAccumulator(str(out / "logs"), size_guidance={"images": 0})
    events.Reload()
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [(r["step"], r["loss"]) for r in logged if "loss" in r]
    assert [(e.step, pytest.approx(e.value)) for e in events.Scalars("loss")] == losses
    assert {"lr", "images_per_s"} <= set(events.Tags()["scalars"])
    grids = events.Images("samples")
    assert [g.step for g in grids] == [2, 4] and grids[0].width > 8


def test_push_to_hub_publishes_the_export_at_the_end(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)) or repo_id
    )

    def upload_folder(self, *, folder_path, repo_id, **kwargs):
        calls.append(("upload", repo_id, sorted(p.name for p in __import__("pathlib").Path(folder_path).rglob("*"))))

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    out = tmp_path / "pushed"
    train_ddpm.main(
        ddpm_args(out, "--push_to_hub", "--hub_model_id", "me/tiny", "--hub_private_repo", steps=2, every=2)
    )
    assert [c[:2] for c in calls] == [("create", "me/tiny"), ("upload", "me/tiny")]
    assert calls[0][2]["private"] is True
    assert {"README.md", "model_index.json", "diffusion_pytorch_model.safetensors"} <= set(calls[1][2])
