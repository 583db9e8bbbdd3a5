"""Time the playground as a visitor meets it in a real browser (Debian's chromium via Playwright): the app as it was
before this branch ("old", a git ref exported to a temporary folder) and the working tree ("new"), one after the
other in the same run, on the same models, with the same clicks.

    .venv/bin/python -m bench.bench_app [--baseline REF] [--models-dir models] [--old-models shared|baseline]
        [--repeats 3] [--cold-starts 3] [--screenshots DIR]

Figures, each printed old | new | ratio:
- cold start: spawning `python app.py` → its port accepting connections (goal ≤ 5 s);
- open → first samples: the new page opens on a first batch; the old one waits for a click on "Sample";
- click "Sample" → 16 digits rendered, latent and pixel DDPM, each app's default sampler, warm;
- reactive updates, input → new picture loaded (goal ≤ 0.3 s): the t slider moved (z_t), the digit picker on the
  Schedules tab (old: followed by a click on "Show z_t", which it needs) and on the VAE tab (reconstruction).
Clicks and moves are timed in the page's clock, from the press (pointerdown) to the animation frame at which the new
pictures are loaded; the old app's extra click is inside that span. Cold start and open are timed from Python.
``--baseline`` defaults to where this branch left main (git merge-base HEAD main). Before each app's timings the
server is left to finish its on-open work (CPU idle), so that the clicks are timed alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from tests.support.app_server import launch_app, stop_app

CHROMIUM = "/usr/bin/chromium"
NUM_IMAGES = 16
TIMEOUT_MS = 300_000
DIGIT_LABEL = "Test digit #"
TABS = ("Sample", "Schedules", "VAE", "Walks", "Inpaint", "Math")
VIEWPORTS = {"desktop": {"width": 1400, "height": 1000}, "phone": {"width": 390, "height": 844}}


def export_ref(ref: str, folder: Path) -> Path:
    """The files of git ``ref`` (read-only export, no checkout) under ``folder``."""
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


IDLE_CORE_FRACTION = 0.2  # above an idle Gradio server's own polling (docs/speed.md#in-the-browser)


def wait_until_idle(pid: int, quiet: float = 2.0, limit: float = 600.0) -> None:
    """Until the server has used under 20% of a core for ``quiet`` seconds (its on-open work is done)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(quiet)
        if cpu_seconds(pid) - before < IDLE_CORE_FRACTION * quiet:
            return


def image_sources(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{selector} img", "els => els.map(e => e.src)")


def wait_for_new_images(page, selector: str, old: list[str], count: int = 1) -> float:
    """Until ``selector`` shows ``count`` loaded images that are not among ``old`` (a picture that did not change
    keeps its address: Gradio names files by their content), and every image is loaded. Returns the seconds, in the
    page's own clock, from the last press armed by :func:`arm_press_clock` to the animation frame at which that held
    (a microsecond, not 0, when none was armed: 0 would read as "not yet")."""
    handle = page.wait_for_function(
        """([selector, old, n]) => {
            const imgs = [...document.querySelectorAll(selector + ' img')];
            const shown = imgs.filter(im => !old.includes(im.src)).length >= n
                && imgs.every(im => im.complete && im.naturalWidth > 0);
            return shown && Math.max(0.000001, (performance.now() - (window.__pressedAt ?? performance.now())) / 1000);
        }""",
        arg=[selector, old, count],
        timeout=TIMEOUT_MS,
        polling="raf",
    )
    return handle.json_value()


def arm_press_clock(page) -> None:
    """Start the page's clock at the visitor's next press (pointerdown anywhere): the timings below run from the
    press, as the visitor feels them, not from when Playwright was asked to click (its actionability checks take
    time of their own: docs/speed.md#in-the-browser)."""
    page.evaluate(
        """() => {
            window.__pressedAt = undefined;
            document.addEventListener('pointerdown', () => { window.__pressedAt = performance.now(); },
                                      {once: true, capture: true});
        }"""
    )


def open_tab(page, titles: tuple[str, ...]) -> None:
    """Click the first tab whose title is one of ``titles`` (the old page named some tabs differently)."""
    for title in titles:
        tab = page.get_by_role("tab", name=title, exact=True)
        if tab.count():
            tab.first.click()
            return
    raise LookupError(f"no tab named any of {titles}")


def slider_range(page, label: str):
    """The visible range input of the slider labelled ``label``."""
    return page.locator(".block:visible", has_text=label).locator("input[type=range]:visible").first


def click_slider(page, label: str, fraction: float) -> None:
    """Click the slider ``label`` at ``fraction`` of its width: input, change and release events, as a visitor's tap."""
    box = slider_range(page, label).bounding_box()
    page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)


def timed_update(page, label: str, fraction: float, selector: str, changed: int, button: str | None = None) -> float:
    """Seconds from moving slider ``label`` (then clicking ``button`` where the page needs it) until ``changed``
    new pictures are shown."""
    old = image_sources(page, selector)
    arm_press_clock(page)
    click_slider(page, label, fraction)
    if button:
        page.click(button)
    return wait_for_new_images(page, selector, old, changed)


def pick_model(page, model: str) -> None:
    page.get_by_label("Model").first.click()
    page.get_by_role("option").filter(has_text={"pixel": "Pixel", "latent": "Latent DDPM"}[model]).first.click()


def click_to_images(page, seed: int) -> float:
    """Set the seed, click Sample, and wait until the gallery shows 16 new, fully decoded images."""
    seed_box = page.get_by_label("Seed", exact=True).first
    seed_box.fill(str(seed))
    seed_box.press("Tab")
    old = image_sources(page, "#sample-gallery")
    arm_press_clock(page)
    page.click("#sample-button")
    return wait_for_new_images(page, "#sample-gallery", old, NUM_IMAGES)


def measure(
    app_dir: Path,
    models_dir: Path,
    repeats: int,
    cold_starts: int,
    screenshots: Path | None,
    clicks_only: bool = False,
) -> dict[str, float]:
    """Every figure for the app in ``app_dir`` (its own app.py and code), on ``models_dir`` (``clicks_only``: up to
    the Sample tab's clicks)."""
    from playwright.sync_api import sync_playwright

    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        starts = []
        for attempt in range(cold_starts):
            start = time.perf_counter()
            process, url = launch_app(models_dir, Path(tmp) / "app.log", startup_timeout=300, root=app_dir)
            starts.append(time.perf_counter() - start)
            if attempt < cold_starts - 1:
                stop_app(process)
        figures[f"cold start: python app.py → serving (median of {cold_starts})"] = statistics.median(starts)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport=VIEWPORTS["desktop"])
                start = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("#sample-button", timeout=TIMEOUT_MS)
                opens_on_samples = page.get_by_role("tab", name="Walks", exact=True).count() > 0
                if not opens_on_samples:
                    page.click("#sample-button")  # the old page shows nothing until asked
                wait_for_new_images(page, "#sample-gallery", [], NUM_IMAGES)
                figures["open → first samples visible (old: + a click)"] = time.perf_counter() - start
                wait_until_idle(process.pid)
                for model, runs in (("latent", repeats), ("pixel", max(1, repeats // 2))):
                    pick_model(page, model)
                    click_to_images(page, seed=100)  # loads the model once
                    times = []
                    for i in range(runs):  # each click once the last run is done (its trajectory comes after)
                        wait_until_idle(process.pid, quiet=1.0)
                        times.append(click_to_images(page, seed=i + 1))
                    figures[f"click → {NUM_IMAGES} {model} digits rendered (median of {runs})"] = statistics.median(
                        times
                    )
                if clicks_only:
                    browser.close()
                    return figures
                open_tab(page, ("Schedules", "Noise schedules & forward process"))
                button = None if opens_on_samples else "#forward-button"
                if button:  # the old page's first z_t, before its moves are timed
                    page.click(button)
                wait_for_new_images(page, "#forward-gallery", [], 5)
                figures["t slider → z_t pictures (4 of them)"] = statistics.median(
                    timed_update(page, "t (≤ T)", f, "#forward-gallery", 4) for f in (0.3, 0.6, 0.9)[:repeats]
                )
                figures["digit picker → z_t pictures (old: + a click)"] = statistics.median(
                    timed_update(page, DIGIT_LABEL, f, "#forward-gallery", 5, button) for f in (0.2, 0.5, 0.8)[:repeats]
                )
                open_tab(page, ("VAE",))
                if not opens_on_samples:
                    page.click("#vae-reconstruct-button")
                wait_for_new_images(page, "#vae-recon", [], 1)
                figures["digit picker → VAE reconstruction"] = statistics.median(
                    timed_update(page, DIGIT_LABEL, f, "#vae-recon", 1) for f in (0.25, 0.55, 0.85)[:repeats]
                )
                if screenshots is not None:
                    save_screenshots(browser, url, screenshots)
                browser.close()
        finally:
            stop_app(process)
    return figures


def save_screenshots(browser, url: str, folder: Path) -> None:
    """Every tab at the desktop and phone viewports, once the page has shown it (scrolled through, so that lazily
    loaded pictures load), as bench-<viewport>-<tab>.png."""
    folder.mkdir(parents=True, exist_ok=True)
    for viewport, size in VIEWPORTS.items():
        page = browser.new_page(viewport=size)
        page.goto(url)
        page.wait_for_selector("#sample-gallery img", timeout=TIMEOUT_MS)
        for tab in TABS:
            open_tab(page, (tab,))
            page.wait_for_timeout(3000)
            for y in range(0, page.evaluate("document.body.scrollHeight"), 400):
                page.evaluate(f"window.scrollTo(0, {y})")
                page.wait_for_timeout(100)
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(500)
            page.screenshot(path=str(folder / f"bench-{viewport}-{tab.lower()}.png"), full_page=True)
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="git ref of the old app (default: merge-base with main)")
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-starts", type=int, default=3, help="launches of each app, for the cold start's median")
    parser.add_argument("--screenshots", type=Path, help="save the new page's tabs (desktop and phone) here")
    parser.add_argument("--clicks-only", action="store_true", help="stop after the Sample tab's clicks")
    parser.add_argument(
        "--old-models",
        choices=("shared", "baseline"),
        default="shared",
        help="the old app's models: shared, --models-dir as the new app (the code's effect alone), or baseline, "
        "the models/ of the baseline commit (code and models as they were)",
    )
    args = parser.parse_args()
    models_dir = Path(args.models_dir) if Path(args.models_dir).is_absolute() else ROOT / args.models_dir
    baseline = (
        args.baseline
        or subprocess.run(
            ["git", "merge-base", "HEAD", "main"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    with tempfile.TemporaryDirectory(prefix="bench-app-old-") as old_dir:
        old_app = export_ref(baseline, Path(old_dir))
        old_models = old_app / "models" if args.old_models == "baseline" else models_dir
        old = measure(old_app, old_models, args.repeats, args.cold_starts, None, args.clicks_only)
    new = measure(ROOT, models_dir, args.repeats, args.cold_starts, args.screenshots, args.clicks_only)
    print(
        f"old = {baseline[:10]} on {'its own models' if args.old_models == 'baseline' else 'the same models'}, ", end=""
    )
    print(f"new = the working tree; models {models_dir}; seconds")
    print(f"{'':58s} {'old':>8s} {'new':>8s} {'old/new':>8s}")
    for name in new:
        ratio = old[name] / new[name] if new[name] > 0 else float("nan")
        print(f"{name:58s} {old[name]:8.2f} {new[name]:8.2f} {ratio:7.1f}×")


if __name__ == "__main__":
    main()
