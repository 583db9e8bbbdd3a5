"""The app's cold start: building the page imports no diffusers (seconds of start-up), ``pipelines`` imports its
names on first use without changing its API, and the served app warms up (model code and models) in the background.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time

import pytest

import pipelines
from tests.support.app_server import ROOT, launch_app, make_tiny_models, stop_app

HEAVY_PACKAGES = ("diffusers", "sklearn")  # seconds to import; the model code and the lab's targets use them


@pytest.mark.slow
def test_building_the_page_imports_no_diffusers():
    code = f"import app, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_PACKAGES}))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


# Seven threads, each importing deferred model code at the same moment, in a fresh interpreter. Without the one lock
# of pipelines/deferred.py every run failed ("cannot import name 'ConfigMixin' from 'diffusers.configuration_utils'").
CONCURRENT_IMPORTS = """
import sys, threading
import pipelines
from pipelines import samplers
from pipelines.deferred import lazy_module
toy2d, vae2d = lazy_module("lab.toy2d"), lazy_module("lab.vae2d")
inversion = lazy_module("pipelines.ddim_inversion")
jobs = [lambda: pipelines.DDPMPipeline, lambda: toy2d.EpsilonMLP, lambda: vae2d.VAESettings,
        lambda: samplers.SAMPLERS["unipc"].scheduler_class, lambda: inversion.invert, lambda: pipelines.VAEPipeline,
        lambda: pipelines.LatentDDPMPipeline]
barrier, errors = threading.Barrier(len(jobs)), []
def run(job):
    barrier.wait()
    try:
        job()
    except Exception as error:
        errors.append(repr(error))
threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
print(errors)
"""


@pytest.mark.slow
def test_deferred_imports_from_several_threads_at_once_all_succeed():
    result = subprocess.run(
        [sys.executable, "-c", CONCURRENT_IMPORTS], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", pipelines.__all__)
def test_every_exported_name_is_its_submodules_object(name):
    module = importlib.import_module(f"pipelines.{pipelines._SOURCES[name]}")
    assert getattr(pipelines, name) is getattr(module, name)
    assert hasattr(pipelines, name)


def test_lazy_names_import_as_before():
    from pipelines import VAE, DDPMPipeline
    from pipelines.pipeline_ddpm import DDPMPipeline as defined
    from pipelines.vae import VAE as defined_vae

    assert DDPMPipeline is defined and VAE is defined_vae
    assert set(pipelines.__all__) <= set(dir(pipelines))


def test_an_unknown_name_is_an_attribute_error():
    assert not hasattr(pipelines, "NoSuchPipeline")
    with pytest.raises(AttributeError, match="'pipelines' has no attribute 'NoSuchPipeline'"):
        pipelines.NoSuchPipeline  # noqa: B018 (the lookup is what is tested)
    with pytest.raises(ImportError):
        from pipelines import NoSuchPipeline  # noqa: F401 (the import is what is tested)


@pytest.mark.slow
def test_the_served_app_warms_up_and_keeps_serving(tmp_path):
    """`python app.py` serves, then logs its warm-up (every bundled model loaded), and its main thread still blocks."""
    models_dir = make_tiny_models(tmp_path / "models")
    log = tmp_path / "app.log"
    process, _ = launch_app(models_dir, log)
    try:
        deadline = time.monotonic() + 120
        while "warm-up: " not in log.read_text() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert "warm-up: model code and 6 models loaded in" in log.read_text()
        assert process.poll() is None  # still serving after launch() returned from gradio
    finally:
        stop_app(process)
