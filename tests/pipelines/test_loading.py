"""Saving and loading pipelines: round trips in a fresh process, the Hub cache offline, broken and pickle folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.loading import check_pipeline_folder
from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline
from tests.support.saved_pipelines import SAMPLE_SOURCE, sample, saved_pipelines
from tests.support.unsafe import write_pickle

ROOT = Path(__file__).resolve().parents[2]


# Runs in a fresh interpreter (after `sample`'s source): loads each saved folder, saves the images it samples.
LOAD_ALL_SCRIPT = """
import sys, numpy as np
from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline
from pipelines.pipeline_inpaint import DDPMInpaintPipeline
classes = {"ddpm": DDPMPipeline, "ddim": DDPMPipeline, "latent": LatentDDPMPipeline, "inpaint": DDPMInpaintPipeline}
folder = sys.argv[1]
for name, cls in classes.items():
    pipe = cls.from_pretrained(f"{folder}/{name}")
    pipe.set_progress_bar_config(disable=True)
    np.save(f"{folder}/{name}.npy", sample(pipe, name))
"""


def run_fresh_python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_saved_pipelines_load_in_a_fresh_process_and_give_the_same_images(tmp_path):
    expected = {}
    for name, pipe in saved_pipelines().items():
        pipe.save_pretrained(tmp_path / name)
        pipe.set_progress_bar_config(disable=True)
        expected[name] = sample(pipe, name)
    run_fresh_python(SAMPLE_SOURCE + LOAD_ALL_SCRIPT, str(tmp_path))
    for name, images in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.npy"), images, err_msg=name)


def test_model_index_names_our_classes_through_the_folders_entries(tmp_path):
    pipes = saved_pipelines()
    pipes["latent"].save_pretrained(tmp_path / "latent")
    pipes["ddim"].save_pretrained(tmp_path / "ddim")
    latent = json.loads((tmp_path / "latent" / "model_index.json").read_text())
    assert latent["_class_name"] == ["hub_pipeline", "LatentDDPMPipeline"]
    assert latent["vae"] == ["hub_vae", "VAE"]
    assert latent["scheduler"] == ["hub_scheduler", "DDPMScheduler"]
    assert latent["unet"] == ["diffusers", "UNet2DModel"]
    assert json.loads((tmp_path / "ddim" / "model_index.json").read_text())["scheduler"] == [
        "hub_scheduler",
        "DDIMScheduler",
    ]
    assert (tmp_path / "latent" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "latent" / "vae" / "hub_vae.py").is_file() and (tmp_path / "latent" / "vae.py").is_file()


def test_a_folder_saved_by_diffusers_itself_still_loads(tmp_path):
    """Folders written before the code travelled name our modules (`pipelines.vae`) and a plain class name."""
    from diffusers import DiffusionPipeline

    pipe = saved_pipelines()["latent"]
    DiffusionPipeline.save_pretrained(pipe, tmp_path / "old")  # diffusers' own save: no code, old model_index
    index = json.loads((tmp_path / "old" / "model_index.json").read_text())
    assert index["_class_name"] == "LatentDDPMPipeline" and index["vae"] == ["pipelines.vae", "VAE"]
    loaded = LatentDDPMPipeline.from_pretrained(tmp_path / "old")
    pipe.set_progress_bar_config(disable=True)
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(sample(loaded, "latent"), sample(pipe, "latent"))


def test_repo_id_loads_from_the_local_hub_cache_offline(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--user--tiny-ddpm"
    pipe = saved_pipelines()["ddim"]
    pipe.save_pretrained(repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    pipe.set_progress_bar_config(disable=True)
    np.save(tmp_path / "expected.npy", sample(pipe, "ddim"))
    code = SAMPLE_SOURCE + (
        "import sys, numpy as np\n"
        "from pipelines.pipeline_ddpm import DDPMPipeline\n"
        "pipe = DDPMPipeline.from_pretrained('user/tiny-ddpm')\n"
        "pipe.set_progress_bar_config(disable=True)\n"
        "np.testing.assert_array_equal(sample(pipe, 'ddim'), np.load(sys.argv[1]))\n"
        "try:\n"
        "    DDPMPipeline.from_pretrained('user/not-cached')\n"
        "except FileNotFoundError as error:\n"
        "    print('refused:', error)\n"
    )
    result = run_fresh_python(
        code, str(tmp_path / "expected.npy"), env={"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    )
    assert "refused:" in result.stdout and "user/not-cached" in result.stdout


@pytest.fixture
def saved_folder(tmp_path) -> Path:
    folder = tmp_path / "pipe"
    saved_pipelines()["ddpm"].save_pretrained(folder)
    return folder


@pytest.mark.parametrize("where", ["unet/diffusion_pytorch_model.bin", "unet/extra.ckpt", "model.pt"])
def test_pickle_weights_are_refused_without_unpickling(saved_folder, tmp_path, where):
    marker = tmp_path / "unpickled"
    write_pickle(saved_folder / where, marker, "pickle")
    if where.endswith(".bin"):
        (saved_folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ValueError, match="pickle"):
        DDPMPipeline.from_pretrained(saved_folder)
    assert not marker.exists()


def test_use_safetensors_false_is_refused(saved_folder):
    with pytest.raises(ValueError, match="use_safetensors"):
        DDPMPipeline.from_pretrained(saved_folder, use_safetensors=False)


def _remove(folder: Path, relative: str) -> None:
    path = folder / relative
    shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.mark.parametrize(
    "broken, error, words",
    [
        (lambda f: _remove(f, "model_index.json"), FileNotFoundError, "model_index.json"),
        (lambda f: _remove(f, "unet"), FileNotFoundError, "'unet'"),
        (lambda f: _remove(f, "unet/diffusion_pytorch_model.safetensors"), FileNotFoundError, "safetensors"),
        (lambda f: _remove(f, "unet/config.json"), FileNotFoundError, "config.json"),
        (lambda f: (f / "model_index.json").write_text("{not json"), ValueError, "JSON"),
        (lambda f: _edit_index(f, _class_name="StableDiffusionPipeline"), ValueError, "StableDiffusionPipeline"),
        (lambda f: _edit_index(f, unet=["transformers", "CLIPTextModel"]), ValueError, "transformers"),
        (
            lambda f: _edit_index(f, scheduler=["pipelines.scheduling_ddpm", "NoSuchScheduler"]),
            ValueError,
            "NoSuchScheduler",
        ),
        (
            lambda f: _edit_index(f, scheduler=["pipelines.no_such_module", "DDPMScheduler"]),
            ValueError,
            "no_such_module",
        ),
    ],
    ids=[
        "no-index",
        "no-unet-folder",
        "no-weights",
        "no-config",
        "bad-json",
        "other-class",
        "foreign-library",
        "unknown-class",
        "unknown-module",
    ],
)
def test_broken_folders_get_a_clear_error(saved_folder, broken, error, words):
    broken(saved_folder)
    with pytest.raises(error, match=words):
        DDPMPipeline.from_pretrained(saved_folder)


def _edit_index(folder: Path, **changes) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, **changes}))


def test_missing_folder_and_invalid_names_are_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        DDPMPipeline.from_pretrained(tmp_path / "does-not-exist")
    with pytest.raises(FileNotFoundError):
        DDPMPipeline.from_pretrained("not/a/repo/id")
    with pytest.raises(FileNotFoundError):
        check_pipeline_folder(tmp_path / "does-not-exist")
