"""Soak: the served app keeps answering after its cache sweep has deleted every file older than a second. A cached
result (a walk, the Sample tab's first batch) must never name a file the sweep removed: the Space broke half an hour
after its first visitor when one did."""

from __future__ import annotations

import time

import pytest
from gradio_client import Client

from tests.support import gradio_http as http
from tests.support.app_server import launch_app, make_tiny_models, stop_app

SWEEP = "0.5,1"  # sweep every 0.5 s, delete files older than 1 s (the Space: 300 s and 1,800 s)
ROUNDS, PAUSE_S = 3, 2.5
WALKS = {  # public walk endpoints at their starting values (the page-open views use the same cached walks)
    "/walk_seeds": {},
    "/ddim_invert": {},
    "/walk_digits": {},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("soak")
    process, url = launch_app(
        make_tiny_models(folder / "models"), folder / "app.log", env={"PLAYGROUND_CACHE_SWEEP": SWEEP}
    )
    yield url
    stop_app(process)


def page_open_events(url: str) -> dict[str, int]:
    """api name → fn_index of every hidden event the page runs when it opens (no inputs)."""
    indices = http.fn_indices(url)
    events = http.hidden_events(url).items()
    return {
        name: indices[name]
        for name, event in events
        if not event["inputs"] and event.get("backend_fn") and not event["select"]
    }


@pytest.mark.slow
def test_cached_views_keep_answering_after_the_sweep_deleted_their_first_files(served):
    client = Client(served, verbose=False)
    opening = page_open_events(served)
    assert "ui_first_batch" in opening  # the Sample tab's kept first batch is among them
    for round_ in range(ROUNDS):
        for name, index in opening.items():
            outcome = http.run_event(served, index, [])
            assert outcome.status == "complete", (round_, name, outcome.message)
        for api_name, kwargs in WALKS.items():
            result = client.predict(api_name=api_name, **kwargs)  # a failed postprocess raises here
            assert any(isinstance(part, str) and part.endswith(".gif") for part in result), (round_, api_name)
        time.sleep(PAUSE_S)  # every file served so far is now older than the sweep's age, and deleted
