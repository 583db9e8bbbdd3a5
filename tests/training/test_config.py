"""Training input is validated once, completely, from its types and a table of bounds: every bad value — from a
flag, a JSON or YAML config file or Python — is a ValueError naming the field, raised before anything is
written; good values come back typed (ints, finite floats, tuples)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from training import train_ddpm
from training.config import ClassifierTrainConfig, DDPMTrainConfig, TrainConfig, VAETrainConfig, parse_config
from training.fields import Range, check_fields

CONFIGS = (TrainConfig, VAETrainConfig, DDPMTrainConfig, ClassifierTrainConfig)
TINY = ["--data", "sklearn-digits", "--image_size", "8", "--block_out_channels", "8,16", "--norm_num_groups", "4"]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max_grad_norm", "nan", "max_grad_norm must be a finite number, got nan"),
        ("--max_minutes", "inf", "max_minutes must be a finite number, got inf"),
        ("--snr_gamma", "nan", "snr_gamma must be a finite number"),
        ("--learning_rate", "inf", "learning_rate must be a finite number"),
        ("--label_dropout", "5", r"label_dropout must be in \[0, 1\], got 5"),
        ("--max_steps", "2.5", "max_steps must be an integer, got '2.5'"),
        ("--image_size", "100000", r"image_size must be in \[1, 1024\], got 100000"),
        ("--block_out_channels", "", r"block_out_channels must have a number of entries in \[1, 8\], got 0"),
        ("--block_out_channels", "8,x", "block_out_channels must be comma-separated integers"),
        ("--block_out_channels", "8,-16", r"block_out_channels must be in \[1, 2048\], got -16"),
        ("--seed", "-1", r"seed must be in \[0, 4294967295\], got -1"),
        ("--adam_beta1", "1", r"adam_beta1 must be in \[0, 1\), got 1"),
        ("--norm_num_groups", "3", r"norm_num_groups \(3\) must divide every entry of block_out_channels"),
        ("--augment_shift", "8", r"augment_shift \(8\) must be below image_size \(8\)"),
        ("--sample_steps", "2000", r"sample_steps \(2000\) must be ≤ num_train_timesteps \(1000\)"),
        ("--resume_from_checkpoint", " ", "resume_from_checkpoint must be 'latest' or a checkpoint folder"),
    ],
)
def test_bad_flags_are_value_errors_naming_the_field_before_anything_is_written(tmp_path, flag, value, message):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train_ddpm.main(["--output_dir", str(out), *TINY, flag, value])
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_steps": 2.5}, "max_steps must be an integer, got 2.5"),
        ({"learning_rate": "0.001"}, "learning_rate must be a number, got '0.001' .*without quotes"),
        ({"max_steps": True}, "max_steps must be an integer, got True"),
        ({"label_dropout": 5}, r"label_dropout must be in \[0, 1\], got 5"),
        ({"max_grad_norm": math.nan}, "max_grad_norm must be a finite number, got nan"),
        ({"block_out_channels": []}, r"block_out_channels must have a number of entries in \[1, 8\], got 0"),
        ({"block_out_channels": [8, 16.5]}, "block_out_channels must be a list of integers"),
        ({"prediction_type": "noise"}, "prediction_type must be one of"),
        ({"data": 5}, "data must be a string, got 5"),
        ({"split": "everything"}, "split must be one of"),
    ],
)
def test_bad_config_file_values_are_value_errors_naming_the_field(tmp_path, suffix, values, message):
    import yaml

    file = tmp_path / f"config{suffix}"
    file.write_text(json.dumps(values) if suffix == ".json" else yaml.safe_dump(values))
    with pytest.raises(ValueError, match=message):
        parse_config(DDPMTrainConfig, ["--config", str(file), "--output_dir", str(tmp_path / "run")])


ROOT = Path(__file__).resolve().parents[2]


def test_yaml_exponent_without_a_dot_is_a_number_and_a_quoted_number_is_an_error_saying_so(tmp_path):
    (tmp_path / "c.yaml").write_text("learning_rate: 1e-3\n")  # YAML 1.1 alone would read the string "1e-3"
    assert parse_config(DDPMTrainConfig, ["--config", str(tmp_path / "c.yaml")]).learning_rate == 1e-3
    (tmp_path / "c.yaml").write_text("learning_rate: '1e-3'\n")
    with pytest.raises(ValueError, match=r"learning_rate must be a number, got '1e-3' \(a quoted string"):
        parse_config(DDPMTrainConfig, ["--config", str(tmp_path / "c.yaml")])
    (tmp_path / "ok.yaml").write_text("learning_rate: 1.0e-3\nmax_steps: 7\nblock_out_channels: [8, 16]\n")
    cfg = parse_config(DDPMTrainConfig, ["--config", str(tmp_path / "ok.yaml"), "--norm_num_groups", "4"])
    assert (cfg.learning_rate, cfg.max_steps, cfg.block_out_channels) == (1e-3, 7, (8, 16))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must hold field: value pairs, got list"),
        ('{"max_steps": ', "is not valid JSON"),
    ],
)
def test_config_files_that_are_not_a_mapping_are_clear_errors(tmp_path, text, message):
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        parse_config(DDPMTrainConfig, ["--config", str(tmp_path / "c.json")])
    with pytest.raises(ValueError, match="does not exist"):
        parse_config(DDPMTrainConfig, ["--config", str(tmp_path / "missing.yaml")])


def test_output_and_export_folders_that_cannot_be_used_are_refused(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    with pytest.raises(ValueError, match="output_dir=.*a-file' is a file, not a folder"):
        DDPMTrainConfig(output_dir=str(file))
    with pytest.raises(ValueError, match="export_dir=.*a-file' is a file"):
        DDPMTrainConfig(output_dir=str(tmp_path / "run"), export_dir=str(file))
    for export in (tmp_path / "run", tmp_path):  # the run folder itself, or a folder holding it
        with pytest.raises(ValueError, match="would replace the run folder"):
            DDPMTrainConfig(output_dir=str(tmp_path / "run"), export_dir=str(export))
    with pytest.raises(ValueError, match="output_dir must not be empty"):
        DDPMTrainConfig(output_dir=" ")
    with pytest.raises(ValueError, match="max_steps must be an integer, got 2.5"):
        DDPMTrainConfig(max_steps=2.5)  # Python callers are checked the same way
    with pytest.raises(ValueError, match=r"lr_warmup_steps \(1\) must be in \[2, max_steps = 1500\)"):
        ClassifierTrainConfig(lr_warmup_steps=1)  # torch's one-cycle schedule needs a rise and a fall


def test_good_values_come_back_typed_from_flags_files_and_python(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"learning_rate": 1, "block_out_channels": [8, 16]}))
    cfg = parse_config(DDPMTrainConfig, ["--config", str(tmp_path / "c.json"), "--norm_num_groups", "4"])
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)  # an int is a fine float
    assert cfg.block_out_channels == (8, 16)
    assert parse_config(DDPMTrainConfig, ["--resume_from_checkpoint", "none"]).resume_from_checkpoint is None
    assert DDPMTrainConfig(attention_levels=[]).attention_levels == ()


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_number_and_list_field_is_bounded_and_the_defaults_pass(cls):
    hints = typing.get_type_hints(cls)
    numeric = {
        f.name
        for f in dataclasses.fields(cls)
        if hints[f.name] in (int, float) or typing.get_origin(hints[f.name]) is tuple
    }
    assert numeric <= set(cls.BOUNDS), f"unbounded fields: {sorted(numeric - set(cls.BOUNDS))}"
    cls()  # the defaults satisfy their own bounds


def test_a_numeric_field_missing_from_the_bounds_table_is_a_programming_error():
    @dataclasses.dataclass
    class Unbounded:
        width: int = 3

    with pytest.raises(TypeError, match="Unbounded.width has no entry in the table of bounds"):
        check_fields(Unbounded(), {}, {})
    assert str(Range(0, 1, high_open=True)) == "in [0, 1)" and str(Range(0, low_open=True)) == "> 0"


@pytest.mark.parametrize(
    ("module", "args", "says"),
    [
        ("training.train_ddpm", ["--max_steps", "-5"], "max_steps must be ≥ 1, got -5."),
        ("training.train_vae", ["--beta", "nan"], "beta"),
        ("training.train", ["--recipe", "no-such-recipe"], "recipe must be one of"),
    ],
)
def test_a_bad_value_on_the_command_line_is_a_one_line_usage_error(module, args, says, tmp_path):
    """A training CLI input error printed a 20-line traceback before its (good) message; it is one line, exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args, "--output_dir", str(tmp_path / "out")] if module != "training.train"
        else [sys.executable, "-m", module, *args],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written
