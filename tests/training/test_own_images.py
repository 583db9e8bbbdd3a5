"""Training on your own images, as diffusers' examples/unconditional_image_generation/train_unconditional.py does:
its command line trains and its output_dir loads with plain diffusers; colour stays colour from the data to the
samples; a folder trains lazily (beyond the in-memory cap), all of it unless validation_split asks, and resumes
exactly; diffusers flags that cannot apply are usage errors that say why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_vae import VAEPipeline
from tests.support.colour_images import TINY, colour_folder
from tests.support.plain_diffusers import run_plain_diffusers
from tests.support.training_runs import ROOT, assert_same_state
from training import train_ddpm, train_vae
from training.cli import ConfigError
from training.config import LEGACY_EXPORT, DDPMTrainConfig, export_path, parse_config
from training.data import load_data
from training.hub import stage_folder


def example_command(data: Path, out: Path, cache: Path) -> list[str]:
    """The issue's diffusers example command line, with a tiny UNet."""
    return [
        *["--train_data_dir", str(data), "--resolution", "32", "--output_dir", str(out), "--train_batch_size", "8"],
        *["--num_epochs", "1", "--use_ema", "--center_crop", "--random_flip", "--save_images_epochs", "1"],
        *["--dataloader_num_workers", "0", "--cache_dir", str(cache), *TINY],
    ]


LOAD = """
import json, sys
import numpy as np, torch
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
out = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=2, output_type="np").images
json.dump({"class": type(pipe).__name__, "shape": list(np.asarray(out).shape)}, open(sys.argv[2], "w"))
"""


def test_the_diffusers_example_command_line_trains_and_its_output_dir_loads_with_plain_diffusers(tmp_path):
    data, out = colour_folder(tmp_path / "imgs"), tmp_path / "out"
    command = [sys.executable, "-m", "training.train_ddpm", *example_command(data, out, tmp_path / "cache")]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "found 20 images (3 channels, 32×32); training on 20, holding out 0" in done.stdout
    assert (out / "model_index.json").is_file() and (out / "checkpoint-2").is_dir()  # 20 // 8 batches: 2 steps
    assert [p.name for p in (out / "samples").iterdir()] == ["step-0000002.png"]  # one epoch: one grid
    config = json.loads((out / "train_config.json").read_text())
    assert (config["crop"], config["flip"], config["ema_warmup"], config["batch_size"]) == (
        "center",
        "horizontal",
        "power",
        8,
    )
    report = tmp_path / "report.json"
    run_plain_diffusers(tmp_path, LOAD, str(out), str(report))
    assert json.loads(report.read_text()) == {"class": "DDPMPipeline", "shape": [2, 32, 32, 3]}
    staged = stage_folder(out, tmp_path / "staged", "me/colour")  # what --push_to_hub would upload
    assert not {"checkpoint-2", "samples", "metrics.jsonl", "train_config.json"} & {p.name for p in staged.iterdir()}
    card = (staged / "README.md").read_text()
    assert "A folder of the trainer's own images (`imgs`)." in card and "MNIST" not in card


def test_colour_in_colour_out_for_pixel_vae_and_latent_models(tmp_path):
    data = colour_folder(tmp_path / "imgs")
    args = ["--data", str(data), "--image_size", "32", "--cache_dir", str(tmp_path / "cache"), "--batch_size", "8"]
    args += ["--max_steps", "2", "--sample_every", "2", "--sample_grid_size", "4"]
    pixel = train_ddpm.main(["--output_dir", str(tmp_path / "pixel"), *args, *TINY])
    vae_args = ["--latent_type", "spatial", "--latent_channels", "2", "--block_out_channels", "8,8"]
    vae = train_vae.main(["--output_dir", str(tmp_path / "vae"), *args, *vae_args, "--binarize", "none"])
    latent = train_ddpm.main(["--output_dir", str(tmp_path / "latent"), *args, *TINY, "--space", "latent"] + [
        "--vae", str(vae), "--block_out_channels", "8", "--attention_levels", ""])  # fmt: skip
    assert pixel == tmp_path / "pixel" and vae == tmp_path / "vae"  # output_dir is the pipeline
    assert DDPMPipeline.from_pretrained(pixel).unet.config.in_channels == 3
    assert VAEPipeline.from_pretrained(vae).vae.config.in_channels == 3
    from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline

    for folder, pipe in ((pixel, DDPMPipeline), (latent, LatentDDPMPipeline)):
        loaded = pipe.from_pretrained(folder)
        loaded.set_progress_bar_config(disable=True)
        images = loaded(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=2).images
        assert images[0].mode == "RGB"
        grid = np.asarray(Image.open(next((folder / "samples").iterdir())).convert("RGB"), dtype=np.int64)
        assert (grid[..., 0] != grid[..., 1]).mean() > 0.3, "the sample grid is grey"


def test_a_colour_folder_resumes_exactly_with_random_crops_flips_and_workers(tmp_path):
    data = colour_folder(tmp_path / "imgs")
    common = ["--data", str(data), "--image_size", "32", "--cache_dir", str(tmp_path / "cache"), "--batch_size", "4"]
    common += ["--flip", "horizontal", "--crop", "random", "--sample_every", "0", "--checkpoint_every", "3", *TINY]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train_ddpm.main(["--output_dir", str(whole), *common, "--max_steps", "6", "--keep_checkpoints", "3"])
    train_ddpm.main(["--output_dir", str(parts), *common, "--max_steps", "6", "--dataloader_num_workers", "2"] + [
        "--max_minutes", "1e-9"])  # fmt: skip  # stops after its first step, with a checkpoint
    assert [p.name for p in parts.glob("checkpoint-*")] == ["checkpoint-1"]
    resumed = ["--max_steps", "6", "--resume_from_checkpoint", "latest", "--dataloader_num_workers", "1"]
    train_ddpm.main(["--output_dir", str(parts), *common, *resumed])
    assert_same_state(whole / "checkpoint-6", parts / "checkpoint-6")


def test_a_folder_larger_than_the_memory_cap_trains_and_nothing_is_held_out_unless_asked(tmp_path, monkeypatch, capsys):
    data = colour_folder(tmp_path / "imgs", count=24, nested=True)
    monkeypatch.setattr("training.data.MAX_DATA_BYTES", 3 * 32 * 32 * 4 * 8)  # eight colour images (6 are held out)
    options = {"cache_dir": str(tmp_path / "cache")}
    with pytest.raises(ValueError, match="24 images of 3×32×32 .* over the"):
        load_data(str(data), "all", 32, **options)
    args = ["--data", str(data), "--image_size", "32", "--cache_dir", str(tmp_path / "cache"), "--batch_size", "8"]
    task = train_ddpm.DDPMTask(parse_config(DDPMTrainConfig, [*args, "--num_classes", "2", *TINY]))
    assert len(task.data) == 24 and sorted(task.data.labels.tolist()) == [0] * 12 + [1] * 12
    assert "found 24 images (3 channels, 32×32); training on 24, holding out 0" in capsys.readouterr().out
    held = train_ddpm.DDPMTask(parse_config(DDPMTrainConfig, [*args, "--validation_split", "0.25", *TINY]))
    assert len(held.data) == 18 and "training on 18, holding out 6 (validation_split=0.25)" in capsys.readouterr().out
    out = train_ddpm.main(
        ["--output_dir", str(tmp_path / "big"), *args, "--max_steps", "3", "--sample_every", "0", *TINY]
    )
    assert (out / "unet" / "config.json").is_file()
    vae = train_vae.main(["--output_dir", str(tmp_path / "vae"), *args, "--max_steps", "2", "--validation_split", "0.25"] + [
        "--block_out_channels", "8,8", "--latent_dim", "4", "--eval_every", "1", "--sample_every", "0"])  # fmt: skip
    logged = [json.loads(line) for line in (tmp_path / "vae" / "metrics.jsonl").read_text().splitlines()]
    assert vae == tmp_path / "vae" and [r["step"] for r in logged if "val_loss" in r] == [1, 2]


DIFFUSERS_FLAGS = {  # every flag of diffusers' train_unconditional.py, with a value, or None for a switch
    "dataset_name": "me/faces", "dataset_config_name": "small", "train_data_dir": None, "output_dir": "o",
    "overwrite_output_dir": None, "cache_dir": "c", "resolution": "32", "center_crop": None, "random_flip": None,
    "train_batch_size": "8", "eval_batch_size": "9", "dataloader_num_workers": "2", "num_epochs": "3",
    "save_images_epochs": "2", "save_model_epochs": "3", "gradient_accumulation_steps": "2", "learning_rate": "1e-4",
    "lr_scheduler": "linear", "lr_warmup_steps": "5", "adam_beta1": "0.95", "adam_beta2": "0.99",
    "adam_weight_decay": "1e-6", "adam_epsilon": "1e-08", "use_ema": None, "ema_inv_gamma": "1.0", "ema_power": "0.75",
    "ema_max_decay": "0.9999", "push_to_hub": None, "hub_model_id": "me/m", "hub_private_repo": None,
    "logger": "tensorboard", "logging_dir": "tb", "local_rank": "0", "mixed_precision": "bf16",
    "prediction_type": "sample", "ddpm_num_steps": "500", "ddpm_num_inference_steps": "20",
    "ddpm_beta_schedule": "squaredcos_cap_v2", "checkpointing_steps": "100", "checkpoints_total_limit": "2",
    "resume_from_checkpoint": "latest",
}  # fmt: skip
REFUSED = {  # flag and value → the reason given
    ("model_config_name_or_path", "google/ddpm-cifar10-32"): "the UNet is built from --block_out_channels",
    ("enable_xformers_memory_efficient_attention", None): "xformers is not a dependency",
    ("hub_token", "hf_x"): "saved in train_config.json",
    ("logger", "wandb"): "Weights & Biases is not a dependency",
}


def test_every_diffusers_flag_is_accepted_with_its_meaning_or_refused_saying_why(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    argv = []
    for name, value in DIFFUSERS_FLAGS.items():
        argv += [f"--{name}"] + ([value] if value else [])
    argv.remove("--train_data_dir")  # diffusers takes one of dataset_name and train_data_dir; both: refused here
    cfg = parse_config(DDPMTrainConfig, argv)
    assert (cfg.data, cfg.dataset_config, cfg.cache_dir, cfg.image_size) == ("hf:me/faces", "small", "c", 32)
    assert (cfg.crop, cfg.flip, cfg.sample_grid_size, cfg.dataloader_num_workers) == ("center", "horizontal", 9, 2)
    assert (cfg.num_epochs, cfg.save_images_epochs, cfg.save_model_epochs, cfg.batch_size) == (3, 2, 3, 16)
    assert (cfg.learning_rate, cfg.weight_decay, cfg.ema_warmup, cfg.ema_decay) == (1e-4, 1e-6, "power", 0.9999)
    assert (cfg.push_to_hub, cfg.hub_visibility, cfg.report_to, cfg.logging_dir) == (
        "at_end",
        "private",
        "tensorboard",
        "tb",
    )
    assert (cfg.num_train_timesteps, cfg.sample_steps, cfg.checkpoint_every, cfg.keep_checkpoints) == (500, 20, 100, 2)
    with pytest.raises(ConfigError, match="gives data twice"):
        parse_config(DDPMTrainConfig, ["--dataset_name", "me/faces", "--train_data_dir", "imgs"])
    for (name, value), why in REFUSED.items():
        with pytest.raises(ConfigError, match=f"--{name}.* cannot apply: .*{why}"):
            parse_config(DDPMTrainConfig, [f"--{name}"] + ([value] if value else []))
    with pytest.raises(ConfigError, match="flip .*cannot apply to space='latent'"):
        parse_config(DDPMTrainConfig, ["--random_flip", "--space", "latent", "--vae", "v"])


def test_save_images_and_model_epochs_count_passes_over_the_data(tmp_path):
    data = colour_folder(tmp_path / "imgs", count=16)
    args = ["--train_data_dir", str(data), "--resolution", "32", "--cache_dir", str(tmp_path / "c"), *TINY]
    out = tmp_path / "out"
    args += ["--output_dir", str(out), "--train_batch_size", "4", "--num_epochs", "2", "--save_images_epochs", "1"]
    train_ddpm.main([*args, "--save_model_epochs", "2", "--eval_batch_size", "4"])
    config = json.loads((out / "train_config.json").read_text())
    assert (config["max_steps"], config["sample_every"], config["eval_every"]) == (8, 4, 8)
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-0000004.png", "step-0000008.png"]


def test_yaml_numbers_like_1e_4_are_numbers_and_a_bad_field_is_a_one_line_usage_error(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("learning_rate: 1e-4\nadam_epsilon: 1E-08\nresolution: 16\n")
    cfg = parse_config(DDPMTrainConfig, ["--config", str(file)])
    assert (cfg.learning_rate, cfg.adam_epsilon, cfg.image_size) == (1e-4, 1e-8, 16)
    file.write_text("learning_rate: fast\n")
    done = subprocess.run(
        [sys.executable, "-m", "training.train_ddpm", "--config", str(file)], cwd=ROOT, capture_output=True, text=True
    )
    assert (
        done.returncode == 2
        and done.stderr
        == "train_ddpm.py: error: learning_rate must be a number, got 'fast' (a quoted string: write the number without quotes).\n"
    )


def test_a_run_folder_of_the_older_layout_keeps_exporting_into_its_model_subfolder(tmp_path):
    new, old, pinned = tmp_path / "new", tmp_path / "old", tmp_path / "pinned"
    (old / LEGACY_EXPORT).mkdir(parents=True)
    pinned.mkdir()
    (pinned / "train_config.json").write_text(json.dumps({"output_dir": str(pinned), "export_dir": ""}))
    for folder, expected in ((new, new), (old, old / LEGACY_EXPORT), (pinned, pinned / LEGACY_EXPORT)):
        assert export_path(DDPMTrainConfig(output_dir=str(folder))) == expected
    args = ["--data", "sklearn-digits", "--image_size", "8", "--batch_size", "8", "--max_steps", "1", *TINY]
    assert train_ddpm.main(["--output_dir", str(pinned), *args]) == pinned / LEGACY_EXPORT
    assert (
        train_ddpm.main(["--output_dir", str(pinned), *args, "--max_steps", "2", "--resume_from_checkpoint", "latest"])
        == pinned / LEGACY_EXPORT
    )
    assert not (pinned / "model_index.json").exists()
