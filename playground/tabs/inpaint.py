"""The Inpaint tab: paint over a digit; the pixel DDPM fills the painted pixels in (RePaint)."""

from __future__ import annotations

from functools import cache

import gradio as gr
import numpy as np
import torch
from PIL import Image

from .. import models
from ..cancel import cancellable, stop_callback
from ..images import SIZE, editor_array, test_digit, to_gray, to_pils
from ..limits import HEAVY
from ..validation import MAX_DDPM_STEPS, check_choice, check_int, check_seed, check_steps
from ..widgets import DIGIT_HELP, NUM_TEST, ON_OPEN, missing_banner, seed_input, when_bundled

TITLE = "Inpaint"
ID = "inpaint"
EDITOR_SCALE = 10  # the digit is shown at 280×280 in the editor
MASK_PRESETS = ("drawn", "left half", "right half", "top half", "bottom half", "centre square")
MAX_RESAMPLE = 10
MAX_VARIANTS = 8


def editor_value(test_index) -> dict:
    """The editor's starting value: test digit ``test_index`` at 280×280, no strokes."""
    image, _ = test_digit(test_index)
    big = to_pils(image, scale=EDITOR_SCALE)[0].convert("RGB")
    return {"background": big, "layers": [], "composite": big}


def preset_mask(name: str) -> torch.Tensor:
    """(1, 1, 28, 28), 1 = keep, 0 = fill."""
    keep = torch.ones(1, 1, SIZE, SIZE)
    half = SIZE // 2
    region = {
        "left half": (slice(None), slice(0, half)),
        "right half": (slice(None), slice(half, None)),
        "top half": (slice(0, half), slice(None)),
        "bottom half": (slice(half, None), slice(None)),
        "centre square": (slice(8, 20), slice(8, 20)),
    }[name]
    keep[0, 0][region] = 0
    return keep


def _to_28(gray: np.ndarray) -> np.ndarray:
    """A gray picture of any size → 28×28 by area averaging."""
    if gray.shape == (SIZE, SIZE):
        return gray
    return (
        np.asarray(Image.fromarray((gray * 255).astype(np.uint8)).resize((SIZE, SIZE), Image.BOX), dtype=np.float32)
        / 255
    )


def painted_ink(editor) -> np.ndarray | None:
    """How much each pixel is painted over in any layer of the editor (alpha, or darkness of the strokes), or None."""
    layers = editor.get("layers") if isinstance(editor, dict) else None
    painted = None
    for layer in layers or []:
        array = editor_array({"composite": layer})
        if array is None:
            continue
        if array.ndim == 3 and array.shape[-1] == 4:
            ink = array[..., 3].astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)
        else:
            ink = 1.0 - to_gray(array)
        painted = ink if painted is None else np.maximum(painted, ink)
    return painted


def drawn_mask(editor) -> torch.Tensor:
    """Pixels painted in any layer of the editor (alpha > 0 or dark strokes) → 0 (fill); the rest 1."""
    painted = painted_ink(editor)
    if painted is None or painted.max() <= 0.05:
        raise gr.Error("paint over the digit to mark the pixels to fill in, or pick a preset mask.")
    fill = _to_28(painted.clip(0, 1)) > 0.2
    return torch.from_numpy(~fill).float()[None, None]


def editor_digit(editor, test_index) -> torch.Tensor:
    """The editor's background (the digit, possibly uploaded) as 28×28 white-on-black; else the test digit."""
    background = editor_array({"composite": editor.get("background")}) if isinstance(editor, dict) else None
    if background is None:
        return test_digit(test_index)[0]
    gray = to_gray(background)
    if gray.mean() > 0.5:
        gray = 1.0 - gray
    return torch.from_numpy(_to_28(gray.clip(0, 1)).copy()).float()[None, None]


@torch.no_grad()
def inpaint(
    test_index=7,
    editor=None,
    mask_preset="centre square",
    sampler="DDIM",
    steps=50,
    resample_steps=2,
    num_variants=4,
    seed=0,
    stop=None,
):
    """(the digit with the region to fill shown grey, the filled-in variants as a gallery); setting ``stop`` ends
    the sampling after its current step."""
    mask_preset = check_choice("mask", mask_preset, MASK_PRESETS)
    sampler = check_choice("sampler", sampler, models.INPAINT_SAMPLERS)
    if not models.is_available("pixel"):
        raise gr.Error(models.missing_message("pixel"))
    steps = check_steps(sampler, steps, models.num_train_timesteps("pixel"))
    resample_steps = check_int("resample steps", resample_steps, 1, MAX_RESAMPLE)
    num_variants = check_int("number of variants", num_variants, 1, MAX_VARIANTS)
    seed = check_seed(seed)
    if steps * resample_steps > 1000:
        raise gr.Error(f"steps × resample steps must be at most 1000, got {steps} × {resample_steps}.")
    image = editor_digit(editor, test_index)
    keep = drawn_mask(editor) if mask_preset == "drawn" else preset_mask(mask_preset)
    if keep.min() > 0:
        raise gr.Error("the mask covers no pixel: paint over part of the digit.")
    with models.unavailable_as_gr_error():
        pipe = models.inpaint_pipeline(sampler)
    images = pipe(
        image=image.expand(num_variants, -1, -1, -1),
        mask=keep,
        generator=torch.Generator().manual_seed(seed),
        num_inference_steps=steps,
        resample_steps=resample_steps,
        output_type="pt",
        callback_on_step_end=stop_callback(stop),
    ).images
    shown = torch.where(keep > 0, image, torch.full_like(image, 0.5))
    return to_pils(shown, scale=6)[0], to_pils(images, scale=4)


DEFAULTS = {  # the tab's starting values, which the first view inpaints with
    "test_index": 7,
    "mask_preset": "centre square",
    "sampler": "DDIM",
    "steps": 50,
    "resample_steps": 2,
    "num_variants": 4,
    "seed": 0,
}


@cache
def first_view():
    """The starting values' result, computed once for the first visitor and kept."""
    return inpaint(**DEFAULTS)


def mask_after_painting(editor):
    """Painting over the digit switches the mask to "drawn" (the strokes are the mask)."""
    ink = painted_ink(editor)
    return "drawn" if ink is not None and ink.max() > 0.05 else gr.skip()


def build(demo: gr.Blocks) -> None:
    """The Inpaint tab's layout and events; it opens on a test digit with its centre filled in."""
    missing_banner("pixel")
    gr.Markdown(
        "Paint over part of the digit (any colour): the pixel DDPM fills the painted pixels in, keeping the rest "
        "exactly (RePaint). Or pick a preset mask."
    )
    with gr.Row():
        with gr.Column():
            index = gr.Slider(0, NUM_TEST - 1, value=DEFAULTS["test_index"], step=1, label=DIGIT_HELP)
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
            mask = gr.Radio(list(MASK_PRESETS), value=DEFAULTS["mask_preset"], label="Mask")
        with gr.Column():
            with gr.Row():
                sampler = gr.Radio(list(models.INPAINT_SAMPLERS), value=DEFAULTS["sampler"], label="Sampler")
                steps = gr.Slider(1, MAX_DDPM_STEPS, value=DEFAULTS["steps"], step=1, label="Steps")
                resample = gr.Slider(
                    1, MAX_RESAMPLE, value=DEFAULTS["resample_steps"], step=1, label="Resample steps U"
                )
            with gr.Row():
                variants = gr.Slider(1, MAX_VARIANTS, value=DEFAULTS["num_variants"], step=1, label="Variants")
                seed = seed_input(value=DEFAULTS["seed"])
            run = gr.Button("Inpaint", variant="primary", elem_id="inpaint-button")
            masked = gr.Image(label="kept_pixels", type="pil", format="png", elem_id="inpaint-masked")
            gr.Markdown("Kept pixels above (grey: to fill in); the filled-in variants below.")
            result = gr.Gallery(
                format="png",
                object_fit="contain",
                label="filled_in",
                columns=4,
                height="auto",
                elem_id="inpaint-gallery",
            )
    index.change(editor_value, index, editor, api_name="ui_inpaint_digit", api_visibility="private")
    editor.input(mask_after_painting, editor, mask, api_name="ui_inpaint_mask", api_visibility="private")
    # not queued behind the slow on-open work: a visitor may start painting at once
    demo.load(editor_value, index, editor, api_name="ui_inpaint_digit_load", api_visibility="private")
    first = demo.load(
        when_bundled(first_view, "pixel"),
        None,
        [masked, result],
        api_name="ui_inpaint_first",
        api_visibility="private",
        **ON_OPEN,
    )
    run.click(
        cancellable(inpaint),
        [index, editor, mask, sampler, steps, resample, variants, seed],
        [masked, result],
        api_name="inpaint",
        concurrency_id=HEAVY,
        cancels=[first],
    )
