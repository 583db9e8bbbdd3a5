"""Bad input: every public endpoint gets generated bad/extreme inputs; each gets a gr.Error or a valid answer.

In-process (fast) through the endpoint functions taken from app.demo, by hand lists/random draws and by
hypothesis; then a few through gradio_client against the served app, the hidden (ui_*) events and the image
editor's component server through raw HTTP; the server must still answer afterwards.
tests/support/fuzz.py runs the full counts (≥ 300 inputs per endpoint).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from playground import limits
from tests.support.app_server import make_tiny_models
from tests.support.fuzz import (
    BASE_INPUTS,
    KINDS,
    finish,
    fuzz_client,
    fuzz_in_process,
    normal_request_works,
    public_endpoints,
    run_case,
)
from tests.support.fuzz_raw import fuzz_component_server, fuzz_hidden
from tests.support.load import PeakMemory, resident_bytes, serve_app

COUNT = 25  # inputs per endpoint in CI


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return make_tiny_models(tmp_path_factory.mktemp("fuzz") / "models")


@pytest.fixture(scope="module")
def demo(models_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("PLAYGROUND_MODELS_DIR", str(models_dir))
    import app

    yield app.demo
    mp.undo()


def crashes_of(report: dict) -> dict:
    return {name: counts["crash"] for name, counts in report.items() if counts["crash"]}


def test_every_public_endpoint_is_fuzzed(demo):
    endpoints = public_endpoints(demo)
    assert len(endpoints) >= 10
    assert {fn.__name__ for fn, _, _ in endpoints.values()} <= set(BASE_INPUTS)


def test_base_inputs_are_answered(demo):
    for name, (fn, _inputs, outputs) in public_endpoints(demo).items():
        assert run_case(fn, BASE_INPUTS[fn.__name__], outputs) == ("ok", ""), name


def test_a_stream_ending_in_skips_keeps_the_pictures_it_showed_before():
    import gradio as gr
    from PIL import Image

    picture = Image.new("L", (4, 4))

    def stream():
        yield "starting", gr.skip()
        yield "step 1", picture
        yield "step 2", gr.skip()  # the picture did not change

    assert finish(stream()) == ("step 2", picture)
    assert run_case(lambda: stream(), [], [gr.Markdown(), gr.Image()]) == ("ok", "")

    def never_drawn():
        yield "starting", gr.skip()

    assert run_case(lambda: never_drawn(), [], [gr.Markdown(), gr.Image()])[0] == "crash"


def test_bad_inputs_get_a_clear_error_or_a_valid_answer(demo):
    report = fuzz_in_process(COUNT, seed=0, demo=demo)
    assert not crashes_of(report), crashes_of(report)
    for name, counts in report.items():
        if BASE_INPUTS[next(fn for n, (fn, _, _) in public_endpoints(demo).items() if n == name).__name__]:
            assert counts["error"] > 0, name  # the bad inputs were seen as bad


NUMBERS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.lists(st.integers(), max_size=3),
)
CHOICES = st.one_of(
    st.none(), st.text(max_size=200), st.integers(), st.floats(), st.lists(st.text(max_size=20), max_size=4)
)
PICTURES = st.one_of(
    st.none(),
    arrays(np.uint8, st.tuples(st.integers(0, 40), st.integers(0, 40))),
    arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 2, 3, 4, 5]))),
    arrays(
        np.float32,
        st.tuples(st.integers(1, 30), st.integers(1, 30)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    ),
)
# what Gradio's decoding hands an editor input: None or a dict of pictures (numeric arrays of any shape)
IMAGES = st.one_of(
    st.none(),
    st.fixed_dictionaries({"background": PICTURES, "layers": st.lists(PICTURES, max_size=2), "composite": PICTURES}),
)
STRATEGIES = {
    "number": NUMBERS,
    "choice": CHOICES,
    "choices": st.one_of(CHOICES, st.lists(CHOICES, max_size=3)),
    "image": IMAGES,
}


@pytest.mark.parametrize(
    "endpoint",
    [
        "sample",
        "forward_process",
        "vae_reconstruct",
        "vae_prior",
        "vae_interpolate",
        "vae_traverse",
        "vae_decode_point",
        "inpaint",
        "schedule_plot",
        "steps_quality",
        "walk_seeds",
        "ddim_invert",
        "walk_digits",
    ],
)
def test_hypothesis_inputs_never_crash_an_endpoint(demo, endpoint):
    endpoints = public_endpoints(demo)
    name = next(n for n, (fn, _, _) in endpoints.items() if n == endpoint or fn.__name__ == endpoint)
    fn, inputs, outputs = endpoints[name]
    kinds = [KINDS.get(type(c).__name__, "choice") for c in inputs]

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data())
    def check(data):
        args = list(BASE_INPUTS[fn.__name__])
        positions = data.draw(st.sets(st.integers(0, len(args) - 1), min_size=1, max_size=2))
        for i in positions:
            wrong_kind = kinds[i] != "image" and data.draw(st.booleans())  # JSON of another kind (HTTP can send it)
            args[i] = data.draw(
                st.one_of(NUMBERS, CHOICES, st.lists(CHOICES, max_size=3)) if wrong_kind else STRATEGIES[kinds[i]]
            )
        outcome, detail = run_case(fn, args, outputs)
        assert outcome != "crash", f"{detail} for {args!r:.500}"

    check()


@pytest.fixture(scope="module")
def served(models_dir):
    with serve_app(models_dir) as (url, pid):
        yield url, pid


@pytest.mark.slow
def test_bad_inputs_over_http_get_the_app_message_and_the_server_keeps_answering(served, demo):
    url, _ = served
    report = fuzz_client(url, per_endpoint=4, seed=1, demo=demo)
    assert not crashes_of(report), crashes_of(report)
    assert sum(counts["error"] for counts in report.values()) > 0
    assert normal_request_works(url)


@pytest.mark.slow
def test_hidden_events_get_a_result_or_a_clear_error_like_public_ones(served):
    """Every ui_* event through raw HTTP, with bad inputs and crafted select-event data (what the page never sends)."""
    url, _ = served
    report = fuzz_hidden(url, per_endpoint=3, seed=2)
    assert len(report) >= 10 and "ui_map_click" in report
    assert not crashes_of(report), crashes_of(report)
    assert normal_request_works(url)


@pytest.mark.slow
def test_the_component_server_never_fails_with_a_server_error_nor_grows_the_server(served):
    url, pid = served
    before = resident_bytes(pid)
    with PeakMemory(pid, every=0.05) as memory:
        report = fuzz_component_server(url, count=30, seed=3)
    assert not crashes_of(report), crashes_of(report)
    assert report["component_server/accept_blobs"]["error"] > 0  # the crafted calls were refused
    assert memory.peak - before < limits.BLOB_BUDGET_BYTES + 64 * 2**20
    assert normal_request_works(url)
