"""The playground in a real browser: Debian's chromium driven by Playwright opens each tab, triggers its main
action, waits for the result and saves a screenshot to tests/screenshots/ (look at them).

Runs on tiny random models (tests/support/app_server.py); skipped when /usr/bin/chromium is missing
(`apt-get install -y chromium`).
"""

from __future__ import annotations

import contextlib

import pytest

from pipelines.defaults import DEFAULT_AUTOGUIDANCE_SCALE, DEFAULT_SAMPLER
from pipelines.samplers import SAMPLERS
from tests.support.app_server import launch_app, make_tiny_models, stop_app
from tests.support.browser import NEEDS_CHROMIUM, SCREENSHOTS, chromium, error_toasts, opened_page

TIMEOUT_MS = 60_000

pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("playground-browser")
    process, url = launch_app(make_tiny_models(folder / "models"), folder / "app.log")
    try:
        yield url
    finally:
        stop_app(process)


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, app_url):
    with opened_page(browser, app_url, "#sample-button", TIMEOUT_MS) as page:
        yield page


def wait_for_images(page, selector: str, count: int, timeout_ms: float = TIMEOUT_MS) -> None:
    """Wait until ``selector`` holds at least ``count`` fully loaded <img> elements (scrolled to: galleries load
    their pictures lazily, when seen)."""
    page.locator(selector).first.scroll_into_view_if_needed(timeout=TIMEOUT_MS)
    page.wait_for_function(
        """([selector, count]) => {
            const images = document.querySelectorAll(selector + ' img');
            return images.length >= count && [...images].every(im => im.complete && im.naturalWidth > 0);
        }""",
        arg=[selector, count],
        timeout=timeout_ms,
    )


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def screenshot(page, name: str) -> None:
    """Full-page PNG once the outputs' loading overlays are gone (an error keeps its own) and have faded out."""
    with contextlib.suppress(sync_api.TimeoutError):  # still take the picture: it shows what hung
        page.wait_for_function(
            "() => [...document.querySelectorAll('.wrap.default')].every(e => e.classList.contains('hide') || e.querySelector('.error'))",
            timeout=10_000,
        )
    page.wait_for_timeout(600)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def click_sample_and_wait(page, seed: int) -> None:
    """Sample with another seed and wait for its 16 new pictures (the gallery already holds the first batch)."""
    wait_for_images(page, "#sample-gallery", 16)
    before = sources(page, "#sample-gallery")
    seed_box = page.get_by_label("Seed", exact=True).first
    seed_box.fill(str(seed))
    seed_box.press("Tab")
    page.click("#sample-button")
    wait_for_changed_images(page, "#sample-gallery", before, 16)


def test_a_click_while_a_sampling_run_is_pending_runs_next_and_is_not_lost(page):
    wait_for_images(page, "#sample-gallery", 16)
    seed_box = page.get_by_label("Seed", exact=True).first
    for seed in (8, 9):  # the second click comes while the first run is under way
        seed_box.fill(str(seed))
        seed_box.press("Tab")
        page.click("#sample-button")
    page.wait_for_function(
        "() => document.querySelector('#sample-status').innerText.includes('seed 9')", timeout=TIMEOUT_MS
    )
    assert error_toasts(page) == []


def test_the_eta_slider_shows_only_for_samplers_that_take_eta(page):
    eta = page.get_by_text("DDIM η", exact=False)
    assert eta.count() == 0 or not eta.first.is_visible()  # the default sampler draws its own noise
    page.get_by_role("radio", name="DDIM", exact=True).first.check()
    eta.first.wait_for(state="visible", timeout=TIMEOUT_MS)
    page.get_by_role("radio", name="UniPC", exact=True).first.check()
    eta.first.wait_for(state="hidden", timeout=TIMEOUT_MS)


def test_sample_tab_renders_the_gallery_trajectory_and_gif(page):
    click_sample_and_wait(page, seed=7)
    wait_for_images(page, "#sample-trajectory", 1)
    page.wait_for_selector("#sample-gif a", timeout=TIMEOUT_MS)
    assert "16 images" in page.inner_text("#sample-status") and "seed 7" in page.inner_text("#sample-status")
    assert error_toasts(page) == []
    screenshot(page, "sample")


def test_the_autoguidance_slider_shows_for_a_model_with_a_guide_and_samples_with_it(page):
    slider = page.locator("#sample-autoguidance")
    assert not slider.is_visible()  # the default (latent) test model ships no guide
    page.get_by_label("Model").click()
    page.get_by_role("option").filter(has_text="Pixel").first.click()
    slider.wait_for(state="visible", timeout=TIMEOUT_MS)
    click_sample_and_wait(page, seed=3)
    assert f"autoguidance w = {DEFAULT_AUTOGUIDANCE_SCALE:g}" in page.inner_text("#sample-status")
    screenshot(page, "sample-autoguidance")


def test_bad_input_shows_an_error_toast_and_the_page_keeps_working(page):
    steps = page.locator("#sample-steps input[type=number]")
    steps.fill("500")  # allowed for DDPM, over the default sampler's cap
    steps.press("Enter")
    page.click("#sample-button")
    page.wait_for_selector('[data-testid="toast-body"].error', timeout=TIMEOUT_MS)
    cap = SAMPLERS[DEFAULT_SAMPLER].max_steps
    assert any(f"must lie in [1, {cap}]" in text for text in error_toasts(page))
    screenshot(page, "sample-error")
    toasts = len(error_toasts(page))
    page.get_by_role("radio", name="DDPM", exact=True).first.check()  # its default steps (100) are valid
    page.wait_for_function(
        "() => document.querySelector('#sample-steps input[type=number]').value === '100'", timeout=TIMEOUT_MS
    )
    click_sample_and_wait(page, seed=4)  # the page still samples
    assert len(error_toasts(page)) == toasts  # no new error on the way


def test_schedules_tab_plots_and_shows_chain_next_to_closed_form(page):
    open_tab(page, "Schedules")
    wait_for_images(page, "#schedule-plot", 3)  # β_t, ᾱ_t and log SNR, without a click
    wait_for_images(page, "#forward-gallery", 5)  # the digit + chain and closed form for 2 schedules
    assert "cosine" in page.inner_text("#forward-stats")
    assert error_toasts(page) == []
    screenshot(page, "schedules")


def slider_at(page, elem_id_or_label: str, fraction: float) -> None:
    """Tap a slider (by elem_id "#…" or by the text of its label) at ``fraction`` of its width, as a visitor does."""
    block = (
        page.locator(elem_id_or_label)
        if elem_id_or_label.startswith("#")
        else page.locator(".block:visible", has_text=elem_id_or_label)
    )
    box = block.locator("input[type=range]:visible").first.bounding_box()
    page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)


def sources(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{selector} img", "els => els.map(e => e.src)")


def wait_for_changed_images(page, selector: str, old: list[str], count: int) -> None:
    """Until ``count`` of the pictures in ``selector`` are new (an unchanged picture keeps its address)."""
    page.wait_for_function(
        """([selector, old, n]) => [...document.querySelectorAll(selector + ' img')]
            .filter(im => !old.includes(im.src) && im.complete && im.naturalWidth > 0).length >= n""",
        arg=[selector, old, count],
        timeout=TIMEOUT_MS,
    )


def test_moving_the_t_slider_or_picking_a_digit_updates_z_t_without_a_click(page):
    open_tab(page, "Schedules")
    wait_for_images(page, "#forward-gallery", 5)
    before = sources(page, "#forward-gallery")
    slider_at(page, "#forward-t", 0.8)
    wait_for_changed_images(page, "#forward-gallery", before, 4)  # z_t changed; the digit x did not
    t = int(page.locator("#forward-t input[type=number]").input_value())
    assert t > 600 and f"t = {t} of T = 1000" in page.inner_text("#forward-note")
    before = sources(page, "#forward-gallery")
    slider_at(page, "Test digit #", 0.5)
    wait_for_changed_images(page, "#forward-gallery", before, 5)  # another digit: every picture changes
    assert error_toasts(page) == []


def test_samples_arrive_at_their_own_28_px_and_show_enlarged_with_square_pixels(page):
    wait_for_images(page, "#sample-gallery", 16)
    shown = page.eval_on_selector_all(
        "#sample-gallery img",
        "els => els.map(e => [e.naturalWidth, e.getBoundingClientRect().width, getComputedStyle(e).imageRendering])",
    )
    assert len(shown) == 16
    for natural, width, rendering in shown:
        assert natural == 28 and width >= 3 * natural and rendering == "pixelated"


def test_every_tab_shows_a_result_when_the_page_opens(page):
    wait_for_images(page, "#sample-gallery", 16)  # the first batch, sampled with the starting values
    assert "16 images" in page.inner_text("#sample-status")
    expected = {
        "Schedules": [("#schedule-plot", 3), ("#forward-gallery", 5)],
        "VAE": [("#vae-input", 1), ("#vae-recon", 1)],
        "Walks": [("#walk-seeds-frames", 8), ("#walk-invert-frames", 4), ("#walk-digits-ddim", 8)],
        "Inpaint": [("#inpaint-masked", 1), ("#inpaint-gallery", 4)],
    }
    for tab, outputs in expected.items():
        open_tab(page, tab)
        for selector, count in outputs:
            wait_for_images(page, selector, count)
    open_tab(page, "VAE")
    for sub_tab, selector, count in (
        ("Prior samples", "#vae-prior-gallery", 16),
        ("Interpolation", "#vae-slerp", 1),
        ("Traversal", "#vae-traversal", 1),
        ("Latent map", "#vae-decoded", 1),
    ):
        open_tab(page, sub_tab)
        wait_for_images(page, selector, count)
    assert "nats" in page.inner_text("#vae-elbo")
    assert error_toasts(page) == []


def test_vae_tab_follows_its_inputs_and_decodes_a_map_click(page):
    open_tab(page, "VAE")
    wait_for_images(page, "#vae-recon", 1)
    before = sources(page, "#vae-recon")
    slider_at(page, "Test digit #", 0.3)  # another digit: reconstructed at once
    wait_for_changed_images(page, "#vae-recon", before, 1)
    assert "test digit #" in page.inner_text("#vae-elbo")
    screenshot(page, "vae-reconstruction")
    open_tab(page, "Prior samples")
    wait_for_images(page, "#vae-prior-gallery", 16)
    screenshot(page, "vae-prior")
    open_tab(page, "Interpolation")
    wait_for_images(page, "#vae-slerp", 1)
    before = sources(page, "#vae-slerp")
    slider_at(page, "To test digit #", 0.7)
    wait_for_changed_images(page, "#vae-slerp", before, 1)
    page.wait_for_selector("#vae-walk-gif a", timeout=TIMEOUT_MS)
    screenshot(page, "vae-interpolation")
    open_tab(page, "Latent map")
    wait_for_images(page, "#vae-map", 1)
    wait_for_images(page, "#vae-decoded", 1)
    before = sources(page, "#vae-decoded")
    page.locator("#vae-map img").first.click(position={"x": 150, "y": 120})
    wait_for_changed_images(page, "#vae-decoded", before, 1)
    assert error_toasts(page) == []
    screenshot(page, "vae-latent-map")


def test_walks_tab_morphs_inverts_and_walks_and_its_buttons_recompute(page):
    open_tab(page, "Walks")
    wait_for_images(page, "#walk-seeds-frames", 8)
    wait_for_images(page, "#walk-invert-frames", 4)
    wait_for_images(page, "#walk-digits-vae", 8)
    assert "mean |x̂ − x|" in page.inner_text("#walk-invert-summary")
    before = sources(page, "#walk-seeds-frames")
    seed_b = page.get_by_label("Seed B", exact=True)
    seed_b.fill("5")
    seed_b.press("Tab")
    page.click("#walk-seeds-button")
    wait_for_changed_images(page, "#walk-seeds-frames", before, 1)
    assert "from seed 5" in page.inner_text("#walk-seeds-summary")
    page.wait_for_selector("#walk-seeds-gif a", timeout=TIMEOUT_MS)
    assert error_toasts(page) == []
    screenshot(page, "walks")


def test_steps_quality_grid_scores_each_sampler_and_step_count(page):
    page.get_by_text("What steps buy").click()
    page.get_by_label("Images per cell").first.fill("2")
    page.get_by_label("Images per cell").first.press("Tab")
    page.click("#steps-button")
    # DDIM and DDPM × 5, 10, 25, 50 steps, each cell scored: about a minute on a loaded 2-core machine
    wait_for_images(page, "#steps-gallery", 8, timeout_ms=3 * TIMEOUT_MS)
    assert "% confident" in page.inner_text("#steps-gallery")
    assert "DDPM" in page.inner_text("#steps-table")
    assert error_toasts(page) == []
    screenshot(page, "steps-quality")


def test_inpaint_tab_fills_a_masked_region(page):
    open_tab(page, "Inpaint")
    wait_for_images(page, "#inpaint-gallery", 4)  # the starting values' result, shown on open
    before = sources(page, "#inpaint-gallery")
    page.get_by_role("radio", name="left half", exact=True).check()
    page.click("#inpaint-button")
    wait_for_changed_images(page, "#inpaint-gallery", before, 4)
    assert error_toasts(page) == []
    screenshot(page, "inpaint")


def test_math_tab_renders_latex(page):
    open_tab(page, "Math")
    page.wait_for_selector("#math-text .katex", timeout=TIMEOUT_MS)
    assert page.locator("#math-text .katex").count() >= 8
    assert "closed_form_sample" in page.inner_text("#math-text")
    screenshot(page, "math")


def test_on_a_phone_every_tab_is_one_tap_away_and_nothing_overflows(browser, app_url):
    """At 390×844 the tab bars wrap instead of hiding tabs behind "⋯", the schedule panels stack and no picture is
    wider than the screen; each tab is saved as phone-<tab>.png."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        page.goto(app_url)
        wait_for_images(page, "#sample-gallery", 16)
        assert page.get_by_role("button", name="More tabs").filter(visible=True).count() == 0
        for tab in ("Sample", "Schedules", "VAE", "Walks", "Inpaint", "Math"):
            page.get_by_role("tab", name=tab, exact=True).click()  # visible: one tap
            page.wait_for_timeout(300)
            if tab == "Schedules":
                wait_for_images(page, "#schedule-plot", 3)
                tops = [page.locator(f"#schedule-{key}").bounding_box()["y"] for key in ("beta", "alpha_bar")]
                assert tops[1] > tops[0] + 100  # stacked, not side by side
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, tab  # no sideways scrolling
            screenshot(page, f"phone-{tab.lower()}")
        page.get_by_role("tab", name="VAE", exact=True).click()
        for sub_tab in ("ELBO", "Prior samples", "Interpolation", "Traversal", "Latent map"):
            assert page.get_by_role("tab", name=sub_tab, exact=True).is_visible(), sub_tab
        assert error_toasts(page) == []
    finally:
        page.close()


def draw_stroke(page, selector: str, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through ``points`` (fractions of the canvas box, from its centre) on an editor's canvas."""
    box = page.locator(f"{selector} canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    size = min(box["width"], box["height"])
    page.mouse.move(cx + points[0][0] * size, cy + points[0][1] * size)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(cx + x * size, cy + y * size, steps=8)
    page.mouse.up()


def test_vae_reconstructs_a_digit_drawn_on_the_sketchpad(page):
    open_tab(page, "VAE")
    page.get_by_text("Draw or upload your own digit instead").first.click()
    sketchpad = "#vae-sketchpad"
    brush = page.locator(f"{sketchpad} button[aria-label='Brush']")
    if "highlight" not in (brush.get_attribute("class") or ""):
        brush.click()
    draw_stroke(page, sketchpad, [(0.0, -0.3), (0.02, 0.0), (0.0, 0.3)])  # a "1": reconstructed as it is drawn
    page.wait_for_function(
        "() => document.querySelector('#vae-elbo').innerText.includes('your drawing')", timeout=TIMEOUT_MS
    )
    wait_for_images(page, "#vae-recon", 1)
    assert error_toasts(page) == []
    screenshot(page, "vae-drawn")


def test_choosing_a_beta_vae_recomputes_the_elbo_with_its_weighted_objective(page):
    open_tab(page, "VAE")
    page.locator("#vae-beta").get_by_role("radio", name="β = 4", exact=True).check()
    page.wait_for_function("() => document.querySelector('#vae-elbo').innerText.includes('β = 4')", timeout=TIMEOUT_MS)
    wait_for_images(page, "#vae-recon", 1)
    assert error_toasts(page) == []
    screenshot(page, "vae-beta4")


def test_inpaint_fills_the_pixels_painted_over_the_digit(page):
    open_tab(page, "Inpaint")
    page.get_by_role("radio", name="drawn", exact=True).check()
    # The editor receives the test digit from a page-load event, which resets its layers: on a loaded machine a
    # stroke drawn before that lands is lost (the app then answers "paint over the digit…"), so draw again once.
    for attempt in range(2):
        page.wait_for_timeout(1500)
        draw_stroke(page, "#inpaint-editor", [(-0.3, 0.0), (0.3, 0.0)])  # a band across the middle
        toasts_before, before = len(error_toasts(page)), sources(page, "#inpaint-gallery")
        page.click("#inpaint-button")
        page.wait_for_function(
            """([n, old]) => [...document.querySelectorAll('#inpaint-gallery img')].filter(
                        im => !old.includes(im.src) && im.complete && im.naturalWidth > 0).length >= 4
                     || document.querySelectorAll('[data-testid="toast-body"].error').length > n""",
            arg=[toasts_before, before],
            timeout=TIMEOUT_MS,
        )
        new_toasts = error_toasts(page)[toasts_before:]
        if not new_toasts:
            break
        assert attempt == 0 and "paint over the digit" in new_toasts[0], new_toasts
    wait_for_images(page, "#inpaint-gallery", 4)
    screenshot(page, "inpaint-drawn")


def test_the_bench_times_a_sample_click_from_the_press_to_the_loaded_gallery(page):
    from bench.bench_app import click_to_images, image_sources

    wait_for_images(page, "#sample-gallery", 16)
    before = image_sources(page, "#sample-gallery")
    seconds = click_to_images(page, seed=321)
    after = image_sources(page, "#sample-gallery")
    assert len(set(after) - set(before)) >= 16  # the span ended on the new batch, fully loaded
    assert 0.001 < seconds < TIMEOUT_MS / 1000  # the press was seen (unarmed gives 1e-6) and ended
