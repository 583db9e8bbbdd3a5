"""The red-team cases against a served app, each as figures: server memory, files left, seconds to cancel, messages.

    python -m tests.support.limits                      # every case on tiny random models
    python -m tests.support.limits --cases cancel --models-dir models    # the cancel case on the bundled models
    python -m tests.support.limits --cases bomb --bomb-side 13000 --bomb-layers 2   # the red team's bomb

Cases (``--cases``, default all):

- ``bomb``: a small PNG of ``--bomb-side``² 1-bit pixels sent as a sketchpad upload (background, composite and
  ``--bomb-layers`` layers): the server's peak resident memory above its level before, what stays after, the answer.
- ``largest``: the largest pictures accepted (``--largest-side``², random RGBA) as the inpainting editor's
  background, composite and ``--largest-layers`` layers, once succeeding and once failing: peak and kept memory.
- ``blobs``: the image editor's ``accept_blobs`` component-server call with layer index ``--blob-index`` and one
  byte, then three ``--blob-mb`` MB blobs that no event uses: status codes and resident memory added.
- ``dropped``: a visitor's drawing, then another visitor's flood of canvases over the shared budget, then the
  first visitor's event that uses the drawing: what it answers (E10).
- ``upload``: an upload of ``--upload-mb`` MB: accepted or refused.
- ``files``: ``--requests`` calls each of /sample and /vae_interpolate; files in the server's temp and Gradio cache
  folders before, right after and ``--settle`` seconds later (the server sweeps files older than 4 s every 2 s).
- ``concurrency``: four slow jobs on each heavy endpoint (sampling, inpainting) at once: the most running together.
- ``cancel``: two DDIM-200 × 16 sampling jobs (every sampling place taken) cancelled after their first frame:
  seconds until each /cancel answers, how long a small request sent right after waits, server CPU seconds meanwhile.
- ``errors``: crafted hidden-endpoint input, an unknown fn_index, an upload without a name, an unreadable upload,
  a server path, t = 1500 with T = 2000, a page-open walk of 16 frames × 200 steps, the event stream of an unknown
  session: the answer to each (and the log bytes of the last); log lines and tracebacks for three user errors.
- ``visitors``: one visitor sends ``--flood`` slow sampling jobs at once (the red team's queue flood, E3); how many
  were taken and refused (and how), then, while they run, whether another visitor's quick view and sampling job are
  taken, and how long the quick view took.

Runs against the tree it lives in: copy it, with tests/support/gradio_http.py, into an older checkout to measure that.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]

from tests.support import gradio_http as http
from tests.support.load import PeakMemory, resident_bytes, serve_app

MB = 2**20
CASES = ("bomb", "largest", "blobs", "dropped", "upload", "files", "concurrency", "cancel", "errors", "visitors")

# ---------------------------------------------------------------- pictures and helpers


def bomb_png(side: int) -> bytes:
    """A PNG of side × side 1-bit pixels, all white: a few KB on the wire, side² × 4 bytes once decoded to RGBA."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (side, side), 1).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def noise_png(side: int) -> bytes:
    """A PNG of side × side random RGBA pixels: the largest file (and decoded size) a picture of that size has."""
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 4), dtype=np.uint8)
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def settled_rss(pid: int, seconds: float = 1.5) -> int:
    time.sleep(seconds)
    return resident_bytes(pid)


def editor_payload(path: str, layers: int = 0) -> dict:
    picture = http.file_data(path, Path(path).name)
    return {"background": picture, "layers": [picture] * layers, "composite": picture, "id": None}


def measured(pid: int, request, settle: float = 1.5) -> tuple[http.Outcome, int, int]:
    """(the outcome of ``request()``, the server's peak resident bytes above its level before, bytes kept ``settle``
    seconds after)."""
    before = settled_rss(pid, 0.5)
    with PeakMemory(pid, every=0.02) as memory:
        outcome = request()
    return outcome, memory.peak - before, settled_rss(pid, settle) - before


def answer(outcome: http.Outcome) -> str:
    if outcome.status == "refused":
        return f"HTTP {outcome.http_status} {outcome.message}"
    return f"{outcome.status}: {outcome.message if outcome.status == 'error' else 'answered'}"


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


# ---------------------------------------------------------------- the cases


def case_bomb(url: str, pid: int, side: int = 6000, layers: int = 0) -> dict:
    data = bomb_png(side)
    path = http.upload(url, data, "bomb.png").json()[0]
    reconstruct = http.fn_indices(url)["vae_reconstruct"]
    outcome, peak, kept = measured(
        pid, lambda: http.run_event(url, reconstruct, [0, editor_payload(path, layers), 0, 1.0])
    )
    return {
        "file_kb": round(len(data) / 1024, 1),
        "peak_mb": round(peak / MB),
        "kept_mb": round(kept / MB),
        "answer": answer(outcome),
    }


def case_largest(url: str, pid: int, side: int = 2048, layers: int = 4) -> dict:
    """Succeeds with a drawn mask and 2 DDIM steps; fails with an unknown sampler (after the pictures are decoded;
    kept memory read 6 s later, after the server's second release pass)."""
    data = noise_png(side)
    path = http.upload(url, data, "noise.png").json()[0]
    inpaint = http.fn_indices(url)["inpaint"]
    figures = {"file_mb": round(len(data) / MB, 1)}
    for name, sampler in (("succeeds", "DDIM"), ("fails", "nope")):
        args = [7, editor_payload(path, layers), "drawn", sampler, 2, 1, 1, 0]
        settle = 6.0 if name == "fails" else 1.5
        outcome, peak, kept = measured(pid, lambda args=args: http.run_event(url, inpaint, args), settle)
        figures |= {
            f"{name}_answer": answer(outcome)[:80],
            f"{name}_peak_mb": round(peak / MB),
            f"{name}_kept_mb": round(kept / MB),
        }
    return figures


def case_blobs(url: str, pid: int, index: int = 10_000_000, blob_mb: int = 50) -> dict:
    editor = http.component_ids(url, "imageeditor")[0]
    before = settled_rss(pid, 0.5)
    big_index = http.accept_blobs(url, editor, uuid.uuid4().hex, "layer", b"x", index=index)
    after_index = settled_rss(pid)
    statuses = [
        http.accept_blobs(url, editor, uuid.uuid4().hex, "composite", os.urandom(blob_mb * MB)).status_code
        for _ in range(3)
    ]
    after_blobs = settled_rss(pid)
    return {
        "index_status": big_index.status_code,
        "index_kept_mb": round((after_index - before) / MB),
        "blob_mb": blob_mb,
        "blob_statuses": statuses,
        "blobs_kept_mb": round((after_blobs - after_index) / MB),
    }


def case_dropped(url: str, flood: int = 4) -> dict:
    """A visitor's drawing sent as a canvas blob, then another visitor's ``flood`` 2048² noise canvases (16.8 MB each,
    over the shared 64 MB budget), then the first visitor's event that uses the drawing: its answer."""
    editor = http.component_ids(url, "imageeditor")[0]
    mine = uuid.uuid4().hex
    http.accept_blobs(url, editor, mine, "composite", noise_png(28))
    big = noise_png(2048)
    statuses = [http.accept_blobs(url, editor, uuid.uuid4().hex, "composite", big).status_code for _ in range(flood)]
    drawing = {"background": None, "layers": [], "composite": None, "id": mine}
    outcome = http.run_event(url, http.fn_indices(url)["vae_reconstruct"], [0, drawing, 0, 1.0])
    return {"flood_statuses": statuses, "drawing_used": answer(outcome)}


def case_upload(url: str, size_mb: int = 64) -> dict:
    response = http.upload(url, b"\0" * (size_mb * MB), "big.png", timeout=300)
    return {"size_mb": size_mb, "status": response.status_code, "answer": response.text[:120]}


def count_files(folders: list[Path]) -> int:
    return sum(1 for folder in folders for path in folder.rglob("*") if path.is_file())


def case_files(url: str, folders: list[Path], requests: int = 20, settle: float = 8.0) -> dict:
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="bench-downloads-"))
    before = count_files(folders)
    for seed in range(requests):
        client.predict("pixel", "DDIM", 3, 0.0, seed, 2, 0, 1.0, api_name="/sample")
        client.predict(seed % 500, (seed + 60) % 500, 3, api_name="/vae_interpolate")
    right_after = count_files(folders)
    time.sleep(settle)
    return {"requests": 2 * requests, "before": before, "right_after": right_after, "settled": count_files(folders)}


def most_at_once(changes: list[tuple[float, int]], hold: float = 0.5) -> int:
    """The largest number of jobs running together for at least ``hold`` seconds, from (time, +1 start / −1 end)
    changes (messages of different jobs reach the client with some delay, so brief overlaps are not counted)."""
    changes = sorted(changes)
    running, most = 0, 0
    for (time_now, step), (time_next, _) in zip(changes, changes[1:] + [(float("inf"), 0)]):
        running += step
        if time_next - time_now >= hold:
            most = max(most, running)
    return most


def slow_jobs(steps: int = 300, images: int = 64, per_endpoint: int = 4) -> list[tuple[str, list]]:
    """Slow calls on each heavy endpoint (tiny models: each takes seconds, not minutes)."""
    sample = ["pixel", "DDPM", steps, 0.0, 0, images, 0, 1.0, 1.0]
    inpaint = [7, None, "left half", "DDPM", steps, 3, min(images, 8), 0]
    return [("sample", sample)] * per_endpoint + [("inpaint", inpaint)] * per_endpoint


def case_concurrency(url: str, pid: int, steps: int = 300, images: int = 64, per_endpoint: int = 4) -> dict:
    events = http.fn_indices(url)
    changes, lock = [], threading.Lock()

    def on_update(message):
        step = {"process_starts": 1, "process_completed": -1}.get(message.get("msg"))
        if step:
            with lock:
                changes.append((time.perf_counter(), step))

    jobs = slow_jobs(steps, images, per_endpoint)
    threads = [
        threading.Thread(
            target=http.run_event,
            args=(url, events[name], args),
            kwargs={"on_update": on_update, "visitor": f"10.0.0.{i}"},  # each its own visitor: all run or wait
        )
        for i, (name, args) in enumerate(jobs)
    ]
    with PeakMemory(pid, every=0.05) as memory:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return {"jobs": len(jobs), "most_at_once": most_at_once(changes), "peak_rss_mb": round(memory.peak / MB)}


def start_after_first_frame(url: str, fn_index: int, args: list) -> tuple[str, str]:
    """Join the queue with ``args``; return (session, event id) once the first streamed frame arrived."""
    session = uuid.uuid4().hex
    event_id = http.join(url, fn_index, args, session).json()["event_id"]
    first_frame = threading.Event()
    threading.Thread(
        target=http.listen,
        args=(url, session, event_id, 900),
        kwargs={"on_update": lambda m: m.get("msg") == "process_generating" and first_frame.set()},
        daemon=True,
    ).start()
    first_frame.wait(900)
    return session, event_id


def case_cancel(url: str, pid: int, steps: int = 200, images: int = 16) -> dict:
    """Two DDIM-``steps`` × ``images`` jobs (every sampling place taken), both cancelled after their first frame;
    a small request sent right after the cancels; how long each took and the server's CPU time meanwhile."""
    sample = http.fn_indices(url)["sample"]
    args = ["pixel", "DDIM", steps, 0.0, 0, images, 0, 1.0, 1.0]
    jobs = [start_after_first_frame(url, sample, args) for _ in range(2)]
    answered = [0.0] * len(jobs)

    def cancel(i):
        start = time.perf_counter()
        http.cancel(url, sample, *jobs[i])
        answered[i] = time.perf_counter() - start

    cpu_before = cpu_seconds(pid)
    cancels = [threading.Thread(target=cancel, args=(i,)) for i in range(len(jobs))]
    for thread in cancels:
        thread.start()
    time.sleep(0.05)
    small = http.run_event(url, sample, ["pixel", "DDIM", 2, 0.0, 0, 1, 0, 1.0, 1.0])
    for thread in cancels:
        thread.join()
    time.sleep(2.0)
    return {
        "cancel_answered_s": [round(a, 2) for a in answered],
        "next_request_s": round(small.seconds, 2),
        "next_request": answer(small),
        "server_cpu_s": round(cpu_seconds(pid) - cpu_before, 2),
    }


def case_errors(url: str, log: Path | None) -> dict:
    events = http.fn_indices(url)
    figures = {}
    crafted = {"index": [1e308, 0], "value": None}
    figures["map_click_1e308"] = answer(http.run_event(url, events["ui_map_click"], [], event_data=crafted))
    figures["fn_index_999"] = answer(http.run_event(url, 999, []))
    response = http.upload(url, b"hello", name="")
    figures["upload_without_name"] = f"HTTP {response.status_code} {response.text[:120]}"
    path = http.upload(url, b"not an image", name="notes.png").json()[0]
    figures["unreadable_upload"] = answer(
        http.run_event(url, events["vae_reconstruct"], [0, editor_payload(path), 0, 1.0])
    )
    relative = http.run_event(url, events["vae_reconstruct"], [0, editor_payload("relative.png"), 0, 1.0])
    figures["server_path"] = answer(relative)
    forward = [["linear"], 2000, 1e-4, 0.02, 0, None, 1500, 0]
    figures["forward_t1500_T2000"] = answer(http.run_event(url, events["forward_process"], forward))
    walk = ["latent", 0, 1, 16, 200]  # the red team's page-open walk: 16 frames × 200 steps outside any budget
    figures["page_open_walk_16x200"] = answer(http.run_event(url, events["ui_walk_seeds_on_open"], walk))
    if log is not None:
        size_before = len(log.read_text())
        stream = httpx.get(f"{url}{http.API}/queue/data", params={"session_hash": "no-such-session"}, timeout=30)
        time.sleep(0.5)
        logged = [line for line in log.read_text()[size_before:].splitlines() if "cache sweep" not in line]
        logged_bytes = len("\n".join(logged))
        figures["unknown_session_stream"] = f"HTTP {stream.status_code}, {logged_bytes} log bytes"
        lines_before = len(log.read_text().splitlines())
        for steps in (5000, 6000, 7000):  # three user errors
            http.run_event(url, events["sample"], ["pixel", "DDIM", steps, 0.0, 0, 2, 3, 1.0, 1.0])
        time.sleep(0.5)
        new = [line for line in log.read_text().splitlines()[lines_before:] if "cache sweep" not in line]
        figures["log_lines_for_3_user_errors"] = len(new)
        figures["tracebacks_for_3_user_errors"] = sum("Traceback" in line for line in new)
    return figures


def case_visitors(url: str, flood: int = 40, steps: int = 300, images: int = 64) -> dict:
    events = http.fn_indices(url)
    sample = ["pixel", "DDPM", steps, 0.0, 0, images, 0, 1.0, 1.0]
    joins = [http.join(url, events["sample"], sample, uuid.uuid4().hex, visitor="10.9.9.9") for _ in range(flood)]
    refused = [r for r in joins if r.status_code != 200]
    forward = [["linear"], 1000, 1e-4, 0.02, 0, None, 200, 0]
    quick = http.run_event(url, events["forward_process"], forward, visitor="10.8.8.8", timeout=600)
    other = http.join(
        url, events["sample"], ["pixel", "DDIM", 2, 0.0, 0, 1, 0, 1.0, 1.0], uuid.uuid4().hex, None, "10.8.8.8"
    )
    return {
        "flood_taken": flood - len(refused),
        "flood_refused": len(refused),
        "refusal": f"HTTP {refused[0].status_code} {refused[0].json().get('detail')}" if refused else None,
        "other_quick_view": answer(quick),
        "other_quick_view_s": round(quick.seconds, 2),
        "other_sample_join": other.status_code,
    }


# ---------------------------------------------------------------- running them


def server_log(pid: int) -> Path | None:
    """The file the server writes its output to (its stdout), read from /proc."""
    try:
        return Path(os.readlink(f"/proc/{pid}/fd/1"))
    except OSError:
        return None


def serve_for_cases(models_dir, work: Path):
    """serve_app with its own temp and Gradio cache folders under ``work`` (counted by the files case) and a
    short cache age; yields (url, pid, folders)."""
    folders = [work / "tmp", work / "gradio"]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    env = {"TMPDIR": str(folders[0]), "GRADIO_TEMP_DIR": str(folders[1]), "PLAYGROUND_CACHE_SWEEP": "2,4"}
    return serve_app(models_dir, threads=1, env=env), folders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--models-dir", default=None, help="models folder (default: tiny random models)")
    parser.add_argument("--bomb-side", type=int, default=6000)
    parser.add_argument("--bomb-layers", type=int, default=0)
    parser.add_argument("--largest-side", type=int, default=2048)
    parser.add_argument("--largest-layers", type=int, default=4)
    parser.add_argument("--blob-index", type=int, default=10_000_000)
    parser.add_argument("--blob-mb", type=int, default=50)
    parser.add_argument("--upload-mb", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--settle", type=float, default=8.0)
    parser.add_argument("--flood", type=int, default=40, help="slow jobs one visitor sends at once (visitors case)")
    parser.add_argument("--keep-log", action="store_true", help="print the end of the server's log")
    args = parser.parse_args()
    from tests.support.app_server import make_tiny_models

    work = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    models_dir = args.models_dir or str(make_tiny_models(work / "models"))
    server, folders = serve_for_cases(models_dir, work)
    with server as (url, pid):
        log = server_log(pid)
        cases = {
            "bomb": lambda: case_bomb(url, pid, args.bomb_side, args.bomb_layers),
            "largest": lambda: case_largest(url, pid, args.largest_side, args.largest_layers),
            "blobs": lambda: case_blobs(url, pid, args.blob_index, args.blob_mb),
            "dropped": lambda: case_dropped(url),
            "upload": lambda: case_upload(url, args.upload_mb),
            "files": lambda: case_files(url, folders, args.requests, args.settle),
            "concurrency": lambda: case_concurrency(url, pid),
            "cancel": lambda: case_cancel(url, pid),
            "errors": lambda: case_errors(url, log),
            "visitors": lambda: case_visitors(url, args.flood),
        }
        for case in args.cases.split(","):
            for name, value in cases[case]().items():
                print(f"{case:12s} {name}: {value}", flush=True)
        if args.keep_log and log is not None:
            print(log.read_text()[-5000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
