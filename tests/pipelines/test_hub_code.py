"""The model folders work wherever diffusers works: plain ``DiffusionPipeline.from_pretrained(...,
trust_remote_code=True)`` in a Python that cannot import this project loads every bundled model (from its folder, from a
Hub cache by repo id, and through diffusers' own online download logic) and samples the same images, bit for bit, as
the project's classes; without trust_remote_code diffusers refuses with the fix; the code a folder carries is the
closure of the project's modules, less the project's own loader, folder checks and code writer."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.utils.dynamic_modules_utils import get_relative_imports

from pipelines.hub_code import (
    MIN_DIFFUSERS,
    PIPELINE_ENTRY,
    PROJECT_ONLY,
    code_modules,
    module_closure,
    relative_imports,
)
from pipelines.loading import folder_classes
from tests.support.plain_diffusers import SHA, populate_hub_cache, run_plain_diffusers

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
# Another Python with torch and another diffusers release (e.g. a venv with diffusers==0.36.0), for the version test
OTHER_DIFFUSERS_PYTHON = os.environ.get("OTHER_DIFFUSERS_PYTHON")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test here may reach the Hub: the repo ids below are served from a local Hub cache (tests/support/
    plain_diffusers.py forces the same in the Python it starts)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# bundled folder → how it is sampled (the same call in both routes)
BUNDLED = {
    "ddpm-pixel": "guided",
    "ddpm-latent": "guided",
    "ddpm-conditional": "conditional",
    "vae": "vae",
    "vae-beta0.25": "vae",
    "vae-beta4": "vae",
}


def sample(pipe, kind):
    """A few fp32 steps with a fixed generator; the guided kinds use the folder's guide_unet or class labels."""
    generator = torch.Generator().manual_seed(0)
    if kind == "vae":
        return pipe(batch_size=2, generator=generator, output_type="np").images
    extra = {"autoguidance_scale": 2.0} if kind == "guided" else {"class_labels": [1, 7], "guidance_scale": 3.0}
    common = {"num_inference_steps": 3, "output_type": "np", "generator": generator}
    return pipe(batch_size=2, **common, **extra).images


# Diffusers' online download, played from a local folder: model_info lists the folder's files, and a file reaches
# the snapshot only through hf_hub_download or snapshot_download, called by diffusers' own logic.
ONLINE_SOURCE = """
def load_online(remote, snapshot):
    import fnmatch, shutil, types
    from pathlib import Path
    import diffusers.pipelines.pipeline_utils as pipeline_utils
    import diffusers.utils.dynamic_modules_utils as dynamic_modules
    remote, snapshot = Path(remote), Path(snapshot)
    files = sorted(str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file())
    def model_info(repo_id, **kwargs):
        return types.SimpleNamespace(sha=SHA, siblings=[types.SimpleNamespace(rfilename=f) for f in files])
    def hf_hub_download(repo_id, filename, subfolder=None, **kwargs):
        name = f"{subfolder}/{filename}" if subfolder else filename
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(remote / name, snapshot / name)
        return str(snapshot / name)
    def snapshot_download(repo_id, allow_patterns=None, ignore_patterns=None, **kwargs):
        for f in files:
            if (allow_patterns is None or any(fnmatch.fnmatch(f, p) for p in allow_patterns)) and not any(
                fnmatch.fnmatch(f, p) for p in ignore_patterns or []
            ):
                hf_hub_download(repo_id, f)
        return str(snapshot)
    pipeline_utils._resolve_revision = lambda *args, **kwargs: SHA
    pipeline_utils.model_info = dynamic_modules.model_info = model_info
    pipeline_utils.hf_hub_download = dynamic_modules.hf_hub_download = hf_hub_download
    pipeline_utils.snapshot_download = snapshot_download
    return DiffusionPipeline.from_pretrained("someone/online", trust_remote_code=True)
"""

# Runs with `python -I` in an empty folder: loads each job with plain diffusers and saves what it samples.
LOAD_SCRIPT = """
import importlib.util, json, sys
import numpy as np, torch
from diffusers import DiffusionPipeline
torch.set_num_threads(1)
assert importlib.util.find_spec("pipelines") is None and importlib.util.find_spec("training") is None
jobs = json.loads(open(sys.argv[1]).read())
report = {"classes": {}, "refused": []}
for job in jobs["loads"]:
    pipe = load_online(*job["online"]) if "online" in job else DiffusionPipeline.from_pretrained(
        job["source"], trust_remote_code=True
    )
    pipe.set_progress_bar_config(disable=True)
    loaded = sorted(name for name, component in pipe.components.items() if component is not None)
    report["classes"][job["out"]] = [type(pipe).__module__, type(pipe).__name__, loaded]
    np.save(job["out"], sample(pipe, job["kind"]))
for source in jobs.get("without_trust", []):
    try:
        DiffusionPipeline.from_pretrained(source)
        report["refused"].append(None)
    except ValueError as error:
        report["refused"].append(str(error))
open(jobs["report"], "w").write(json.dumps(report))
"""
SCRIPT = f"SHA = {SHA!r}\n" + inspect.getsource(sample) + ONLINE_SOURCE + LOAD_SCRIPT


def ours(folder: Path, kind: str) -> np.ndarray:
    pipeline_class, _ = folder_classes(folder)
    pipe = pipeline_class.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return sample(pipe, kind)


@pytest.mark.slow
def test_every_bundled_model_loads_with_plain_diffusers_and_samples_the_same_images(tmp_path):
    loads = []
    for name, kind in BUNDLED.items():
        populate_hub_cache(tmp_path / "hub-cache", f"someone/{name}", MODELS / name)
        loads.append({"source": str(MODELS / name), "kind": kind, "out": str(tmp_path / f"{name}-folder.npy")})
        loads.append({"source": f"someone/{name}", "kind": kind, "out": str(tmp_path / f"{name}-repo.npy")})
    remote = MODELS / "ddpm-latent"  # a guide_unet, and our VAE as a component with weights
    online = [str(remote), str(tmp_path / "online-snapshot")]
    loads.append({"online": online, "kind": "guided", "out": str(tmp_path / "ddpm-latent-online.npy")})
    jobs = {"loads": loads, "without_trust": [str(MODELS / "ddpm-pixel"), "someone/ddpm-pixel"]}
    jobs["report"] = str(tmp_path / "report.json")
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    run_plain_diffusers(tmp_path, SCRIPT, str(tmp_path / "jobs.json"))
    report = json.loads((tmp_path / "report.json").read_text())
    expected = {name: ours(MODELS / name, kind) for name, kind in BUNDLED.items()}
    for job in loads:
        name = Path(job["out"]).stem.rsplit("-", 1)[0]
        module, class_name, components = report["classes"][job["out"]]
        assert module.startswith("diffusers_modules.") and class_name == folder_classes(MODELS / name)[0].__name__
        index = json.loads((MODELS / name / "model_index.json").read_text())
        listed = sorted(k for k, v in index.items() if isinstance(v, list) and not k.startswith("_") and v[0])
        assert components == listed  # [null, null]: an optional component saved as absent, as diffusers writes it
        np.testing.assert_array_equal(np.load(job["out"]), expected[name], err_msg=job["out"])
    for message in report["refused"]:
        assert message and "trust_remote_code=True" in message and "custom code" in message, message


@pytest.mark.parametrize("folder", sorted(BUNDLED))
def test_a_folder_carries_exactly_the_import_closure_and_its_entry_imports_each_module_directly(folder):
    carried = sorted(p.stem for p in (MODELS / folder).glob("*.py") if p.stem != PIPELINE_ENTRY)
    pipeline_class, components = folder_classes(MODELS / folder)
    assert carried == code_modules(pipeline_class, components)
    assert not set(carried) & set(PROJECT_ONLY)  # the project's loader, folder checks and code writer stay home
    sources = {m: ROOT / "pipelines" / f"{m}.py" for m in carried}
    assert all(relative_imports(path) - set(PROJECT_ONLY) <= set(carried) for path in sources.values())  # closed
    assert set(get_relative_imports(MODELS / folder / f"{PIPELINE_ENTRY}.py")) == set(carried)  # what diffusers copies
    for name in carried:  # the project's own modules, unchanged, as real files
        path = MODELS / folder / f"{name}.py"
        assert not path.is_symlink() and path.read_text() == sources[name].read_text()


def test_the_closure_follows_both_forms_of_relative_import_and_refuses_what_cannot_travel(tmp_path):
    (tmp_path / "a.py").write_text("from . import b\n\ndef f():\n    from .c import g\n")
    (tmp_path / "b.py").write_text("import os\n")
    (tmp_path / "c.py").write_text("from .b import x\n")
    (tmp_path / "lonely.py").write_text("")
    assert module_closure(["a"], tmp_path) == ["a", "b", "c"]
    assert module_closure(["a"], tmp_path, leave_out=["c"]) == ["a", "b"]  # a project-only module stays home
    (tmp_path / "d.py").write_text("from ..elsewhere import y\n")
    with pytest.raises(ValueError, match="cannot travel"):
        module_closure(["d"], tmp_path)
    with pytest.raises(ValueError, match="missing"):
        module_closure(["missing"], tmp_path)


@pytest.mark.parametrize("kind", ["ddpm", "latent", "vae"])
def test_a_saved_pipeline_carries_its_code_and_our_loader_never_imports_it(tmp_path, kind):
    from tests.support.tiny_pipelines import CLASSES, build

    pipe = build(kind)[0]  # the DDPM kinds with our DDPMScheduler, which no pipeline module imports
    pipe.save_pretrained(tmp_path / "saved")
    index = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    assert index["_class_name"] == [PIPELINE_ENTRY, CLASSES[kind].__name__]
    assert (kind != "vae") == (tmp_path / "saved" / "scheduling_ddpm.py").is_file()
    for py in (tmp_path / "saved").rglob("*.py"):
        py.write_text("raise SystemExit('the loader ran a file of the folder')\n")  # our route never reads them
    loaded = CLASSES[kind].from_pretrained(tmp_path / "saved")
    assert type(loaded) is CLASSES[kind]
    assert type(loaded.scheduler if kind == "ddpm" else loaded.vae) is type(
        pipe.scheduler if kind == "ddpm" else pipe.vae
    )


@pytest.mark.parametrize("folder", sorted(BUNDLED))
def test_every_import_diffusers_follows_names_a_file_beside_it(folder):
    """diffusers copies each `from .x import` of an entry module (the files model_index.json names) from the entry's
    own folder: x.py must be there. The carried modules' own imports are not followed (the entry imports each)."""
    for path in (MODELS / folder).rglob("hub_*.py"):
        names = set(get_relative_imports(path))
        assert all((path.parent / f"{name}.py").is_file() for name in names), (path, names)


def test_the_project_is_not_importable_where_the_plain_diffusers_tests_run(tmp_path):
    code = "import importlib.util as u; print(u.find_spec('pipelines'), u.find_spec('diffusers') is not None)"
    result = run_plain_diffusers(tmp_path, code)
    assert result.stdout.split() == ["None", "True"]


@pytest.mark.parametrize("folder", ["ddpm-pixel", "vae"])
def test_diffusers_never_substitutes_its_own_class_of_the_same_name_even_beside_our_package(folder):
    """In this process `pipelines` is imported; diffusers has a DDPMPipeline too. Without trust_remote_code it must
    refuse (naming the fix) instead of returning its own class and dropping the guide UNet."""
    from diffusers import DiffusionPipeline

    with pytest.raises(ValueError, match=r"custom code.*\n?.*trust_remote_code=True"):
        DiffusionPipeline.from_pretrained(MODELS / folder)


VERSION_SCRIPT = """
import sys, diffusers, torch
from diffusers import DiffusionPipeline
try:
    pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    steps = {"num_inference_steps": 2} if "unet" in pipe.components else {}
    pipe(batch_size=1, generator=torch.Generator().manual_seed(0), **steps)
    print(diffusers.__version__, "loaded")
except ImportError as error:
    print(diffusers.__version__, "refused:", error)
"""


@pytest.mark.slow
@pytest.mark.skipif(not OTHER_DIFFUSERS_PYTHON, reason="OTHER_DIFFUSERS_PYTHON names no Python with another diffusers")
@pytest.mark.parametrize("folder", ["ddpm-latent", "vae"])
def test_another_diffusers_release_loads_the_folder_or_stops_naming_the_minimum(tmp_path, folder):
    """Run with e.g. OTHER_DIFFUSERS_PYTHON=/tmp/dfold/bin/python (torch and diffusers==0.36.0 or 0.37.0 there)."""
    result = run_plain_diffusers(tmp_path, VERSION_SCRIPT, str(MODELS / folder), python=OTHER_DIFFUSERS_PYTHON)
    version, outcome = result.stdout.splitlines()[-1].split(" ", 1)
    release = tuple(int(part) for part in version.split(".")[:3])
    if release >= tuple(int(part) for part in MIN_DIFFUSERS.split(".")):
        assert outcome == "loaded", result.stdout
    else:
        assert outcome.startswith(f"refused: this model's code needs diffusers >= {MIN_DIFFUSERS}, found {version}")
