"""The "Train it yourself" tab in a real browser (Debian's chromium driven by Playwright): train each lab for a
few seconds, watch the curves and samples update, stop a run, draw a target; screenshots go to
tests/screenshots/lab-*.png (look at them)."""

from __future__ import annotations

import pytest

from tests.support.browser import NEEDS_CHROMIUM, SCREENSHOTS, chromium, error_toasts, opened_page
from tests.support.lab_server import serve_lab_tab

TIMEOUT_MS = 90_000

pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def url():
    with serve_lab_tab() as address:
        yield address


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, url):
    with opened_page(browser, url, "#lab-diffusion-train", TIMEOUT_MS) as page:
        yield page


def image_source(page, selector: str) -> str | None:
    """The src of the first loaded <img> under ``selector`` (None while there is none)."""
    return page.evaluate(
        """(selector) => {
            const im = document.querySelector(selector + ' img');
            return im && im.complete && im.naturalWidth > 0 ? im.src : null;
        }""",
        selector,
    )


def wait_for_new_image(page, selector: str, old: str | None) -> str:
    page.wait_for_function(
        """([selector, old]) => {
            const im = document.querySelector(selector + ' img');
            return im && im.complete && im.naturalWidth > 0 && im.src !== old;
        }""",
        arg=[selector, old],
        timeout=TIMEOUT_MS,
    )
    return image_source(page, selector)


def wait_for_text(page, selector: str, text: str) -> None:
    page.wait_for_function(
        "([selector, text]) => (document.querySelector(selector)?.innerText || '').includes(text)",
        arg=[selector, text],
        timeout=TIMEOUT_MS,
    )


def set_slider(page, selector: str, value: int) -> None:
    number = page.locator(f"{selector} input[type=number]").first
    number.fill(str(value))
    number.press("Enter")


def wait_for_results(page) -> None:
    """The events chained after training (animation, model file, field) have all answered."""
    for selector in ("#lab-animation", "#lab-frames", "#lab-field"):
        wait_for_new_image(page, selector, None)
    page.wait_for_selector("#lab-file a", timeout=TIMEOUT_MS)


def screenshot(page, name: str) -> None:
    page.wait_for_timeout(600)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_diffusion_lab_streams_curves_and_samples_then_animates(page):
    wait_for_new_image(page, "#lab-samples", None)  # the target preview, drawn on load
    set_slider(page, "#lab-diffusion-seconds", 6)
    curves, samples = None, image_source(page, "#lab-samples")
    page.click("#lab-diffusion-train")
    curves = wait_for_new_image(page, "#lab-loss", curves)
    samples = wait_for_new_image(page, "#lab-samples", samples)  # the untrained model's samples
    wait_for_new_image(page, "#lab-loss", curves)  # the curve is redrawn as training goes on
    wait_for_new_image(page, "#lab-samples", samples)  # and fresh samples arrive
    screenshot(page, "lab-diffusion-training")
    wait_for_text(page, "#lab-diffusion-status", "time limit reached")
    wait_for_results(page)
    assert image_source(page, "#lab-animation").split("?")[0].endswith(".gif")
    assert error_toasts(page) == []
    screenshot(page, "lab-diffusion-trained")


def test_stop_ends_a_diffusion_run_and_keeps_the_model(page):
    page.click("#lab-diffusion-train")
    wait_for_text(page, "#lab-diffusion-status", "training…")
    page.click("#lab-diffusion-stop")
    wait_for_text(page, "#lab-diffusion-status", "Stopped")
    wait_for_results(page)  # the model trained so far is animated and offered
    status = page.inner_text("#lab-diffusion-status")
    page.wait_for_timeout(2000)
    assert page.inner_text("#lab-diffusion-status") == status  # nothing trains on behind the page's back
    assert error_toasts(page) == []
    screenshot(page, "lab-diffusion-stopped")


def test_a_drawn_target_is_previewed_and_trained_on(page):
    page.get_by_label("your drawing").check()
    canvas = page.locator("#lab-drawing canvas").first
    canvas.wait_for(state="visible", timeout=TIMEOUT_MS)
    brush = page.locator("#lab-drawing button[aria-label='Brush']")
    if brush.count() and "highlight" not in (brush.get_attribute("class") or ""):
        brush.click()
    box = canvas.bounding_box()
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"] * 0.3
    preview = image_source(page, "#lab-samples")
    page.mouse.move(cx - r, cy - r)
    page.mouse.down()
    for x, y in ((cx + r, cy - r), (cx - r, cy + r), (cx + r, cy + r)):  # a "Z"
        page.mouse.move(x, y, steps=12)
    page.mouse.up()
    wait_for_new_image(page, "#lab-samples", preview)
    set_slider(page, "#lab-diffusion-seconds", 3)
    page.click("#lab-diffusion-train")
    wait_for_text(page, "#lab-diffusion-status", "time limit reached")
    wait_for_results(page)
    assert error_toasts(page) == []
    screenshot(page, "lab-diffusion-drawn")


def test_vae_lab_streams_the_elbo_latent_map_and_decoded_grid(page):
    page.get_by_role("tab", name="VAE with a 2-D latent (MNIST)").click()
    page.wait_for_selector("#lab-vae-train", state="visible", timeout=TIMEOUT_MS)
    set_slider(page, "#lab-vae-seconds", 10)
    page.click("#lab-vae-train")
    latent = wait_for_new_image(page, "#lab-latent", None)
    wait_for_new_image(page, "#lab-grid", None)
    wait_for_text(page, "#lab-vae-status", "held-out ELBO")
    screenshot(page, "lab-vae-training")
    wait_for_text(page, "#lab-vae-status", "time limit reached")
    wait_for_new_image(page, "#lab-latent", latent)  # redrawn as the map forms
    page.wait_for_selector("#lab-vae-file a", timeout=TIMEOUT_MS)
    assert error_toasts(page) == []
    screenshot(page, "lab-vae-trained")
