"""The red-team cases against the served app (tests/support/limits.py runs them at full size and prints the figures):
server memory around a request stays within a bound, the disk stays flat, heavy jobs share one limit, malformed
requests get a 4xx, errors carry no server path, a user error is one log line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")

from playground import limits, visitors
from tests.support import gradio_http as http
from tests.support.app_server import make_tiny_models
from tests.support.limits import (
    case_blobs,
    case_bomb,
    case_concurrency,
    case_dropped,
    case_errors,
    case_files,
    case_largest,
    case_upload,
    case_visitors,
    noise_png,
    serve_for_cases,
    server_log,
    settled_rss,
)

pytestmark = pytest.mark.slow
MB = 2**20
PICTURE_BOUND_MB = 256  # docs/limits.md's bound on one request's pictures (2048² background, composite and 4 layers)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("limits")
    server, folders = serve_for_cases(make_tiny_models(work / "models"), work)
    with server as (url, pid):
        yield url, pid, folders


def test_a_decompression_bomb_is_refused_without_growing_the_server(served):
    url, pid, _ = served
    side = 6000  # decoded: 144 MB per picture, three pictures
    figures = case_bomb(url, pid, side=side, layers=1)
    assert "more than" in figures["answer"] and f"at most {limits.MAX_IMAGE_SIDE}" in figures["answer"]
    assert figures["peak_mb"] < side * side * 4 / MB / 4 and figures["kept_mb"] < 16


def test_the_largest_accepted_pictures_stay_within_the_stated_bound_and_a_failure_keeps_nothing(served):
    url, pid, _ = served
    figures = case_largest(url, pid, side=limits.MAX_IMAGE_SIDE, layers=limits.MAX_LAYERS)
    assert figures["succeeds_answer"].startswith("complete") and figures["fails_answer"].startswith("error")
    assert figures["succeeds_peak_mb"] < PICTURE_BOUND_MB and figures["fails_peak_mb"] < PICTURE_BOUND_MB
    assert figures["fails_kept_mb"] < 32  # the failed request's memory was released


def test_the_blob_endpoint_refuses_a_huge_layer_index_and_holds_at_most_its_budget(served):
    url, pid, _ = served
    figures = case_blobs(url, pid, index=10**8, blob_mb=1)
    assert figures["index_status"] == 400 and figures["index_kept_mb"] < 16
    assert figures["blob_statuses"] == [400, 400, 400]  # random bytes are not a picture
    editor = http.component_ids(url, "imageeditor")[0]
    picture = noise_png(1400)  # 7.5 MB, never used by an event: twenty of them are 2.3 × the budget
    before = settled_rss(pid, 0.5)
    statuses = {http.accept_blobs(url, editor, f"canvas-{i}", "background", picture).status_code for i in range(20)}
    kept_mb = (settled_rss(pid) - before) / MB
    assert statuses == {200} and kept_mb < limits.BLOB_BUDGET_BYTES / MB + 32


def test_a_drawing_another_visitors_flood_pushed_out_is_reported_not_replaced(served):
    url, _, _ = served
    figures = case_dropped(url)
    assert figures["flood_statuses"] == [200] * 4
    assert (
        figures["drawing_used"].startswith("error: the Sketchpad")
        and "your drawing was dropped" in figures["drawing_used"]
    )


def test_uploads_beyond_the_file_size_limit_are_refused(served):
    url, _, _ = served
    assert case_upload(url, size_mb=limits.MAX_UPLOAD_BYTES // MB + 4)["status"] == 413
    assert case_upload(url, size_mb=1)["status"] == 200


def test_many_requests_leave_the_disk_flat(served):
    url, _, folders = served
    figures = case_files(url, folders, requests=4, settle=7.0)  # the server sweeps files older than 4 s every 2 s
    assert figures["right_after"] > figures["before"] and figures["settled"] <= figures["before"]


def test_heavy_jobs_share_one_concurrency_limit(served):
    url, pid, _ = served
    figures = case_concurrency(url, pid, steps=60, images=8, per_endpoint=3)
    assert 1 <= figures["most_at_once"] <= 2  # PLAYGROUND_CONCURRENCY, across sampling and inpainting together


def test_one_visitor_flooding_the_queue_is_bounded_and_others_still_get_views_and_samples(served):
    url, _, _ = served
    figures = case_visitors(url, flood=12, steps=100, images=16)
    assert (
        figures["flood_taken"] == visitors.MAX_HEAVY_PER_VISITOR
        and figures["flood_refused"] == 12 - visitors.MAX_HEAVY_PER_VISITOR
    )
    assert figures["refusal"].startswith("HTTP 429") and "wait for one to finish" in figures["refusal"]
    assert figures["other_quick_view"] == "complete: answered" and figures["other_sample_join"] == 200


def test_malformed_requests_get_a_clear_4xx_and_errors_no_server_path(served):
    url, pid, _ = served
    figures = case_errors(url, server_log(pid))
    assert figures["map_click_1e308"].startswith("error: map click x (pixels) must lie in [0, 479]")
    assert figures["fn_index_999"].startswith("HTTP 404") and "fn_index" in figures["fn_index_999"]
    assert figures["upload_without_name"].startswith("HTTP 400") and "file name" in figures["upload_without_name"]
    assert "'notes.png' is not a readable image" in figures["unreadable_upload"]
    assert figures["server_path"].startswith("error: Cannot move relative.png")
    assert figures["forward_t1500_T2000"] == "complete: answered"
    assert figures["page_open_walk_16x200"].startswith("error: The page-open view takes the page's starting values")
    assert figures["unknown_session_stream"] == "HTTP 404, 0 log bytes"
    assert figures["log_lines_for_3_user_errors"] == 3 and figures["tracebacks_for_3_user_errors"] == 0
    assert not re.search(re.escape(str(Path(__file__).resolve().parents[2])), str(figures))
