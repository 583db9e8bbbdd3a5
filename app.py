"""The VAE & diffusion playground: a Gradio app (and a Hugging Face Space) on the bundled MNIST models.

    python app.py          # serves on $GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT (default 127.0.0.1:7860)

Models are read from $PLAYGROUND_MODELS_DIR (default ./models), lazily, once. Every action is a named API
endpoint (see the page's "Use via API" link), queued with a concurrency limit; inputs are validated.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr
import torch

from pipelines.defaults import (
    DEFAULT_AUTOGUIDANCE_SCALE,
    DEFAULT_DDIM_ETA,
    DEFAULT_DDIM_STEPS,
    DEFAULT_DDPM_STEPS,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_SAMPLER,
)
from pipelines.schedules import BETA_SCHEDULES
from playground import forward, inpaint, models, sampling, vae_tab
from playground.atomic_cache import make_gradio_cache_writes_atomic
from playground.math_text import LATEX_DELIMITERS, math_markdown
from playground.validation import MAX_DDIM_STEPS, MAX_DDPM_STEPS, MAX_IMAGES, MAX_SEED

make_gradio_cache_writes_atomic()  # concurrent identical answers must not serve a half-written picture
CONCURRENCY_LIMIT = int(os.environ.get("PLAYGROUND_CONCURRENCY", "2"))
QUEUE_SIZE = 32
NUM_TEST = 500  # the MNIST test split: 50 digits per class
DIGIT_HELP = "Test digit # (0–499, from the held-out MNIST test split)"


def missing_banner(*keys: str):
    """A warning shown at the top of a tab whose model folder is absent (checked when the page is built)."""
    missing = [models.missing_message(k) for k in keys if not models.is_available(k)]
    return gr.Markdown("⚠️ " + "\n\n⚠️ ".join(missing) if missing else "", visible=bool(missing))


def digit_inputs(elem_id: str, label: str = DIGIT_HELP, value: int = 0):
    """A test-digit slider and a sketchpad (draw, or upload a picture) that overrides it when not empty."""
    with gr.Row():
        index = gr.Slider(0, NUM_TEST - 1, value=value, step=1, label=label)
    drawing = gr.Sketchpad(
        label="…or draw / upload a digit (overrides the test digit; clear it to go back)",
        value=None,
        type="numpy",
        image_mode="RGBA",
        canvas_size=(280, 280),
        height=300,
        brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
        sources=("upload", "clipboard"),
        elem_id=elem_id,
    )
    return index, drawing


def default_model() -> str:
    return "latent" if models.is_available("latent") else "pixel"


def shows_autoguidance(model: str | None) -> bool:
    return model in models.SPECS and model != "conditional" and models.has_guide(model)


def sample_tab():
    missing_banner("pixel", "latent", "conditional")
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(
                [(models.SPECS[k].label, k) for k in ("pixel", "latent", "conditional")],
                value=default_model(),
                label="Model",
            )
            sampler = gr.Radio(list(models.SAMPLERS), value=DEFAULT_SAMPLER.upper(), label="Sampler")
            steps = gr.Slider(
                1,
                MAX_DDPM_STEPS,
                value=DEFAULT_DDIM_STEPS,
                step=1,
                label=f"Steps (DDIM ≤ {MAX_DDIM_STEPS}, DDPM ≤ {MAX_DDPM_STEPS})",
                elem_id="sample-steps",
            )
            eta = gr.Slider(
                0, 1, value=DEFAULT_DDIM_ETA, step=0.05, label="DDIM η (0 = deterministic, 1 = DDPM-like noise)"
            )
            num_images = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images")
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
            with gr.Group(visible=default_model() == "conditional") as conditional_inputs:
                digit = gr.Slider(0, 9, value=3, step=1, label="Digit (class-conditional model only)")
                guidance = gr.Slider(
                    0,
                    sampling.MAX_GUIDANCE,
                    value=DEFAULT_GUIDANCE_SCALE,
                    step=0.5,
                    label="Guidance scale w (class-conditional model only)",
                )
            with gr.Group(visible=shows_autoguidance(default_model())) as autoguidance_inputs:
                autoguidance = gr.Slider(
                    0,
                    sampling.MAX_GUIDANCE,
                    value=DEFAULT_AUTOGUIDANCE_SCALE,
                    step=0.25,
                    elem_id="sample-autoguidance",
                    label="Autoguidance w: steer away from a small, briefly trained guide model (1 = off)",
                )
            run = gr.Button("Sample", variant="primary", elem_id="sample-button")
        with gr.Column(scale=2):
            status = gr.Markdown(label="Status", elem_id="sample-status")
            gallery = gr.Gallery(format="png", label="Samples", columns=6, height=420, elem_id="sample-gallery")
            trajectory = gr.Image(
                label="Reverse process: z_t (left) and the predicted x̂_0 (right), streamed",
                type="pil",
                format="png",
                elem_id="sample-trajectory",
            )
            gif = gr.File(label="Trajectory GIF (download)", elem_id="sample-gif")
    sampler.change(
        lambda s: gr.update(value=DEFAULT_DDIM_STEPS if s == "DDIM" else DEFAULT_DDPM_STEPS),
        sampler,
        steps,
        api_name="ui_default_steps",
        api_visibility="private",
    )
    model.change(
        lambda m: (gr.update(visible=m == "conditional"), gr.update(visible=shows_autoguidance(m))),
        model,
        [conditional_inputs, autoguidance_inputs],
        api_name="ui_conditional_inputs",
        api_visibility="private",
    )
    run.click(
        sampling.sample_stream,
        [model, sampler, steps, eta, seed, num_images, digit, guidance, autoguidance],
        [gallery, trajectory, status, gif],
        api_name="sample",
    )


def schedules_tab():
    with gr.Row():
        names = gr.CheckboxGroup(
            [(forward.SCHEDULE_LABELS[n], n) for n in BETA_SCHEDULES],
            value=["linear", "squaredcos_cap_v2"],
            label="β schedules",
        )
        num_steps = gr.Number(1000, precision=0, minimum=2, maximum=forward.MAX_T, label="T")
        beta_start = gr.Number(1e-4, minimum=1e-6, maximum=0.5, label="β_start (not used by cosine)")
        beta_end = gr.Number(0.02, minimum=1e-6, maximum=0.999, label="β_end (not used by cosine)")
    plot = gr.Plot(label="β_t, ᾱ_t and log SNR(t)", elem_id="schedule-plot")
    gr.Markdown("### The forward process on a digit: step-by-step chain vs. closed form at the same t")
    with gr.Row():
        with gr.Column():
            index, drawing = digit_inputs("forward-sketchpad")
        with gr.Column():
            t = gr.Slider(1, 1000, value=200, step=1, label="t (≤ T)")
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
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
        headers=forward.STATS_HEADERS, label="Empirical mean and std of z_t vs. theory", elem_id="forward-stats"
    )
    schedule_inputs = [names, num_steps, beta_start, beta_end]
    for component in schedule_inputs:
        component.change(
            forward.schedule_plot, schedule_inputs, plot, api_name="ui_schedule_plot_live", api_visibility="private"
        )
    num_steps.change(
        lambda n: gr.update(maximum=max(2, min(int(n or 2), forward.MAX_T))),
        num_steps,
        t,
        api_name="ui_t_range",
        api_visibility="private",
    )
    forward_inputs = [*schedule_inputs, index, drawing, t, seed]
    run.click(forward.forward_process, forward_inputs, [gallery, stats, note], api_name="forward_process")
    t.release(
        forward.forward_process,
        forward_inputs,
        [gallery, stats, note],
        api_name="ui_forward_live",
        api_visibility="private",
    )
    return plot, schedule_inputs


def beta_radio(elem_id: str) -> gr.Radio:
    """β of the VAE to use: only the bundled values are offered (hidden when only the plain VAE is bundled)."""
    betas = models.bundled_betas() or [1.0]
    choices = [(f"β = {b:g}" + (" (the ELBO)" if b == 1.0 else ""), b) for b in betas]
    return gr.Radio(
        choices, value=1.0, label="β-VAE: the KL weight it was trained with", visible=len(betas) > 1, elem_id=elem_id
    )


def vae_tab_ui():
    missing_banner("vae")
    with gr.Tabs():
        with gr.Tab("Reconstruction & ELBO"):
            gr.Markdown(
                "The ELBO = E_q[ln p(x|z)] − KL[q(z|x) ‖ p(z)] of a digit, live: reconstruction minus KL, in nats."
            )
            with gr.Row():
                with gr.Column():
                    index, drawing = digit_inputs("vae-sketchpad")
                    seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed (the draw z = μ + σ·ε)")
                    beta = beta_radio("vae-beta")
                    run = gr.Button("Reconstruct", variant="primary", elem_id="vae-reconstruct-button")
                with gr.Column():
                    with gr.Row():
                        original = gr.Image(label="Input x", type="pil", format="png", height=200, elem_id="vae-input")
                        recon = gr.Image(
                            label="Reconstruction E[x | z = μ]",
                            type="pil",
                            format="png",
                            height=200,
                            elem_id="vae-recon",
                        )
                    elbo_text = gr.Markdown(label="ELBO", elem_id="vae-elbo")
                    elbo = gr.JSON(label="ELBO terms (nats)")
            outputs = [original, recon, elbo_text, elbo]
            run.click(vae_tab.reconstruct, [index, drawing, seed, beta], outputs, api_name="vae_reconstruct")
            for trigger in (index.release, drawing.change, beta.change):  # live: a new digit, a stroke or β recomputes
                trigger(
                    vae_tab.reconstruct,
                    [index, drawing, seed, beta],
                    outputs,
                    api_name="ui_reconstruct_live",
                    api_visibility="private",
                    trigger_mode="always_last",
                    show_progress="hidden",
                )

        with gr.Tab("Prior samples"):
            gr.Markdown("z ~ p(z) = N(0, I), then the mean of p(x | z).")
            with gr.Row():
                num_prior = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images")
                prior_seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
                prior_beta = beta_radio("vae-prior-beta")
                prior_run = gr.Button("Sample the prior", variant="primary", elem_id="vae-prior-button")
            prior = gr.Gallery(format="png", columns=8, height=300, label="Prior samples", elem_id="vae-prior-gallery")
            prior_run.click(vae_tab.prior_samples, [num_prior, prior_seed, prior_beta], prior, api_name="vae_prior")

        with gr.Tab("Interpolation"):
            gr.Markdown("From μ(a) to μ(b) in latent space: a straight line vs. the great circle (slerp).")
            with gr.Row():
                index_a = gr.Slider(0, NUM_TEST - 1, value=0, step=1, label="From test digit #")
                index_b = gr.Slider(0, NUM_TEST - 1, value=60, step=1, label="To test digit #")
                frames = gr.Slider(2, vae_tab.MAX_FRAMES, value=10, step=1, label="Frames")
                walk = gr.Button("Interpolate", variant="primary", elem_id="vae-interpolate-button")
            linear = gr.Image(label="Linear", type="pil", format="png", height=130, elem_id="vae-linear")
            spherical = gr.Image(label="Slerp", type="pil", format="png", height=130, elem_id="vae-slerp")
            walk_gif = gr.File(label="GIF (left: linear, right: slerp)", elem_id="vae-walk-gif")
            walk.click(
                vae_tab.interpolate,
                [index_a, index_b, frames],
                [linear, spherical, walk_gif],
                api_name="vae_interpolate",
            )

        with gr.Tab("Traversal"):
            gr.Markdown(
                "One coordinate of μ(x) swept from −span to +span, the others fixed (x: the digit of "
                "'Reconstruction & ELBO')."
            )
            with gr.Row():
                dim = gr.Slider(0, 15, value=0, step=1, label="Latent dimension")
                span = gr.Slider(0.5, 5, value=3, step=0.5, label="Span ±")
                traverse_frames = gr.Slider(2, vae_tab.MAX_FRAMES, value=10, step=1, label="Frames")
                traverse_run = gr.Button("Traverse", variant="primary", elem_id="vae-traverse-button")
            traversal = gr.Image(
                label="z_dim from −span to +span", type="pil", format="png", height=130, elem_id="vae-traversal"
            )
            traverse_run.click(
                vae_tab.traverse, [index, drawing, dim, span, traverse_frames], traversal, api_name="vae_traverse"
            )

        with gr.Tab("Latent map"):
            gr.Markdown(
                "The test digits' μ(x) on their first two principal directions, coloured by digit. "
                "Click anywhere to decode that point."
            )
            with gr.Row():
                with gr.Column(scale=2):
                    map_run = gr.Button("Draw the latent map", variant="primary", elem_id="vae-map-button")
                    latent_map = gr.Image(
                        label="Latent map (click a point)",
                        type="pil",
                        format="png",
                        interactive=False,
                        height=500,
                        elem_id="vae-map",
                    )
                with gr.Column(scale=1):
                    pc1 = gr.Number(0.0, label="PC 1")
                    pc2 = gr.Number(0.0, label="PC 2")
                    decode_run = gr.Button("Decode this point", elem_id="vae-decode-button")
                    decoded = gr.Image(label="Decoded", type="pil", format="png", height=200, elem_id="vae-decoded")
            map_run.click(vae_tab.latent_map, None, latent_map, api_name="vae_latent_map")
            decode_run.click(vae_tab.decode_point, [pc1, pc2], [decoded, latent_map], api_name="vae_decode_point")
            latent_map.select(
                vae_tab.map_click, None, [pc1, pc2], api_name="ui_map_click", api_visibility="private"
            ).then(
                vae_tab.decode_point,
                [pc1, pc2],
                [decoded, latent_map],
                api_name="ui_map_decode",
                api_visibility="private",
            )


def inpaint_tab():
    missing_banner("pixel")
    gr.Markdown(
        "Paint over part of the digit (any colour): the pixel DDPM fills the painted pixels in, keeping the rest "
        "exactly (RePaint). Or pick a preset mask."
    )
    with gr.Row():
        with gr.Column():
            index = gr.Slider(0, NUM_TEST - 1, value=7, step=1, label=DIGIT_HELP)
            editor = gr.ImageEditor(
                value=None,
                type="numpy",
                image_mode="RGBA",
                canvas_size=(280, 280),
                height=320,
                brush=gr.Brush(default_size=28, colors=["#ff3366"], color_mode="fixed"),
                sources=("upload",),
                label="Digit (paint the pixels to fill in)",
                elem_id="inpaint-editor",
            )
            mask = gr.Radio(list(inpaint.MASK_PRESETS), value="drawn", label="Mask")
        with gr.Column():
            with gr.Row():
                sampler = gr.Radio(list(models.SAMPLERS), value="DDIM", label="Sampler")
                steps = gr.Slider(1, MAX_DDPM_STEPS, value=50, step=1, label="Steps")
                resample = gr.Slider(1, inpaint.MAX_RESAMPLE, value=2, step=1, label="Resample steps U")
            with gr.Row():
                variants = gr.Slider(1, inpaint.MAX_VARIANTS, value=4, step=1, label="Variants")
                seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
            run = gr.Button("Inpaint", variant="primary", elem_id="inpaint-button")
            masked = gr.Image(label="Kept pixels (grey = to fill)", type="pil", format="png", elem_id="inpaint-masked")
            result = gr.Gallery(format="png", label="Filled in", columns=4, height=200, elem_id="inpaint-gallery")
    index.change(inpaint.editor_value, index, editor, api_name="ui_inpaint_digit", api_visibility="private")
    run.click(
        inpaint.inpaint,
        [index, editor, mask, sampler, steps, resample, variants, seed],
        [masked, result],
        api_name="inpaint",
    )
    return index, editor


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="VAE & diffusion playground") as demo:
        gr.Markdown("# VAE & diffusion playground\nSee and touch every quantity of a VAE and a DDPM trained on MNIST.")
        with gr.Tabs():
            with gr.Tab("Sample", id="sample"):
                sample_tab()
            with gr.Tab("Noise schedules & forward process", id="schedules"):
                plot, schedule_inputs = schedules_tab()
            with gr.Tab("VAE", id="vae"):
                vae_tab_ui()
            with gr.Tab("Inpaint", id="inpaint"):
                inpaint_index, editor = inpaint_tab()
            with gr.Tab("The math", id="math"):
                gr.Markdown(math_markdown(), latex_delimiters=LATEX_DELIMITERS, elem_id="math-text")
        # named API endpoints for the plot (also drawn when the page loads)
        plot_button = gr.Button(visible=False)
        plot_button.click(forward.schedule_plot, schedule_inputs, plot, api_name="schedule_plot")
        demo.load(
            forward.schedule_plot, schedule_inputs, plot, api_name="ui_schedule_plot_load", api_visibility="private"
        )
        demo.load(
            inpaint.editor_value, inpaint_index, editor, api_name="ui_inpaint_digit_load", api_visibility="private"
        )
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    return demo


demo = build_demo()

if __name__ == "__main__":
    # One torch thread per request: far faster than 2 on a shared 2-vCPU machine (no oversubscription; measured
    # 20× on the forward chain under load), and two queued requests then run side by side.
    torch.set_num_threads(int(os.environ.get("PLAYGROUND_TORCH_THREADS", "1")))
    demo.launch(show_error=True)
