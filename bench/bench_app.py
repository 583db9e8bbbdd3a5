"""Time the playground as a user meets it: cold start of `python app.py`, and a click on "Sample" until all
16 images are rendered in a real browser (Debian's chromium via Playwright), with the fastest sampler.

    .venv/bin/python bench/bench_app.py [--models-dir models] [--model auto] [--steps DEFAULT_DDIM_STEPS] [--repeats 5] [--screenshot out.png]

``--model auto`` picks the latent DDPM when it is bundled (much faster than the pixel one), else the pixel DDPM;
the sampler is the app's default (DDIM, η = 1, `pipelines/defaults.py`). Goals: click → 16 images ≤ 1.5 s; cold start → serving ≤ 15 s.
Prints one line per figure, the headline ones prefixed with "cold start" and "click to 16 images".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.defaults import DEFAULT_DDIM_STEPS
from tests.app_server import launch_app, stop_app

CHROMIUM = "/usr/bin/chromium"
NUM_IMAGES = 16


def cold_start(models_dir: str, log_dir: Path) -> tuple[float, object, str]:
    """Seconds from spawning `python app.py` to its port accepting connections; returns the running app too."""
    start = time.perf_counter()
    process, url = launch_app(models_dir, log_dir / "app.log", startup_timeout=180)
    return time.perf_counter() - start, process, url


def pick(page, label: str) -> None:
    page.get_by_label(label, exact=True).check()


def click_to_images(page, seed: int) -> float:
    """Set the seed, click Sample, and wait until the gallery shows 16 new, fully decoded images."""
    seed_box = page.get_by_label("Seed", exact=True).first
    seed_box.fill(str(seed))
    seed_box.press("Tab")
    old = page.eval_on_selector_all("#sample-gallery img", "els => els.map(e => e.src)")
    start = time.perf_counter()
    page.click("#sample-button")
    page.wait_for_function(
        """([old, n]) => {
            const imgs = [...document.querySelectorAll('#sample-gallery img')];
            return imgs.length >= n && imgs.every(im => !old.includes(im.src) && im.complete && im.naturalWidth > 0);
        }""",
        arg=[old, NUM_IMAGES],
        timeout=120_000,
        polling=10,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--model", default="auto", choices=["auto", "pixel", "latent", "conditional"])
    parser.add_argument("--steps", type=int, default=DEFAULT_DDIM_STEPS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--screenshot", help="save the page after the last click (real samples) to this PNG")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    root = Path(__file__).resolve().parents[1]
    models_dir = Path(args.models_dir) if Path(args.models_dir).is_absolute() else root / args.models_dir
    model = args.model
    if model == "auto":
        model = "latent" if (models_dir / "ddpm-latent" / "model_index.json").is_file() else "pixel"
    with tempfile.TemporaryDirectory() as tmp:
        seconds, process, url = cold_start(str(models_dir), Path(tmp))
        print(f"cold start (python app.py → serving): {seconds:.2f} s  (goal ≤ 15 s)")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                start = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("#sample-button")
                print(f"page load to interactive: {time.perf_counter() - start:.2f} s")
                page.locator("#sample-steps input[type=number]").fill(str(args.steps))
                page.locator("#sample-steps input[type=number]").press("Tab")
                pick(page, "DDIM")
                page.get_by_label("Model").first.click()
                page.get_by_role("option").filter(
                    has_text={"pixel": "Pixel", "latent": "Latent DDPM", "conditional": "Class"}[model]
                ).first.click()
                first = click_to_images(page, seed=0)  # loads the model once
                print(f"first click (includes loading the {model} model): {first:.2f} s")
                times = [click_to_images(page, seed=i + 1) for i in range(args.repeats)]
                status = page.inner_text("#sample-status")
                print(f"server-side: {status}")
                print(
                    f"click to {NUM_IMAGES} images rendered ({model} DDPM, DDIM {args.steps} steps, warm, "
                    f"{args.repeats} runs): median {statistics.median(times):.2f} s, min {min(times):.2f} s, "
                    f"max {max(times):.2f} s  (goal ≤ 1.5 s)"
                )
                if args.screenshot:
                    page.screenshot(path=args.screenshot, full_page=True)
                    print(f"screenshot: {args.screenshot}")
                browser.close()
        finally:
            stop_app(process)


if __name__ == "__main__":
    main()
