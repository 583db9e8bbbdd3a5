"""Load: concurrent gradio_client users against the served app (reduced counts; tests/support/load.py has the full run)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio_client")

from tests.support.app_server import make_tiny_models
from tests.support.load import PeakMemory, resident_bytes, run_load, serve_app, visitor_client

USERS, REQUESTS = 4, 2


@pytest.mark.slow
def test_concurrent_users_all_get_valid_results_within_the_memory_limit(tmp_path):
    models_dir = make_tiny_models(tmp_path / "models")
    with serve_app(models_dir) as (url, pid):
        result = run_load(url, pid, models_dir, USERS, REQUESTS, max_requests=0, timeout=300)
    records = result["records"]
    assert len(records) == USERS * REQUESTS
    assert not result["failures"], result["failures"]
    assert len({r["function"] for r in records}) >= 3  # a mix of endpoints, not one
    assert result["rss_samples"] > 0 and 0 < result["peak_rss"] < 3 * 2**30
    assert 0 < result["p50"] <= result["p95"] and math.isfinite(result["p95"])


@pytest.mark.slow
def test_every_heavy_request_at_once_and_cancelled_jobs_stay_within_the_memory_limit(tmp_path):
    """One user sends every heavy request at once (the largest picture accepted, sampling and inpainting), another
    starts a large sampling job and cancels it: all answered, the cancel is over at once, memory bounded."""
    models_dir = make_tiny_models(tmp_path / "models")
    with serve_app(models_dir) as (url, pid):
        result = run_load(
            url, pid, models_dir, 1, 1, 0, timeout=300, max_request_steps=10, mixed=True, cancel_requests=1
        )
    functions = {r["function"] for r in result["records"]}
    assert {"sample_stream", "inpaint", "forward_process", "reconstruct", "traverse", "cancel"} <= functions
    assert not result["failures"], result["failures"]
    assert 0 < result["peak_rss"] < 1.5 * 2**30


def test_resident_memory_reading_tracks_an_allocation():
    import os

    import numpy as np

    with PeakMemory(os.getpid(), every=0.01) as memory:
        before = resident_bytes(os.getpid())
        block = np.ones(64 * 2**20, np.uint8)  # 64 MiB, touched
        import time

        time.sleep(0.1)
    assert memory.peak >= before + 48 * 2**20
    del block


def test_gradio_image_cache_never_rewrites_a_picture_being_served(tmp_path):
    """Concurrent identical answers share one hashed file: it is written once, atomically, never truncated again."""
    import threading

    from gradio import processing_utils
    from PIL import Image

    import app  # noqa: F401  (installs the atomic writer)

    picture = Image.fromarray(np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8))
    path = Path(processing_utils.save_pil_to_cache(picture, str(tmp_path), format="png"))
    size, written = path.stat().st_size, path.stat().st_mtime_ns
    seen, stop = set(), threading.Event()

    def read():
        while not stop.is_set():
            seen.add(len(path.read_bytes()))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(200):
        assert processing_utils.save_pil_to_cache(picture, str(tmp_path), format="png") == str(path)
    stop.set()
    reader.join()
    assert seen == {size} and path.stat().st_mtime_ns == written  # never truncated, never rewritten


@pytest.mark.slow
def test_a_lab_training_job_and_eight_sampling_clients_at_once_all_succeed(tmp_path):
    """The training lab runs in its own one-at-a-time queue group: eight visitors sampling meanwhile all get their
    images (0 errors), and the training job streams to its end."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    models_dir = make_tiny_models(tmp_path / "models")
    with serve_app(models_dir) as (url, _pid):
        trainer = Client(url, verbose=False)
        training = trainer.submit(target="moons", num_steps=20, max_seconds=8, api_name="/lab_train_diffusion")

        def sample(seed: int) -> int:
            client = visitor_client(url, seed)
            images = client.predict(model="latent", steps=3, num_images=2, seed=seed, api_name="/sample")[0]
            return len(images)

        with ThreadPoolExecutor(8) as pool:
            counts = list(pool.map(sample, range(8)))
        status = training.result(timeout=300)[0]
    assert counts == [2] * 8
    assert status.startswith("**Step ")  # the last streamed update: the run reached its end
