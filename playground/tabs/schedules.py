"""The noise-schedule tab: β_t, ᾱ_t and log SNR(t) of several schedules, and z_t of a digit under each.

All the math is pipelines/schedules.py's: make_betas, alphas_cumprod, signal_to_noise_ratio, forward_chain
(the step-by-step chain) and closed_form_sample (the jump z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import gradio as gr
import torch

from pipelines import schedules
from pipelines.data_range import to_image_range, to_model_range

from ..images import SIZE, input_digit, to_pils
from ..plots import SCHEDULE_PANELS, schedule_figure, schedule_panel_figure
from ..validation import check_float, check_int, check_seed
from ..widgets import ON_OPEN, digit_inputs, endpoint_shown_on_open, page_open_only, seed_input

TITLE = "Schedules"
ID = "schedules"
MAX_T = 2000
NUM_DRAWS = 64  # samples of z_t used for the empirical mean and std (its std to ±0.3% over 784 pixels)
CHAIN_CHUNK = 50  # forward_chain is run this many steps at a time so memory stays small
STATS_HEADERS = [
    "schedule",
    "ᾱ_t",
    "mean: theory √ᾱ_t·x̄",
    "mean: chain",
    "mean: closed form",
    "std: theory √(1−ᾱ_t)",
    "std: chain",
    "std: closed form",
]


def check_schedule_inputs(names, num_steps, beta_start, beta_end) -> tuple[list[str], int, float, float]:
    if not isinstance(names, (list, tuple)) or not names:
        raise gr.Error("pick at least one noise schedule.")
    unknown = [n for n in names if not isinstance(n, str) or n not in schedules.BETA_SCHEDULES]
    if unknown:
        raise gr.Error(f"unknown schedule(s) {unknown}; choose among {list(schedules.BETA_SCHEDULES)}.")
    num_steps = check_int("T (number of steps)", num_steps, 2, MAX_T)
    beta_start = check_float("β_start", beta_start, 1e-6, 0.5)
    beta_end = check_float("β_end", beta_end, 1e-6, 0.999)
    if beta_start >= beta_end:
        raise gr.Error(f"β_start must be smaller than β_end, got {beta_start} ≥ {beta_end}.")
    return list(dict.fromkeys(names)), num_steps, beta_start, beta_end


def schedule_betas(name: str, num_steps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """β_1..β_T (the cosine schedule ignores the β range)."""
    return schedules.make_betas(name, num_steps, beta_start, beta_end)


def schedule_curves(names, num_steps, beta_start, beta_end) -> dict[str, dict]:
    """β_t, ᾱ_t and log SNR(t) of each chosen schedule, by its label."""
    names, num_steps, beta_start, beta_end = check_schedule_inputs(names, num_steps, beta_start, beta_end)
    curves = {}
    for name in names:
        betas = schedule_betas(name, num_steps, beta_start, beta_end)
        alpha_bar = schedules.alphas_cumprod(betas)
        log_snr = torch.log(schedules.signal_to_noise_ratio(alpha_bar))
        curves[schedules.schedule_label(name)] = {
            "beta": betas.numpy(),
            "alpha_bar": alpha_bar.numpy(),
            "log_snr": log_snr.numpy(),
        }
    return curves


def schedule_plot(names, num_steps, beta_start, beta_end):
    """The figure of β_t, ᾱ_t and log SNR(t) for each chosen schedule (three panels side by side)."""
    return schedule_figure(schedule_curves(names, num_steps, beta_start, beta_end))


def schedule_panels(names, num_steps, beta_start, beta_end):
    """The same three panels as three figures (the page lays them out side by side, or stacked on a phone)."""
    curves = schedule_curves(names, num_steps, beta_start, beta_end)
    return tuple(schedule_panel_figure(curves, key) for key in SCHEDULE_PANELS)


class ChainRun(NamedTuple):
    """The step-by-step chain run once from a blank image, kept per t (index t − 1): the chain is linear in x, so
    its z_t from any digit x is signal_t·x + noise_t with the same draws (see :func:`chain_parts`)."""

    signal: torch.Tensor  # (T,) ∏_{s≤t} √(1 − β_s): what the chain's steps leave of x
    first_noise: torch.Tensor  # (T, 1, 28, 28) the noise part of the first draw (shown as a picture)
    noise_mean: torch.Tensor  # (T,) mean of the noise part over the draws and the pixels
    noise_std: torch.Tensor  # (T,) std over the draws, averaged over the pixels


@lru_cache(maxsize=8)  # a schedule and seed are run once; moving t or changing the digit reads this
def chain_parts(name: str, num_steps: int, beta_start: float, beta_end: float, seed: int) -> ChainRun:
    """Run forward_chain z_t = √(1 − β_t)·z_{t−1} + √β_t·ε_t for all T steps on NUM_DRAWS blank images (x = 0).

    Started from x instead, every step scales the x-part by √(1 − β_t) and adds the same noise, so
    z_t = (∏_{s≤t} √(1 − β_s))·x + (the chain from 0)_t: one run serves every digit and every t.
    """
    betas = schedule_betas(name, num_steps, beta_start, beta_end)
    generator = torch.Generator().manual_seed(seed)
    z = torch.zeros(NUM_DRAWS, 1, SIZE, SIZE)
    first, means, stds = [], [], []
    for start in range(0, num_steps, CHAIN_CHUNK):  # chunks keep only CHAIN_CHUNK steps of all draws in memory
        chunk = torch.stack(schedules.forward_chain(z, betas[start : start + CHAIN_CHUNK], generator=generator))
        first.append(chunk[:, 0].clone())  # (steps, 1, 28, 28); a copy, not a view keeping every draw alive
        means.append(chunk.mean((1, 2, 3, 4)))
        stds.append(chunk.std(1).mean((1, 2, 3)))
        z = chunk[-1]
    signal = torch.cumprod((1 - betas) ** 0.5, 0)  # ∏_{s≤t} √(1 − β_s), the chain's own factors
    return ChainRun(signal, torch.cat(first), torch.cat(means), torch.cat(stds))


def forward_process(names, num_steps, beta_start, beta_end, test_index, drawing=None, t=200, seed=0):
    """z_t of the digit under each schedule, by the chain and by the closed form, and their statistics.

    Returns (gallery of (image, caption), stats rows, a caption). Images show z_t mapped from [−1, 1] to [0, 1].
    """
    names, num_steps, beta_start, beta_end = check_schedule_inputs(names, num_steps, beta_start, beta_end)
    t = check_int("t", t, 1, num_steps)
    seed = check_seed(seed)
    image, caption = input_digit(test_index, drawing)
    x = to_model_range(image)  # the diffusion's data range [−1, 1]
    timesteps = torch.full((NUM_DRAWS,), t - 1, dtype=torch.long)  # betas[0] is β_1
    gallery, rows = [(to_pils(image)[0], f"x: {caption}")], []
    for name in names:
        run = chain_parts(name, num_steps, beta_start, beta_end, seed)
        alpha_bar = schedules.alphas_cumprod(schedule_betas(name, num_steps, beta_start, beta_end))
        chain_first = run.signal[t - 1] * x[0] + run.first_noise[t - 1]  # the chain's z_t of the first draw
        noise = torch.randn((NUM_DRAWS, *x.shape[1:]), generator=torch.Generator().manual_seed(seed + 1))
        closed = schedules.closed_form_sample(x.expand(NUM_DRAWS, -1, -1, -1), noise, alpha_bar, timesteps)
        mean_theory = schedules.closed_form_sample(x, torch.zeros_like(x), alpha_bar, timesteps[:1])
        std_theory = schedules.closed_form_sample(torch.zeros(1), torch.ones(1), alpha_bar, timesteps[:1])
        label = schedules.schedule_label(name)
        for kind, z in (("chain", chain_first[None]), ("closed form", closed[:1])):
            gallery.append((to_pils(to_image_range(z.float()))[0], f"{label} · {kind} · t={t}"))
        rows.append(
            [
                label,
                round(float(alpha_bar[t - 1]), 5),
                round(float(mean_theory.mean()), 4),
                round(float(run.signal[t - 1] * x.mean() + run.noise_mean[t - 1]), 4),
                round(float(closed.mean(0).mean()), 4),
                round(float(std_theory), 4),
                round(float(run.noise_std[t - 1]), 4),
                round(float(closed.std(0).mean()), 4),
            ]
        )
    note = (
        f"{caption}; t = {t} of T = {num_steps}. Mean and std are per pixel over {NUM_DRAWS} draws of z_t, "
        "then averaged over the pixels: the chain and the closed form agree with the theory up to sampling noise."
    )
    return gallery, rows, note


def t_slider_range(num_steps):
    """The t slider ends at T (its static maximum is MAX_T, so that the API takes any t ≤ T)."""
    return gr.update(maximum=max(2, min(int(num_steps or 2), MAX_T)))


LIVE = {"trigger_mode": "always_last", "show_progress": "hidden"}  # follow the inputs as they move


def build(demo: gr.Blocks) -> None:
    """The tab's layout and events: the plots and z_t are drawn when the page opens and follow every input."""
    schedule_inputs = schedules_section(demo)
    forward_section(demo, schedule_inputs)


def schedules_section(demo: gr.Blocks) -> list:
    """The schedule inputs and their three panels (live, and in one figure for the API); returns the inputs."""
    gr.Markdown("### Noise schedules")
    with gr.Row():
        names = gr.CheckboxGroup(
            [(schedules.schedule_label(n), n) for n in schedules.BETA_SCHEDULES],
            value=["linear", "squaredcos_cap_v2"],
            label="β schedules",
        )
        num_steps = gr.Number(1000, precision=0, minimum=2, maximum=MAX_T, label="T")
        beta_start = gr.Number(1e-4, minimum=1e-6, maximum=0.5, label="β_start (not used by cosine)")
        beta_end = gr.Number(0.02, minimum=1e-6, maximum=0.999, label="β_end (not used by cosine)")
    with gr.Row(elem_id="schedule-plot"):  # three panels: side by side, stacked when the screen is narrow
        panels = [
            gr.Plot(label=title, show_label=False, min_width=300, format="png", elem_id=f"schedule-{key}")
            for key, (title, _) in SCHEDULE_PANELS.items()
        ]
    schedule_inputs = [names, num_steps, beta_start, beta_end]
    on_open = demo.load(
        page_open_only(schedule_panels, schedule_inputs, "schedule_plot"),
        schedule_inputs,
        panels,
        api_name="ui_schedule_panels_on_open",
        api_visibility="private",
        **ON_OPEN,
    )
    gr.on(
        [c.change for c in schedule_inputs],
        schedule_panels,
        schedule_inputs,
        panels,
        api_name="ui_schedule_panels",
        api_visibility="private",
        cancels=[on_open],
        **LIVE,
    )
    # a named API endpoint for the three panels in one figure
    plot = gr.Plot(label="schedule_plot", visible=False)
    gr.Button(visible=False).click(schedule_plot, schedule_inputs, plot, api_name="schedule_plot")
    return schedule_inputs


def forward_section(demo: gr.Blocks, schedule_inputs: list) -> None:
    """z_t of a digit by the chain and by the closed form, following t, the digit, the seed and the schedules."""
    gr.Markdown("### The forward process on a digit: step-by-step chain vs. closed form at the same t")
    with gr.Row():
        with gr.Column():
            index, drawing = digit_inputs("forward-sketchpad")
        with gr.Column():
            t = gr.Slider(1, MAX_T, value=200, step=1, label="t (≤ T)", elem_id="forward-t")
            seed = seed_input()
            gallery = gr.Gallery(
                format="png",
                object_fit="contain",
                label="z_t per schedule",
                columns=5,
                height="auto",
                elem_id="forward-gallery",
            )
            note = gr.Markdown(label="note", elem_id="forward-note")
    stats = gr.Dataframe(headers=STATS_HEADERS, label="statistics", elem_id="forward-stats")
    num_steps = schedule_inputs[1]
    num_steps.change(t_slider_range, num_steps, t, api_name="ui_t_range", api_visibility="private")
    demo.load(t_slider_range, num_steps, t, api_name="ui_t_range_load", api_visibility="private")
    endpoint_shown_on_open(
        demo,
        [t.input, index.input, drawing.change, seed.input, *(c.change for c in schedule_inputs)],
        forward_process,
        [*schedule_inputs, index, drawing, t, seed],
        [gallery, stats, note],
        "forward_process",
        **LIVE,
    )
