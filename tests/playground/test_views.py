"""The page's helpers, in-process: the forward chain kept per schedule is the chain of any digit, a map click lands on
its point, and on-open events leave the page alone when their model is missing."""

from __future__ import annotations

import gradio as gr
import pytest
import torch

from pipelines import schedules
from playground.plots import coords_to_pixel, pixel_to_coords
from playground.tabs.schedules import NUM_DRAWS, chain_parts, schedule_betas
from playground.widgets import when_bundled


@pytest.mark.parametrize("name", ["linear", "squaredcos_cap_v2"])
def test_the_kept_chain_is_the_step_by_step_chain_of_any_digit(name):
    """z_t = (∏ √(1 − β_s))·x + (the chain from 0)_t: the same draws give the chain that starts from the digit."""
    num_steps, t, seed = 120, 77, 3
    run = chain_parts(name, num_steps, 1e-4, 0.02, seed)
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    betas = schedule_betas(name, num_steps, 1e-4, 0.02)
    chain = schedules.forward_chain(
        x.expand(NUM_DRAWS, -1, -1, -1), betas[:t], generator=torch.Generator().manual_seed(seed)
    )[-1]
    torch.testing.assert_close(run.signal[t - 1] * x[0] + run.first_noise[t - 1], chain[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(run.noise_std[t - 1], chain.std(0).mean(), atol=1e-5, rtol=1e-5)
    alpha_bar = schedules.alphas_cumprod(betas)
    torch.testing.assert_close(run.signal[t - 1] ** 2, alpha_bar[t - 1], rtol=1e-5, atol=0)  # = √ᾱ_t, squared


def test_a_map_pixel_and_its_coordinates_go_both_ways():
    limits = (-3.0, 2.0, -1.5, 4.0)
    for px, py in ((0.0, 0.0), (123.0, 456.0), (479.0, 17.5)):
        torch.testing.assert_close(coords_to_pixel(*pixel_to_coords(px, py, limits), limits), (px, py))


def test_on_open_events_leave_the_page_alone_when_their_model_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_MODELS_DIR", str(tmp_path))  # an empty models folder

    def view(x):
        return x + 1

    def stream(x):
        yield x
        yield x + 1

    assert isinstance(when_bundled(view, "vae")(1), type(gr.skip()))
    assert [type(u) for u in when_bundled(stream, "latent")(1)] == [type(gr.skip())]
    assert when_bundled(view)(1) == 2 and list(when_bundled(stream)(1)) == [1, 2]  # nothing needed: it runs


def test_a_map_click_without_its_event_data_is_a_clear_error_and_with_it_a_point():
    from playground.tabs.vae import map_click

    with pytest.raises(gr.Error, match="needs the clicked pixel"):
        map_click(gr.EventData(None, None))
    x, y = map_click(gr.EventData(None, {"index": [120, 200], "value": None}))
    assert all(isinstance(v, float) for v in (x, y))


def test_the_lab_t_range_checks_its_inputs_and_follows_the_trained_T():
    from lab import toy2d_targets
    from playground.lab_handlers import t_slider_range

    with pytest.raises(gr.Error, match="T \\(diffusion steps\\) must be a whole number"):
        t_slider_range(float("nan"), 5)
    update = t_slider_range(1000, 700)
    assert update["maximum"] == 1000 and update["value"] == 700
    assert t_slider_range(50, 700)["value"] == 50
    import app

    (field,) = [fn for fn in app.demo.fns.values() if fn.api_name == "lab_forward_and_field"]
    t_slider = field.inputs[1]
    assert t_slider.maximum == toy2d_targets.MAX_T  # a client that trained with T = 1000 may ask for t = 1000
