"""The bundled models on diffusers' terms, through plain ``DiffusionPipeline.from_pretrained(folder,
trust_remote_code=True)`` in a Python that cannot import this project: every component passed to ``from_pretrained``
is used (``scheduler=``, ``unet=``, ``vae=``, ``guide_unet=None``), the loaded dtype is the one sampled in (fp16 and
bf16 on the CPU), ``pipe()`` samples with the model's stored settings exactly as the project's classes do, and
``latents=`` with ``pipe.invert`` round-trips a digit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from pipelines.ddim_inversion import encode_images
from pipelines.samplers import stored_sampling
from tests.support.plain_diffusers import run_plain_diffusers
from training.evaluate import load_pipeline

MODELS = Path(__file__).resolve().parents[2] / "models"
FOLDERS = ("ddpm-pixel", "ddpm-latent", "ddpm-conditional")

# Runs with `python -I` in an empty folder: argv[1] the models folder, argv[2] where to write the report and arrays.
SCRIPT = r"""
import importlib.util, json, sys
from pathlib import Path
import numpy as np, torch
from diffusers import DDIMScheduler, DiffusionPipeline
torch.set_num_threads(1)
assert importlib.util.find_spec("pipelines") is None and importlib.util.find_spec("training") is None
models, out = Path(sys.argv[1]), Path(sys.argv[2])
report = {}

def labels(pipe):
    return {"class_labels": [3, 7]} if pipe.unet.config.num_class_embeds else {}

for name in ("ddpm-pixel", "ddpm-latent", "ddpm-conditional"):
    folder, r = models / name, {}
    pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    # overrides: a scheduler of diffusers', the very unet/vae objects given, no guide
    ddim = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    given = {"scheduler": ddim, "unet": pipe.unet, "guide_unet": None}
    if getattr(pipe, "vae", None) is not None:
        given["vae"] = pipe.vae
    over = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True, **given)
    r["overrides"] = {k: getattr(over, k) is v for k, v in given.items()}
    # pipe() as stored: the unet runs once per stored step; the images are saved for the project's classes to match
    calls = []
    hook = pipe.unet.register_forward_hook(lambda *args: calls.append(1))
    np.save(out / f"{name}-default.npy", pipe(batch_size=2, generator=torch.Generator().manual_seed(0),
                                              output_type="np", **labels(pipe)).images)
    hook.remove()
    r["default_unet_calls"] = len(calls)
    # latents= and inversion on the overridden pipeline (deterministic DDIM, no guide)
    over.set_progress_bar_config(disable=True)
    z = over.prepare_latents(2, torch.Generator().manual_seed(1), over.device)
    x = over(batch_size=2, latents=z, num_inference_steps=20, eta=0.0, output_type="pt", **labels(over)).images
    noise = over.invert(x, 20, **labels(over)).noise
    back = over(batch_size=2, latents=noise, num_inference_steps=20, eta=0.0, output_type="pt", **labels(over)).images
    r["round_trip_error"] = float((back - x).abs().mean())
    # the loaded dtype is the dtype sampled in
    r["dtypes"] = {}
    for dtype in (torch.float16, torch.bfloat16):
        half = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True, torch_dtype=dtype)
        half.set_progress_bar_config(disable=True)
        seen = []
        half.unet.register_forward_hook(lambda m, a, o: seen.append(str(o.sample.dtype)))
        images = half(batch_size=2, num_inference_steps=3, output_type="pt", **labels(half)).images
        r["dtypes"][str(dtype)] = [sorted(set(seen)), bool(torch.isfinite(images.float()).all())]
    report[name] = r
(out / "report.json").write_text(json.dumps(report))
"""


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> tuple[dict, Path]:
    tmp_path = tmp_path_factory.mktemp("diffusers-route")
    run_plain_diffusers(tmp_path, SCRIPT, str(MODELS), str(tmp_path))
    return json.loads((tmp_path / "report.json").read_text()), tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("name", FOLDERS)
def test_every_component_passed_to_from_pretrained_is_the_one_used(plain, name):
    report, _ = plain
    assert all(report[name]["overrides"].values()), report[name]["overrides"]


@pytest.mark.slow
@pytest.mark.parametrize("name", FOLDERS)
def test_a_model_loaded_in_fp16_or_bf16_samples_in_that_dtype_on_the_cpu(plain, name):
    report, _ = plain
    dtypes = report[name]["dtypes"]
    assert dtypes == {"torch.float16": [["torch.float16"], True], "torch.bfloat16": [["torch.bfloat16"], True]}


@pytest.mark.slow
@pytest.mark.parametrize("name", FOLDERS)
def test_pipe_with_nothing_given_samples_as_stored_and_as_the_projects_classes_do(plain, name):
    report, tmp_path = plain
    assert report[name]["default_unet_calls"] == stored_sampling(MODELS / name)["num_inference_steps"]
    pipe = load_pipeline(MODELS / name)
    pipe.set_progress_bar_config(disable=True)
    labels = {"class_labels": [3, 7]} if pipe.unet.config.num_class_embeds else {}
    ours = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="np", **labels).images
    np.testing.assert_array_equal(np.load(tmp_path / f"{name}-default.npy"), ours)


@pytest.mark.slow
@pytest.mark.parametrize("name", FOLDERS)
def test_latents_and_invert_travel_with_the_code_and_round_trip_a_sample(plain, name):
    report, _ = plain
    pipe = load_pipeline(MODELS / name)
    pipe.set_progress_bar_config(disable=True)
    pipe.guide_unet = None
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    labels = {"class_labels": [3, 7]} if pipe.unet.config.num_class_embeds else {}
    z = pipe.prepare_latents(2, torch.Generator().manual_seed(1), pipe.device)
    x = pipe(batch_size=2, latents=z, num_inference_steps=20, eta=0.0, output_type="pt", **labels).images
    noise = pipe.invert(x, 20, **labels).noise
    back = pipe(batch_size=2, latents=noise, num_inference_steps=20, eta=0.0, output_type="pt", **labels).images
    ours = float((back - x).abs().mean())
    assert report[name]["round_trip_error"] == pytest.approx(ours, rel=1e-5)
    # pixels in [0, 1]; a latent model's images go through its VAE once more, which alone is off by this much
    floor = float((pipe.decode_latents(encode_images(pipe, x)) - x).abs().mean()) if hasattr(pipe, "vae") else 0.0
    assert ours - floor < 0.03  # at 20 steps (the error shrinks with more: test_ddim_inversion.py)


@pytest.mark.parametrize("name", FOLDERS)
def test_the_projects_classes_use_every_component_passed_to_from_pretrained_too(name):
    saved = load_pipeline(MODELS / name)
    ddim = DDIMScheduler.from_config(saved.scheduler.config)
    given = {"scheduler": ddim, "unet": saved.unet, "guide_unet": None}
    if hasattr(saved, "vae"):
        given["vae"] = saved.vae
    pipe = type(saved).from_pretrained(MODELS / name, **given)
    assert all(getattr(pipe, key) is value for key, value in given.items())
    assert "autoguidance_scale" not in pipe.sampling_settings  # the guide taken away takes its guidance along


@pytest.mark.slow
@pytest.mark.parametrize("name", FOLDERS)
def test_pipe_with_nothing_given_reproduces_the_evaluation_within_its_standard_error(name):
    """200 samples of ``pipe()`` (class labels 0–9 in turn for the conditional model, nothing else), scored as the
    evaluation scores its 1,000: the confident fraction agrees within 3 standard errors of the difference."""
    from training.evaluate import score_digits

    pipe = load_pipeline(MODELS / name)
    pipe.set_progress_bar_config(disable=True)
    expected = json.loads((MODELS / name / "evaluation.json").read_text())
    n, images = 200, []
    for i in range(n // 50):
        labels = {"class_labels": [k % 10 for k in range(50)]} if pipe.unet.config.num_class_embeds else {}
        generator = torch.Generator().manual_seed(100 + i)  # not the evaluation's seeds
        images.append(pipe(batch_size=50, generator=generator, output_type="pt", **labels).images)
    requested = torch.arange(n) % 10 if pipe.unet.config.num_class_embeds else None
    got = score_digits(torch.cat(images), requested)["confident_fraction"]
    p = expected["confident_fraction"]
    standard_error = np.sqrt(p * (1 - p) / n + p * (1 - p) / expected["num_samples"])
    assert abs(got - p) <= 3 * max(standard_error, 1 / n), (got, p, standard_error)
