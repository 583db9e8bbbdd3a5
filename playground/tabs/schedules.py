"""The noise-schedule tab: β_t, ᾱ_t and log SNR(t) of several schedules, and z_t of a digit under each.

All the math is pipelines/schedules.py's: make_betas, alphas_cumprod, signal_to_noise_ratio, forward_chain
(the step-by-step chain) and closed_form_sample (the jump z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε).
"""

from __future__ import annotations

import gradio as gr
import torch

from pipelines import schedules
from pipelines.data_range import to_image_range, to_model_range

from ..images import input_digit, to_pils
from ..plots import schedule_figure
from ..validation import check_float, check_int, check_seed
from ..widgets import digit_inputs, seed_input

TITLE = "Noise schedules & forward process"
ID = "schedules"
MAX_T = 2000
NUM_DRAWS = 128  # samples of z_t used for the empirical mean and std
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
    unknown = [n for n in names if n not in schedules.BETA_SCHEDULES]
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


def schedule_plot(names, num_steps, beta_start, beta_end):
    """The figure of β_t, ᾱ_t and log SNR(t) for each chosen schedule."""
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
    return schedule_figure(curves)


def chain_sample(x: torch.Tensor, betas: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """z_t by the step-by-step chain x → z_1 → … → z_t (forward_chain, run in chunks keeping only the last z)."""
    z = x
    for start in range(0, len(betas), CHAIN_CHUNK):
        z = schedules.forward_chain(z, betas[start : start + CHAIN_CHUNK], generator=generator)[-1]
    return z


def forward_process(names, num_steps, beta_start, beta_end, test_index, drawing, t, seed):
    """z_t of the digit under each schedule, by the chain and by the closed form, and their statistics.

    Returns (gallery of (image, caption), stats rows, a caption). Images show z_t mapped from [−1, 1] to [0, 1].
    """
    names, num_steps, beta_start, beta_end = check_schedule_inputs(names, num_steps, beta_start, beta_end)
    t = check_int("t", t, 1, num_steps)
    seed = check_seed(seed)
    image, caption = input_digit(test_index, drawing)
    x = to_model_range(image).expand(NUM_DRAWS, -1, -1, -1)  # the diffusion's data range [−1, 1]
    timesteps = torch.full((NUM_DRAWS,), t - 1, dtype=torch.long)  # betas[0] is β_1
    gallery, rows = [(to_pils(image)[0], f"x: {caption}")], []
    for name in names:
        generator = torch.Generator().manual_seed(seed)
        betas = schedule_betas(name, num_steps, beta_start, beta_end)
        alpha_bar = schedules.alphas_cumprod(betas)
        chain = chain_sample(x, betas[:t], generator)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        closed = schedules.closed_form_sample(x, noise, alpha_bar, timesteps)
        mean_theory = schedules.closed_form_sample(x[:1], torch.zeros_like(x[:1]), alpha_bar, timesteps[:1])
        std_theory = schedules.closed_form_sample(torch.zeros(1), torch.ones(1), alpha_bar, timesteps[:1])
        label = schedules.schedule_label(name)
        for kind, z in (("chain", chain), ("closed form", closed)):
            gallery.append((to_pils(to_image_range(z[:1].float()))[0], f"{label} · {kind} · t={t}"))
        rows.append(
            [
                label,
                round(float(alpha_bar[t - 1]), 5),
                round(float(mean_theory.mean()), 4),
                round(float(chain.mean(0).mean()), 4),
                round(float(closed.mean(0).mean()), 4),
                round(float(std_theory), 4),
                round(float(chain.std(0).mean()), 4),
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


def build(demo: gr.Blocks) -> None:
    """The tab's layout and events; the schedule plot is drawn when the page opens."""
    with gr.Row():
        names = gr.CheckboxGroup(
            [(schedules.schedule_label(n), n) for n in schedules.BETA_SCHEDULES],
            value=["linear", "squaredcos_cap_v2"],
            label="β schedules",
        )
        num_steps = gr.Number(1000, precision=0, minimum=2, maximum=MAX_T, label="T")
        beta_start = gr.Number(1e-4, minimum=1e-6, maximum=0.5, label="β_start (not used by cosine)")
        beta_end = gr.Number(0.02, minimum=1e-6, maximum=0.999, label="β_end (not used by cosine)")
    plot = gr.Plot(label="β_t, ᾱ_t and log SNR(t)", elem_id="schedule-plot")
    gr.Markdown("### The forward process on a digit: step-by-step chain vs. closed form at the same t")
    with gr.Row():
        with gr.Column():
            index, drawing = digit_inputs("forward-sketchpad")
        with gr.Column():
            t = gr.Slider(1, MAX_T, value=200, step=1, label="t (≤ T)")
            seed = seed_input()
            run = gr.Button("Show z_t", variant="primary", elem_id="forward-button")
            gallery = gr.Gallery(
                format="png",
                label="z_t under each schedule (shown from [−1, 1])",
                columns=5,
                height=340,
                elem_id="forward-gallery",
            )
            note = gr.Markdown(label="Note", elem_id="forward-note")
    stats = gr.Dataframe(
        headers=STATS_HEADERS, label="Empirical mean and std of z_t vs. theory", elem_id="forward-stats"
    )
    schedule_inputs = [names, num_steps, beta_start, beta_end]
    for component in schedule_inputs:
        component.change(
            schedule_plot, schedule_inputs, plot, api_name="ui_schedule_plot_live", api_visibility="private"
        )
    num_steps.change(t_slider_range, num_steps, t, api_name="ui_t_range", api_visibility="private")
    demo.load(t_slider_range, num_steps, t, api_name="ui_t_range_load", api_visibility="private")
    forward_inputs = [*schedule_inputs, index, drawing, t, seed]
    run.click(forward_process, forward_inputs, [gallery, stats, note], api_name="forward_process")
    t.release(
        forward_process,
        forward_inputs,
        [gallery, stats, note],
        api_name="ui_forward_live",
        api_visibility="private",
    )
    # a named API endpoint for the plot (also drawn when the page loads)
    plot_button = gr.Button(visible=False)
    plot_button.click(schedule_plot, schedule_inputs, plot, api_name="schedule_plot")
    demo.load(schedule_plot, schedule_inputs, plot, api_name="ui_schedule_plot_load", api_visibility="private")
