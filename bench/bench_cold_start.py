"""Time the app's cold start alone, without a browser: spawning `python app.py` → its port accepting connections,
for the app as it was ("old", a git ref exported to a temporary folder) and the working tree ("new"), launched in
turn (old, new, old, new, ...) on the same models, so that both see the same load.

    .venv/bin/python -m bench.bench_cold_start [--baseline REF] [--models-dir models] [--launches 3]

Prints the median of each, old | new | ratio, the new app's time from spawn to the end of its warm-up (the model
code imported and the models loaded, its log line), and the load average, which inflates every figure.
``bench/bench_app.py --cold-starts N`` measures the same start inside its browser benchmark.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from bench.bench_app import export_ref
from tests.support.app_server import launch_app, stop_app

WARM_UP_LINE = "warm-up: "  # app.py logs it when the warm-up thread is done


def wait_for_line(log: Path, text: str, limit: float = 300.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def one_start(app_dir: Path, models_dir: Path, log: Path, wait_for_warm_up: bool) -> tuple[float, float | None]:
    """(seconds from spawn to serving, seconds from spawn to the warm-up's log line or None)."""
    start = time.perf_counter()
    process, _ = launch_app(models_dir, log, root=app_dir)
    serving = time.perf_counter() - start
    warm = time.perf_counter() - start if wait_for_warm_up and wait_for_line(log, WARM_UP_LINE) else None
    stop_app(process)
    return serving, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git ref of the old app")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--launches", type=int, default=3, help="launches of each app")
    args = parser.parse_args()
    times = {"old": [], "new": [], "warm": []}
    with tempfile.TemporaryDirectory() as old_dir, tempfile.TemporaryDirectory() as logs:
        apps = {"old": export_ref(args.baseline, Path(old_dir)), "new": ROOT}
        for attempt in range(args.launches):
            for name, app_dir in apps.items():
                log = Path(logs) / f"{name}-{attempt}.log"
                serving, warm = one_start(app_dir, args.models_dir.resolve(), log, wait_for_warm_up=name == "new")
                times[name].append(serving)
                if warm is not None:
                    times["warm"].append(warm)
                print(f"{name} #{attempt + 1}: serving after {serving:.2f} s", flush=True)
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    print(
        f"\ncold start, python app.py → serving (median of {args.launches}): old {old:.2f} s | new {new:.2f} s | "
        f"old/new {old / new:.2f}×"
    )
    if times["warm"]:
        print(f"new: spawn → warm-up done (models loaded), median {statistics.median(times['warm']):.2f} s")
    print(f"load average during the run (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
