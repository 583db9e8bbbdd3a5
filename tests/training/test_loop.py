"""The training scripts on tiny configs (scikit-learn's 8×8 digits): the loss falls, the exported pipeline loads
and samples; resuming is exact (also after SIGKILL); interrupted saves are never resumed from; NaN and bad
inputs stop with clear errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline
from tests.support.training_runs import STEPS, assert_same_state, checkpoint_tensors, ddpm_args, logged_losses
from training import attach_guide, train_ddpm
from training.checkpoints import list_checkpoints, resolve_checkpoint
from training.config import DDPMTrainConfig, parse_config
from training.data import BatchDraws, load_data

ROOT = Path(__file__).resolve().parents[2]


def assert_loss_falls(out: Path, window: int = 8, factor: float = 0.8) -> None:
    losses = logged_losses(out)
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    assert last < factor * first, f"loss did not fall: first {window} mean {first:.4f}, last {window} mean {last:.4f}"


def sample_images(pipe, **kwargs) -> torch.Tensor:
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="pt", **kwargs
    ).images


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The reference run: STEPS steps in one go, checkpoints every 10."""
    out = tmp_path_factory.mktemp("uninterrupted")
    train_ddpm.main(ddpm_args(out))
    return out


def test_pixel_ddpm_loss_falls_and_the_export_loads_and_samples(tmp_path):
    out = tmp_path / "pixel"
    model_dir = train_ddpm.main(ddpm_args(out, steps=60, every=60))
    assert_loss_falls(out)
    pipe = DDPMPipeline.from_pretrained(model_dir)
    ema = load_file(out / "checkpoint-60" / "ema.safetensors")
    exported = list(pipe.unet.parameters())
    assert len(exported) == len(ema) and all(torch.equal(p, ema[f"shadow.{i}"]) for i, p in enumerate(exported))
    images = sample_images(pipe)
    assert images.shape == (2, 1, 8, 8) and torch.isfinite(images).all()
    assert json.loads((model_dir / "training_state.json").read_text())["step"] == 60


def test_conditional_ddpm_trains_and_samples_requested_classes(tmp_path):
    out = tmp_path / "cond"
    model_dir = train_ddpm.main(ddpm_args(out, "--num_classes", "10", "--label_dropout", "0.2", steps=60, every=60))
    assert_loss_falls(out)
    pipe = DDPMPipeline.from_pretrained(model_dir)
    assert pipe.unet.config.num_class_embeds == 11  # ten digits and "no class"
    images = sample_images(pipe, class_labels=[3, 7], guidance_scale=2.0)
    assert images.shape == (2, 1, 8, 8) and torch.isfinite(images).all()


def tiny_vae_args(out: Path, *extra: str, steps: int = 60) -> list[str]:
    return [
        "--output_dir",
        str(out),
        "--data",
        "sklearn-digits",
        "--image_size",
        "8",
        "--batch_size",
        "32",
        "--max_steps",
        str(steps),
        "--block_out_channels",
        "8,8",
        "--sample_every",
        "0",
        "--checkpoint_every",
        str(steps),
        "--eval_every",
        "20",
        "--log_every",
        "1",
        "--lr_warmup_steps",
        "0",
        "--learning_rate",
        "3e-3",
        "--num_threads",
        "1",
        *extra,
    ]


def test_latent_ddpm_trains_on_a_trained_vae_and_samples_images(tmp_path):
    from training import train_vae

    vae_dir = train_vae.main(
        tiny_vae_args(
            tmp_path / "vae",
            "--latent_type",
            "spatial",
            "--latent_channels",
            "4",
            "--beta",
            "0.05",
            "--binarize",
            "none",
            steps=40,
        )
    )
    out = tmp_path / "latent"
    # One UNet level (2×2 latents cannot be downsampled); a cosine schedule, since 50 linear steps barely noise.
    args = ddpm_args(
        out,
        "--space",
        "latent",
        "--vae",
        str(vae_dir),
        "--block_out_channels",
        "16",
        "--beta_schedule",
        "squaredcos_cap_v2",
        steps=60,
        every=60,
    )
    model_dir = train_ddpm.main(args)
    assert_loss_falls(out, factor=0.9)  # the latents are near-Gaussian: the reachable loss is higher than on pixels
    pipe = LatentDDPMPipeline.from_pretrained(model_dir)
    # The scaling factor makes z = μ + σ·ε unit-variance over the training data, as the diffusion assumes.
    with torch.no_grad():
        z = pipe.vae.encode(load_data("sklearn-digits", "train", image_size=8).images).latent_dist.sample()
    assert (z * pipe.vae.config.scaling_factor).std().item() == pytest.approx(1.0, abs=0.05)
    images = sample_images(pipe)
    assert images.shape == (2, 1, 8, 8) and torch.isfinite(images).all()
    # a guide for autoguidance: a smaller latent UNet on the same VAE's latents attaches; one on other latents does not
    guide_args = ddpm_args(
        tmp_path / "guide",
        "--space",
        "latent",
        "--vae",
        str(vae_dir),
        "--block_out_channels",
        "8",
        "--beta_schedule",
        "squaredcos_cap_v2",
        steps=2,
        every=2,
    )
    guide_dir = train_ddpm.main(guide_args)
    guided = LatentDDPMPipeline.from_pretrained(
        attach_guide.main([str(model_dir), str(guide_dir), "--output", str(tmp_path / "guided")])
    )
    assert sample_images(guided, autoguidance_scale=2.0).shape == (2, 1, 8, 8)
    other = LatentDDPMPipeline.from_pretrained(guide_dir)
    with torch.no_grad():
        next(other.vae.parameters()).add_(0.01)
    other.save_pretrained(tmp_path / "other-vae", safe_serialization=True)
    with pytest.raises(ValueError, match="another VAE"):
        attach_guide.main([str(model_dir), str(tmp_path / "other-vae"), "--output", str(tmp_path / "refused")])


def test_vae_training_loss_falls_and_the_export_loads(tmp_path):
    from pipelines.pipeline_vae import VAEPipeline
    from training import train_vae

    out = tmp_path / "vae"
    model_dir = train_vae.main(tiny_vae_args(out, "--latent_dim", "4"))
    assert_loss_falls(out)
    pipe = VAEPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert images.shape == (2, 1, 8, 8) and torch.isfinite(images).all()
    assert "val_neg_elbo" in json.loads((model_dir / "training_state.json").read_text())


def interrupt_at(
    monkeypatch, step: int, error: type[BaseException] = KeyboardInterrupt, value: float | None = None
) -> None:
    """Make DDPMTask.loss raise ``error`` (or return ``value``) from ``step`` on."""
    original = train_ddpm.DDPMTask.loss

    def loss(self, model, images, labels, draws, current):
        result = original(self, model, images, labels, draws, current)
        if current >= step:
            if value is not None:
                return result * value
            raise error("interrupted by the test")
        return result

    monkeypatch.setattr(train_ddpm.DDPMTask, "loss", loss)


def test_resume_continues_at_the_step_with_identical_model_optimizer_and_ema(uninterrupted, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    with monkeypatch.context() as m:
        interrupt_at(m, STEPS // 2)
        with pytest.raises(KeyboardInterrupt):
            train_ddpm.main(ddpm_args(out))
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-10"]
    assert_same_state(out / "checkpoint-10", uninterrupted / "checkpoint-10")
    train_ddpm.main(ddpm_args(out, "--resume_from_checkpoint", "latest"))
    first_resumed = json.loads((out / "metrics.jsonl").read_text().splitlines()[STEPS // 2])
    assert first_resumed["step"] == STEPS // 2 + 1
    assert_same_state(out / f"checkpoint-{STEPS}", uninterrupted / f"checkpoint-{STEPS}")


@pytest.mark.slow
def test_dynamo_backend_inductor_compiles_the_model_and_trains_as_eager_does(uninterrupted, tmp_path):
    """torch.compile changes the speed, not the training: the first two losses (the initial weights, then after
    one update) equal to round-off (later ones drift apart as Adam magnifies round-off in tiny gradients), the
    same checkpoint keys (the compiled wrapper's are not saved), an export that loads and samples."""
    out = tmp_path / "compiled"
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    train_ddpm.main(ddpm_args(out, "--dynamo_backend", "inductor"))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # dynamo did compile the model
    assert json.loads((out / "train_config.json").read_text())["dynamo_backend"] == "inductor"
    assert logged_losses(out)[:2] == pytest.approx(logged_losses(uninterrupted)[:2], rel=1e-5)
    compiled, eager = (checkpoint_tensors(run / f"checkpoint-{STEPS}") for run in (out, uninterrupted))
    assert compiled["model"].keys() == eager["model"].keys() and compiled["ema"].keys() == eager["ema"].keys()
    images = sample_images(DDPMPipeline.from_pretrained(out))
    assert images.shape == (2, 1, 8, 8) and torch.isfinite(images).all()


def test_interrupted_saves_are_never_picked_as_latest(uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted / "checkpoint-10", out / "checkpoint-10")
    shutil.copytree(uninterrupted / "checkpoint-20", out / "checkpoint-30.tmp")  # killed while writing
    shutil.copytree(uninterrupted / "checkpoint-20", out / "checkpoint-40")
    (out / "checkpoint-40" / "state.json").unlink()  # state.json is written last: this save never finished
    (out / "checkpoint-50").mkdir()
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-10"]
    assert resolve_checkpoint(out, "latest") == out / "checkpoint-10"
    assert resolve_checkpoint(tmp_path / "empty", "latest") is None
    with pytest.raises(ValueError, match="resume_from_checkpoint"):
        resolve_checkpoint(out, str(out / "checkpoint-40"))


def test_keep_checkpoints_limits_how_many_stay(tmp_path):
    out = tmp_path / "keep"
    train_ddpm.main(ddpm_args(out, "--keep_checkpoints", "2", steps=12, every=3))
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-9", "checkpoint-12"]
    assert not list(out.glob("*.tmp"))


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(uninterrupted, tmp_path, monkeypatch):
    out = tmp_path / "nan"
    interrupt_at(monkeypatch, 15, value=float("nan"))
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 15.*checkpoint-10"):
        train_ddpm.main(ddpm_args(out))
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-10"]
    assert_same_state(out / "checkpoint-10", uninterrupted / "checkpoint-10")


def test_unknown_config_keys_and_flags_are_errors(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"max_steps": 5, "learnig_rate": 0.1}))
    with pytest.raises(ValueError, match=r"unknown config keys.*learnig_rate"):
        parse_config(DDPMTrainConfig, ["--config", str(config)])
    with pytest.raises(SystemExit):
        parse_config(DDPMTrainConfig, ["--learnig_rate", "0.1"])
    assert "learnig_rate" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(DDPMTrainConfig, ["--prediction_type", "noise"])
    assert "prediction_type" in capsys.readouterr().err
    (tmp_path / "ok.json").write_text(json.dumps({"max_steps": 7, "block_out_channels": [8, 16]}))
    cfg = parse_config(DDPMTrainConfig, ["--config", str(tmp_path / "ok.json"), "--max_steps", "9"])
    assert (cfg.max_steps, cfg.block_out_channels) == (9, (8, 16))  # the command line wins over the file


def test_snr_gamma_weights_the_loss_and_a_huge_gamma_is_the_plain_loss(tmp_path):
    """min-SNR-γ only reweights examples: γ above every SNR gives the notes' loss exactly, a small γ shrinks it
    (the weights min(SNR, γ)/SNR are ≤ 1), and a weighted run still learns and exports."""
    data = load_data("sklearn-digits", "train+val", 8)
    images, labels = data.images[:16], data.labels[:16]

    def loss(gamma: float) -> float:
        task = train_ddpm.DDPMTask(parse_config(DDPMTrainConfig, ddpm_args(tmp_path / "t", "--snr_gamma", str(gamma))))
        torch.manual_seed(0)
        model = task.build_model()
        return task.loss(model, images, labels, BatchDraws(torch.Generator().manual_seed(1), 16), 0).item()

    plain, huge, small = loss(0), loss(1e12), loss(0.01)
    assert huge == pytest.approx(plain, rel=1e-6)
    assert small < 0.5 * plain
    out = tmp_path / "weighted"
    train_ddpm.main(ddpm_args(out, "--snr_gamma", "5", steps=60, every=60))
    assert_loss_falls(out)
    assert json.loads((out / "train_config.json").read_text())["snr_gamma"] == 5.0


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--snr_gamma", "-1", "snr_gamma must be ≥ 0"),
        ("--log_every", "0", "log_every must be ≥ 1"),
        ("--batch_size", "0", "batch_size must be ≥ 1"),
        ("--learning_rate", "0", "learning_rate must be > 0"),
        ("--ema_decay", "1", "ema_decay must be in"),
        ("--gradient_accumulation_steps", "3", "multiple of gradient_accumulation_steps"),
    ],
)
def test_impossible_config_values_are_clear_errors_naming_the_field(tmp_path, flag, value, message):
    with pytest.raises(ValueError, match=message):
        train_ddpm.main(ddpm_args(tmp_path / "bad", flag, value))
    assert not (tmp_path / "bad").exists()  # rejected before anything is written


def test_checkpoint_every_zero_saves_only_at_the_end(tmp_path):
    out = tmp_path / "end-only"
    train_ddpm.main(ddpm_args(out, steps=5, every=0))
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-5"]


def test_init_from_starts_from_the_saved_unet_and_checks_it_fits(uninterrupted, tmp_path):
    saved = DDPMPipeline.from_pretrained(uninterrupted).unet
    task = train_ddpm.DDPMTask(
        parse_config(DDPMTrainConfig, ddpm_args(tmp_path / "ft", "--init_from", str(uninterrupted)))
    )
    start = task.build_model()
    assert all(torch.equal(a, b) for a, b in zip(start.parameters(), saved.parameters(), strict=True))
    out = tmp_path / "ft"
    train_ddpm.main(ddpm_args(out, "--init_from", str(uninterrupted), steps=2, every=2))
    assert DDPMPipeline.from_pretrained(out).unet.config.block_out_channels == saved.config.block_out_channels
    with pytest.raises(ValueError, match="class rows"):
        train_ddpm.main(ddpm_args(tmp_path / "cond", "--num_classes", "10", "--init_from", str(uninterrupted)))
    with pytest.raises(ValueError, match="is not a folder"):
        train_ddpm.main(ddpm_args(tmp_path / "x", "--init_from", str(tmp_path / "nowhere")))


def test_attach_guide_adds_a_smaller_model_that_autoguides_sampling(uninterrupted, tmp_path):
    guide_run = tmp_path / "guide"
    train_ddpm.main(ddpm_args(guide_run, "--block_out_channels", "4,8", steps=3, every=3))
    guided = attach_guide.main([str(uninterrupted), str(guide_run), "--output", str(tmp_path / "guided")])
    pipe = DDPMPipeline.from_pretrained(guided)
    assert tuple(pipe.guide_unet.config.block_out_channels) == (4, 8)
    plain = sample_images(DDPMPipeline.from_pretrained(uninterrupted))
    assert torch.equal(sample_images(pipe), plain)  # w = 1: the main model alone
    assert not torch.equal(sample_images(pipe, autoguidance_scale=3.0), plain)


def test_attach_guide_refuses_a_guide_of_another_schedule_or_a_conditional_model(uninterrupted, tmp_path):
    other = tmp_path / "other-schedule"
    train_ddpm.main(
        ddpm_args(other, "--block_out_channels", "4,8", "--beta_schedule", "squaredcos_cap_v2", steps=2, every=2)
    )
    with pytest.raises(ValueError, match="another noise schedule"):
        attach_guide.main([str(uninterrupted), str(other), "--output", str(tmp_path / "x")])
    conditional = tmp_path / "conditional"
    train_ddpm.main(ddpm_args(conditional, "--num_classes", "10", steps=2, every=2))
    with pytest.raises(ValueError, match="unconditional"):
        attach_guide.main([str(conditional), str(uninterrupted), "--output", str(tmp_path / "y")])
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_missing_or_empty_data_and_missing_vae_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="neither a known name"):
        train_ddpm.main(ddpm_args(tmp_path / "a", "--data", str(tmp_path / "no-such-folder")))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="holds no images"):
        train_ddpm.main(ddpm_args(tmp_path / "b", "--data", str(tmp_path / "empty")))
    with pytest.raises(ValueError, match="--vae"):
        train_ddpm.main(ddpm_args(tmp_path / "c", "--space", "latent"))
    with pytest.raises(ValueError, match="resume_from_checkpoint"):
        train_ddpm.main(ddpm_args(tmp_path / "d", "--resume_from_checkpoint", str(tmp_path / "no-checkpoint")))


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_the_uninterrupted_weights(tmp_path):
    steps = 200
    reference = tmp_path / "reference"
    train_ddpm.main(ddpm_args(reference, steps=steps))
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "training.train_ddpm", *ddpm_args(out, steps=steps)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list_checkpoints(out) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = resolve_checkpoint(out, "latest")
    assert killed_at is not None and int(killed_at.name.split("-")[1]) < steps
    subprocess.run(
        [*command, "--resume_from_checkpoint", "latest"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert_same_state(out / f"checkpoint-{steps}", reference / f"checkpoint-{steps}")
    exported = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    expected = load_file(reference / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(exported[k], expected[k]) for k in expected)


def test_attach_guide_refuses_a_model_without_a_unet(tmp_path):
    from pipelines.pipeline_vae import VAEPipeline
    from pipelines.vae import VAE

    for name in ("a", "b"):
        VAEPipeline(VAE(block_out_channels=(8, 8), latent_dim=4, norm_num_groups=4)).save_pretrained(tmp_path / name)
    with pytest.raises(ValueError, match="no UNet2DModel to guide"):
        attach_guide.main([str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "out")])
