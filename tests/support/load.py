"""Load: N concurrent gradio_client users, each making M mixed requests against the app served on 127.0.0.1.

    python -m tests.support.load                          # 16 users × 5 requests, the bundled models
    python -m tests.support.load --users 4 --requests 2 --tiny-models --max-requests 1
    python -m tests.support.load --mixed --users 2 --tiny-models     # every heavy endpoint at once, per user
    python -m tests.support.load --cancel-requests 2 --tiny-models   # two users cancel a large sampling job

Every user is its own ``gradio_client.Client`` (its own session) in a thread; the requests cycle through the
endpoints whose models are bundled (sampling, the forward process, the schedule plot, VAE, inpainting and walks),
and ``--max-requests`` of them sample at the largest allowed settings (DDPM, 1000 steps, 64 images). Each
result is checked (the right number of images of the right size, files that exist). While it runs, the
server's resident memory is sampled every 0.2 s (psutil, else /proc/<pid>/status VmRSS) and its peak must
stay under ``--max-rss-gb``. Prints failures, p50/p95 latency and the peak; exits 1 on any failure.

``--mixed`` sends, for each user, every heavy request at once: sampling and inpainting at the largest settings,
and the forward process, reconstruction and traversal of the largest picture accepted (2048² RGBA noise).
``--cancel-requests`` users start a largest-settings sampling job and cancel it after its first streamed frame
(``job.cancel()``, as the page's Stop button): the seconds until the job is over are reported.

What keeps this bounded is the app's queue: all sampling and inpainting share one concurrency limit
(PLAYGROUND_CONCURRENCY, default 2), the other events that take a picture share another, and at most
``max_size`` (32) wait; the rest are refused with "queue full" rather than piling up memory. Everything is
bounded here too: a fixed number of requests, a timeout per request and for the server's start, and the
server is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.gradio_http import visitor_headers

ROOT = Path(__file__).resolve().parents[2]

DISPLAY_SIZE = 112  # 28-px digits shown ×4
SERVE_CODE = (
    "import sys, torch; torch.set_num_threads(int(sys.argv[2])); import app; "
    "app.launch(server_name='127.0.0.1', server_port=int(sys.argv[1]), show_error=sys.argv[3] == 'True', quiet=True)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_app(
    models_dir: str | os.PathLike,
    threads: int = 2,
    show_error: bool = True,
    start_timeout: float = 180.0,
    env: dict | None = None,
):
    """Run app.py's demo in a subprocess on a free 127.0.0.1 port (``show_error`` as app.py sets it); yields (url, pid)."""
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PLAYGROUND_MODELS_DIR": str(Path(models_dir).resolve()),
        "PLAYGROUND_TRUST_FORWARDED": "1",  # each simulated visitor says who it is (visitor_client)
        **(env or {}),
    }
    log = tempfile.NamedTemporaryFile(prefix="app-server-", suffix=".log", delete=False)  # noqa: SIM115 (the server writes it until stopped)
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_CODE, str(port), str(threads), str(show_error)],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with {process.returncode}: {Path(log.name).read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the app did not answer on {url} within {start_timeout} s")
            time.sleep(0.5)
        # measure a settled server: app.launch loads the models in a warm-up thread once it serves
        while "warm-up" not in Path(log.name).read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def visitor_client(url: str, index: int, **options):
    """A gradio_client Client that the served app counts as visitor number ``index`` (see gradio_http.visitor_headers)."""
    from gradio_client import Client

    return Client(url, verbose=False, headers=visitor_headers(f"10.0.{index // 256}.{index % 256}"), **options)


def resident_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (psutil when installed, else /proc/<pid>/status VmRSS)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakMemory:
    """Samples a process's resident memory in a thread; ``peak`` in bytes."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every, self.peak, self.samples = pid, every, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.peak = max(self.peak, resident_bytes(self.pid))
                self.samples += 1
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- the requests and their checks


def endpoint_names(client) -> dict[str, str]:
    """Python function name → API name (e.g. "schedule_plot" → "/schedule_plot"), from the app's API info."""
    import app
    from tests.support.fuzz import public_endpoints

    return {fn.__name__: f"/{name}" for name, (fn, _, _) in public_endpoints(app.demo).items()}


def available_keys(models_dir: str | os.PathLike) -> set[str]:
    from playground.models import SPECS

    return {key for key, spec in SPECS.items() if (Path(models_dir) / spec.folder / "model_index.json").is_file()}


def request_mix(available: set[str]) -> list[tuple[str, list, int | None]]:
    """(function name, arguments, the expected number of images — of stats rows for the forward process — or None);
    small settings, bundled models only."""
    from playground.validation import MAX_DDPM_STEPS, MAX_IMAGES  # noqa: F401  (documented limits)

    mix = [
        ("schedule_plot", [["linear", "squaredcos_cap_v2"], 1000, 1e-4, 0.02], None),
        ("forward_process", [["linear", "sigmoid"], 1000, 1e-4, 0.02, 3, None, 300, 1], 2),
    ]
    for key in ("pixel", "latent", "conditional"):
        if key in available:
            mix.append(("sample_stream", [key, "DDIM", 10, 0.0, 7, 4, 3, 2.0], 4))
    if "pixel" in available:
        mix.append(("inpaint", [7, None, "left half", "DDIM", 10, 1, 2, 0], 2))
    if "vae" in available:
        mix += [("prior_samples", [8, 1], 8), ("reconstruct", [5, None, 0], None), ("interpolate", [0, 60, 6], None)]
    if "latent" in available:  # the Walks tab: a seed morph and an inversion (and a walk between digits with the VAE)
        mix += [("walk_seeds", ["latent", 3, 4, 6, 10], 6), ("ddim_invert", ["latent", 5, None, 10], None)]
        if "vae" in available:
            mix.append(("walk_digits", ["latent", 0, 60, 6, 10], 6))
    return mix


def max_request(available: set[str], steps: int | None = None) -> tuple[str, list, int]:
    """Sampling at the largest settings the page allows: DDPM, the most steps (or ``steps``), the most images."""
    from playground.validation import MAX_DDPM_STEPS, MAX_IMAGES

    key = next(k for k in ("pixel", "latent", "conditional") if k in available)
    return ("sample_stream", [key, "DDPM", steps or MAX_DDPM_STEPS, 0.0, 3, MAX_IMAGES, 3, 1.0], MAX_IMAGES)


def largest_picture(folder: Path) -> Path:
    """The largest picture the app accepts: 2048² random RGBA (16 MB as PNG), written once under ``folder``."""
    from playground.limits import MAX_IMAGE_SIDE
    from tests.support.limits import noise_png

    path = folder / "largest.png"
    if not path.exists():
        path.write_bytes(noise_png(MAX_IMAGE_SIDE))
    return path


def mixed_requests(available: set[str], picture: Path, steps: int | None = None) -> list[tuple[str, list, int | None]]:
    """Every heavy request: sampling and inpainting at the largest settings, the largest picture through the
    forward process (T = 2000, every schedule), reconstruction and traversal."""
    from gradio_client import handle_file

    from pipelines.schedules import BETA_SCHEDULES
    from playground.tabs.schedules import MAX_T

    file = handle_file(str(picture))
    drawing = {"background": file, "layers": [file], "composite": file}  # a layer of random alpha: all painted
    mix = [("forward_process", [list(BETA_SCHEDULES), MAX_T, 1e-4, 0.02, 3, drawing, MAX_T, 1], len(BETA_SCHEDULES))]
    if available & {"pixel", "latent", "conditional"}:
        mix.append(max_request(available, steps))
    if "pixel" in available:
        mix.append(("inpaint", [7, drawing, "drawn", "DDPM", min(steps or 100, 100), 10, 8, 0], 8))
    if "vae" in available:
        mix += [("reconstruct", [5, drawing, 0], None), ("traverse", [5, drawing, 0, 3.0, 32], None)]
    return mix


def cancelling_user(url: str, index: int, request: tuple, names: dict[str, str], timeout: float) -> list[dict]:
    """Start ``request`` (a streaming one), cancel it after its first streamed update; seconds until it is over."""
    from gradio_client.utils import Status

    function, args, _ = request
    job = visitor_client(url, index).submit(*args, api_name=names[function])
    deadline = time.monotonic() + timeout
    while job.status().code not in (Status.ITERATING, Status.FINISHED) and time.monotonic() < deadline:
        time.sleep(0.05)
    start = time.perf_counter()
    job.cancel()
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    error = None if job.done() else f"not over {timeout:.0f} s after its cancel"
    return [{"user": index, "function": "cancel", "seconds": time.perf_counter() - start, "error": error}]


def check_images(value, expected: int | None) -> str | None:
    """A gallery (list of {"image": {"path"}}) or one image output: files that open, at the display size."""
    from PIL import Image

    items = value if isinstance(value, list) else [value]
    paths = []
    for item in items:
        image = item.get("image", item) if isinstance(item, dict) else item
        paths.append(image.get("path") if isinstance(image, dict) else image)
    if expected is not None and len(paths) != expected:
        return f"{len(paths)} images, expected {expected}"
    for path in paths:
        if not path or not Path(path).is_file():
            return f"missing image file {path!r}"
        with Image.open(path) as image:
            if min(image.size) < 28:
                return f"image of size {image.size}"
    return None


def validate(function: str, result, expected: int | None) -> str | None:
    """None for a valid result; else what is wrong."""
    outputs = result if isinstance(result, (list, tuple)) else [result]
    if function == "sample_stream":
        gallery, _, status, gif = outputs
        return check_images(gallery, expected) or (
            None if gif and Path(gif).is_file() and "images" in status else "no GIF/status"
        )
    if function == "inpaint":
        return check_images(outputs[0], None) or check_images(outputs[1], expected)
    if function == "prior_samples":  # one output: the gallery itself
        return check_images(result, expected)
    if function == "forward_process":
        gallery, stats, note = outputs
        rows = stats.get("data") if isinstance(stats, dict) else stats
        rows_ok = rows and len(rows) == expected and note  # one row per schedule asked for
        return check_images(gallery, None) or (None if rows_ok else f"stats {stats!r:.200}")
    if function in ("reconstruct", "interpolate"):
        return check_images(outputs[0], None) or check_images(outputs[1], None)
    if function == "traverse":
        return check_images(result, None)
    if function == "walk_seeds":  # (frames, GIF, summary)
        return check_images(outputs[0], expected) or (None if Path(outputs[1]).is_file() else "no GIF")
    if function == "ddim_invert":  # (frames, GIF, errors, summary)
        errors = outputs[2]
        return check_images(outputs[0], None) or (None if 0 <= errors["mean_abs_error"] <= 1 else f"errors {errors}")
    if function == "walk_digits":  # (DDIM frames, VAE frames, GIF, summary)
        return check_images(outputs[0], expected) or check_images(outputs[1], expected)
    return None if outputs[0] is not None else "empty plot"


def user(url: str, index: int, plan: list, names: dict[str, str], timeout: float) -> list[dict]:
    """One client making its requests in turn: [{function, seconds, error}]."""
    client = visitor_client(url, index)
    records = []
    for function, args, expected in plan:
        start = time.perf_counter()
        try:
            job = client.submit(*args, api_name=names[function])
            result = job.result(timeout=timeout)
            error = validate(function, result, expected)
        except Exception as exception:  # a failed request is what is counted
            error = f"{type(exception).__name__}: {str(exception)[:200]}"
        records.append({"user": index, "function": function, "seconds": time.perf_counter() - start, "error": error})
    return records


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run_load(
    url: str,
    pid: int,
    models_dir,
    users: int,
    requests: int,
    max_requests: int,
    timeout: float,
    max_request_steps: int | None = None,
    mixed: bool = False,
    cancel_requests: int = 0,
) -> dict:
    """Every user's plan (the mix, cycled, offset per user; the first ``max_requests`` users start with a max request;
    with ``mixed``, each user's heavy requests all at once instead), and ``cancel_requests`` users who cancel a
    largest-settings sampling job."""
    from gradio_client import Client

    names = endpoint_names(Client(url, verbose=False))
    available = available_keys(models_dir)
    if mixed:
        heavy = mixed_requests(available, largest_picture(Path(tempfile.gettempdir())), max_request_steps)
        plans = [[request] for _ in range(users) for request in heavy]  # one thread per request: all at once
    else:
        mix = request_mix(available)
        plans = []
        for u in range(users):
            plan = [mix[(u + r) % len(mix)] for r in range(requests)]
            if u < max_requests and available & {"pixel", "latent", "conditional"}:
                plan[0] = max_request(available, max_request_steps)
            plans.append(plan)
    cancels = [max_request(available, max_request_steps)] * cancel_requests

    def run(i):
        if i < len(plans):
            return user(url, i, plans[i], names, timeout)
        return cancelling_user(url, i, cancels[i - len(plans)], names, timeout)

    start = time.perf_counter()
    with PeakMemory(pid) as memory, ThreadPoolExecutor(len(plans) + len(cancels)) as pool:
        records = [r for rs in pool.map(run, range(len(plans) + len(cancels))) for r in rs]
    latencies = [r["seconds"] for r in records]
    return {
        "records": records,
        "failures": [r for r in records if r["error"]],
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "peak_rss": memory.peak,
        "rss_samples": memory.samples,
        "wall": time.perf_counter() - start,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5, help="requests per user")
    parser.add_argument("--max-requests", type=int, default=1, help="requests at the largest allowed settings")
    parser.add_argument("--models-dir", default=os.environ.get("PLAYGROUND_MODELS_DIR", str(ROOT / "models")))
    parser.add_argument("--tiny-models", action="store_true", help="serve tiny random models instead")
    parser.add_argument(
        "--max-request-steps",
        type=int,
        default=None,
        help="steps of the largest-settings requests (default: the page's maximum, 1000 DDPM steps)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per request")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    parser.add_argument("--max-rss-gb", type=float, default=3.0)
    parser.add_argument("--mixed", action="store_true", help="each user sends every heavy request at once")
    parser.add_argument("--cancel-requests", type=int, default=0, help="users who cancel a large sampling job")
    args = parser.parse_args()
    models_dir = args.models_dir
    if args.tiny_models:
        from tests.support.app_server import make_tiny_models

        models_dir = str(make_tiny_models(Path(tempfile.mkdtemp(prefix="load-models-"))))
    print(f"models: {models_dir} (bundled: {sorted(available_keys(models_dir))})")
    with serve_app(models_dir, threads=args.threads) as (url, pid):
        result = run_load(
            url,
            pid,
            models_dir,
            args.users,
            args.requests,
            args.max_requests,
            args.timeout,
            args.max_request_steps,
            mixed=args.mixed,
            cancel_requests=args.cancel_requests,
        )
    total = len(result["records"])
    by_function = {}
    for record in result["records"]:
        by_function.setdefault(record["function"], []).append(record["seconds"])
    kind = "every heavy request at once" if args.mixed else f"{args.requests} requests"
    print(
        f"{args.users} users × {kind} (+ {args.cancel_requests} cancelled jobs) = {total} requests in "
        f"{result['wall']:.1f} s ({args.max_requests} at the largest settings, {args.max_request_steps or 'all'} steps)"
    )
    for function, seconds in sorted(by_function.items()):
        print(
            f"  {function:16s} {len(seconds):3d} requests, median {statistics.median(seconds):7.2f} s, max {max(seconds):7.2f} s"
        )
    for failure in result["failures"]:
        print(f"  FAILED user {failure['user']} {failure['function']}: {failure['error']}")
    peak_gb = result["peak_rss"] / 2**30
    print(f"failed: {len(result['failures'])} of {total}")
    print(f"latency p50 {result['p50']:.2f} s, p95 {result['p95']:.2f} s")
    print(f"server peak resident memory {peak_gb:.2f} GB ({result['rss_samples']} samples; limit {args.max_rss_gb} GB)")
    return 1 if result["failures"] or peak_gb >= args.max_rss_gb else 0


if __name__ == "__main__":
    sys.exit(main())
