"""The "Train it yourself" tab through its API (gradio_client against a served Blocks with only this tab):
training streams progress, bad input is an error, Stop ends a job, jobs run one at a time, and light requests
are not held up behind a training job."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from lab import toy2d, toy2d_targets
from tests.support.lab_server import serve_lab_tab

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file

pytestmark = pytest.mark.slow  # each test trains for a few seconds on a served app
TOY = {"target": "moons", "drawing": None, "beta_schedule": "linear", "num_steps": 100, "seed": 0}


@pytest.fixture(scope="module")
def url():
    with serve_lab_tab() as address:
        yield address


def client(url: str, tmp_path=None) -> Client:
    return Client(url, verbose=False, download_files=str(tmp_path) if tmp_path else False)


def stream(job) -> list[tuple]:
    """Every output the job streamed, in order of arrival (the final one last)."""
    outputs = list(job)
    assert job.status().success, job.status()
    return outputs


def step_of(status: str) -> int:
    return int(status.split("**Step ")[1].split("**")[0])


def test_the_tab_offers_its_named_endpoints_and_hides_its_helpers(url):
    names = set(client(url).view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/lab_train_diffusion", "/lab_train_vae", "/lab_stop", "/lab_reverse_process", "/lab_target"} <= names
    assert not any(name.startswith("/ui_") for name in names)


def test_diffusion_training_streams_progress_then_animates_and_offers_the_model(url, tmp_path):
    c = client(url, tmp_path)
    outputs = stream(c.submit(**TOY, max_seconds=8, api_name="/lab_train_diffusion"))
    statuses = [out[0] for out in outputs]
    assert len(outputs) >= 3 and step_of(statuses[0]) == 0
    steps = [step_of(s) for s in statuses]
    assert steps == sorted(steps) and steps[-1] > 0
    assert "time limit reached" in statuses[-1]
    gif, strip, model_file = c.predict(seed=2, api_name="/lab_reverse_process")  # this session's trained model
    assert gif.endswith(".gif") and strip.endswith(".png")
    model, scheduler = toy2d.load_toy_model(model_file)
    assert scheduler.config.num_train_timesteps == 100 and model.config.num_train_timesteps == 100


def test_vae_training_streams_the_elbo_and_its_terms(url):
    outputs = stream(client(url).submit(beta=1.0, max_seconds=4, seed=0, api_name="/lab_train_vae"))
    statuses = [out[0] for out in outputs if out[0].startswith("**Step")]
    assert len(statuses) >= 2 and "held-out ELBO" in statuses[-1] and "KL" in statuses[-1]
    assert "time limit reached" in statuses[-1]


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({**TOY, "target": "drawn"}, "drawing is empty"),
        ({**TOY, "num_steps": 5000}, "greater than maximum value 1000"),
        ({**TOY, "beta_schedule": "exponential"}, "not in the list of choices"),
        ({**TOY, "seed": 2**40}, "greater than maximum value"),
        ({**TOY, "target": "drawn", "drawing": "dot"}, "holds 4 distinct point"),
    ],
)
def test_bad_training_input_is_an_error_with_a_clear_message(url, tmp_path, inputs, message):
    if inputs["drawing"] == "dot":  # a canvas with one 2×2 dot: no distribution to learn
        canvas = np.zeros((100, 100, 4), np.uint8)
        canvas[50:52, 50:52] = (0, 0, 0, 255)
        Image.fromarray(canvas).save(tmp_path / "dot.png")
        inputs["drawing"] = {"background": None, "layers": [], "composite": handle_file(tmp_path / "dot.png")}
    with pytest.raises(Exception, match=message):
        client(url).predict(**inputs, max_seconds=3, api_name="/lab_train_diffusion")


def test_animating_before_training_asks_to_train_first(url):
    with pytest.raises(Exception, match="train a diffusion model first"):
        client(url).predict(seed=0, api_name="/lab_reverse_process")


def test_stop_ends_a_training_job_long_before_its_time_limit(url):
    c = client(url)
    job = c.submit(**TOY, max_seconds=60, api_name="/lab_train_diffusion")
    while len(job.outputs()) < 2:  # training has begun
        time.sleep(0.05)
    started = time.monotonic()
    c.predict(api_name="/lab_stop")
    outputs = stream(job)
    assert time.monotonic() - started < 10
    assert "stopped by you" in outputs[-1][0]


def test_training_jobs_run_one_at_a_time(url):
    def train_and_time():
        job = client(url).submit(**TOY, max_seconds=2, api_name="/lab_train_diffusion")
        first = None
        for _ in job:
            first = first or time.monotonic()
        return first, time.monotonic()

    with ThreadPoolExecutor(2) as pool:
        (a_start, a_end), (b_start, b_end) = pool.map(lambda _: train_and_time(), range(2))
    assert b_start >= a_end - 0.5 or a_start >= b_end - 0.5  # one job's first output after the other's last


def test_light_requests_are_answered_while_a_training_job_runs(url):
    """A training job and 8 concurrent lightweight clients at once: 0 errors, all answered before training ends."""
    job = client(url).submit(**TOY, max_seconds=8, api_name="/lab_train_diffusion")
    while not job.outputs():
        time.sleep(0.05)

    def train_until_done() -> float:
        stream(job)
        return time.monotonic()

    def preview(i: int) -> float:
        picture = client(url).predict(target=list(toy2d_targets.TARGETS)[i % 4], drawing=None, api_name="/lab_target")
        assert picture  # a data URL or file reference of the image
        return time.monotonic()

    with ThreadPoolExecutor(9) as pool:
        training = pool.submit(train_until_done)
        answered = list(pool.map(preview, range(8)))
        training_ended = training.result()
    assert len(answered) == 8 and max(answered) < training_ended
