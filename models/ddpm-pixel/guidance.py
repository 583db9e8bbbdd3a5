"""Guidance, in one place: classifier-free guidance (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598) for
the class-conditional model and autoguidance (Karras et al. 2024, https://arxiv.org/abs/2406.02507) for the
unconditional ones. Both extrapolate from a weaker prediction towards a stronger one: ε̃ = ε_weak + w·(ε_strong − ε_weak).

A class-conditional UNet2DModel is trained with ``num_class_embeds = num_classes + 1``: labels 0..num_classes−1
are the classes and the last index, ``num_classes``, is the "no class" label of the unconditional branch (the
label is dropped to it at random during training). Sampling mixes the two noise predictions:
ε̃ = ε_uncond + w·(ε_cond − ε_uncond).

Autoguidance needs no labels: the weak prediction comes from a *guide*, a smaller or shorter-trained UNet of the
same data and noise schedule. Where the guide errs more than the main model, the extrapolation moves away from
those errors (blurred, half-formed digits), so samples land where both agree a digit is.

Either guidance may be limited to an interval of noise levels (Kynkäänniemi et al. 2024,
https://arxiv.org/abs/2404.07724): at high noise guiding mostly costs diversity (some digits come up far more often
than others), at low noise it changes little, and a step outside the interval runs the main network alone.

An autoguided step needs two passes of two networks; on a CPU with idle cores the guide's pass runs in a second
thread beside the main one (:func:`guide_beside_main`): the same numbers, sooner (how much sooner:
docs/speed.md#what-made-the-clicks-faster).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache

import torch

from .checks import check_number, finite_float
from .schedules import signal_to_noise_ratio


def guidance_extrapolation(weak: torch.Tensor, strong: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """ε̃ = ε_weak + w·(ε_strong − ε_weak): w = 0 gives the weak prediction, w = 1 the strong one, w > 1 extrapolates."""
    return weak + guidance_scale * (strong - weak)  # ε̃ = ε_weak + w·(ε_strong − ε_weak)


def classifier_free_guidance(
    noise_uncond: torch.Tensor, noise_cond: torch.Tensor, guidance_scale: float
) -> torch.Tensor:
    """ε̃ = ε_uncond + w·(ε_cond − ε_uncond): w = 0 is unconditional, w = 1 conditional, w > 1 sharpens the class."""
    return guidance_extrapolation(noise_uncond, noise_cond, guidance_scale)


def autoguidance(noise_guide: torch.Tensor, noise_main: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """ε̃ = ε_guide + w·(ε_main − ε_guide): w = 1 is the main model alone, w > 1 steers away from the guide's errors."""
    return guidance_extrapolation(noise_guide, noise_main, guidance_scale)


def noise_level(alpha_prod_t: torch.Tensor) -> float:
    """σ_t = √((1 − ᾱ_t)/ᾱ_t) = SNR(t)^(−1/2), the noise-to-signal ratio of z_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε."""
    return float(signal_to_noise_ratio(alpha_prod_t.double()) ** -0.5)  # σ_t = SNR(t)^(−1/2)


def validate_guidance_interval(interval) -> tuple[float, float] | None:
    """None (guide every step) or (σ_low, σ_high) with 0 ≤ σ_low < σ_high: guide where σ_low < σ_t ≤ σ_high."""
    if interval is None:
        return None
    if isinstance(interval, (str, bytes)) or not hasattr(interval, "__len__") or len(interval) != 2:
        raise ValueError(f"guidance_interval must be None or (sigma_low, sigma_high), got {interval!r:.60}.")
    low, high = (finite_float(bound) for bound in interval)
    if low is None or high is None or not 0 <= low < high:
        raise ValueError(
            f"guidance_interval must be (sigma_low, sigma_high) with 0 ≤ sigma_low < sigma_high, got {interval!r:.60}."
        )
    return low, high


def guides_at(sigma: float, interval: tuple[float, float] | None) -> bool:
    """Whether a step at noise level σ_t is guided: every step without an interval, else σ_low < σ_t ≤ σ_high."""
    return interval is None or interval[0] < sigma <= interval[1]


def check_guide(unet, guide_unet) -> None:
    """A guide must sample the main UNet's space (channels, size) and, like autoguidance itself, be unconditional."""
    if guide_unet is None:
        return
    shape = lambda m: (m.config.in_channels, m.config.out_channels, m.config.sample_size)
    if shape(guide_unet) != shape(unet):
        raise ValueError(
            f"guide_unet has (in, out channels, sample_size) {shape(guide_unet)}; the unet has {shape(unet)}."
        )
    if num_class_embeds(unet) is not None or num_class_embeds(guide_unet) is not None:
        raise ValueError(
            "autoguidance is for unconditional UNets; a class-conditional model uses classifier-free guidance."
        )


def num_class_embeds(unet) -> int | None:
    """The UNet's number of class embeddings (classes + the null label), or None for an unconditional UNet."""
    return getattr(unet.config, "num_class_embeds", None)


def null_class_label(unet) -> int:
    """The "no class" label: the last class embedding, ``num_class_embeds − 1``."""
    n = num_class_embeds(unet)
    if n is None:
        raise ValueError("the unet is unconditional (its config has no num_class_embeds), so it has no null label.")
    return n - 1


def validate_guidance_scale(guidance_scale: float, name: str = "guidance_scale", maximum: float | None = None) -> float:
    """w must be a finite number ≥ 0 (and ≤ ``maximum`` where one is given, as the app does)."""
    return check_number(name, guidance_scale, 0.0, maximum)


def prepare_class_labels(
    unet, class_labels: int | Sequence[int] | torch.Tensor | None, batch_size: int, device: torch.device
) -> torch.Tensor | None:
    """One label per sample as a long tensor; None for an unconditional UNet.

    ``class_labels=None`` on a conditional UNet gives the null label (unconditional sampling). A label may be
    any class 0..num_classes−1 or the null label num_classes itself.
    """
    if num_class_embeds(unet) is None:
        if class_labels is not None:
            raise ValueError(
                "class_labels were given but the unet is unconditional (its config has no num_class_embeds)."
            )
        return None
    null = null_class_label(unet)
    if class_labels is None:
        return torch.full((batch_size,), null, dtype=torch.long, device=device)
    if isinstance(class_labels, bool):
        raise ValueError(f"class_labels must be integers, got {class_labels!r}.")
    labels = torch.as_tensor(class_labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"class_labels must be integers, got dtype {labels.dtype}.")
    labels = labels.to(dtype=torch.long).flatten()
    if labels.numel() == 1:
        labels = labels.expand(batch_size)
    if labels.numel() != batch_size:
        raise ValueError(f"class_labels must be one label or {batch_size} (batch_size) labels, got {labels.numel()}.")
    if labels.min() < 0 or labels.max() > null:
        raise ValueError(
            f"class_labels must lie in [0, {null - 1}] (or {null}, the null label), got {labels.tolist()}."
        )
    return labels.to(device).contiguous()


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuideThreading:
    """Whether the guide's pass runs in a second thread beside the main network's, and why."""

    beside: bool
    reason: str


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS tells it, else the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def guide_beside_main(device: torch.device) -> GuideThreading:
    """Two passes side by side only where they do not fight over cores: on a CPU with at least twice torch's
    intra-op threads available (a GPU runs its passes one after another on one stream anyway; two multi-threaded
    passes on too few cores would oversubscribe them, and a spinning thread pool then runs several times slower)."""
    cores, threads = available_cores(), torch.get_num_threads()
    if device.type != "cpu":
        return _logged(GuideThreading(False, f"{device.type}: the passes queue on one device"))
    if cores < 2 * threads:
        return _logged(GuideThreading(False, f"{threads} torch threads on {cores} cores: no idle core for the guide"))
    return _logged(GuideThreading(True, f"{threads} torch thread(s) per pass on {cores} cores: the guide runs beside"))


@cache
def _logged(choice: GuideThreading) -> GuideThreading:
    logger.info("autoguidance passes %s: %s", "side by side" if choice.beside else "one after another", choice.reason)
    return choice


@cache
def _guide_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=available_cores(), thread_name_prefix="guide-pass")


def in_this_threads_modes(work: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``work`` wrapped to run in another thread under this thread's grad, inference and CPU autocast modes (torch
    keeps them per thread: a fresh thread would track gradients and sample in fp32)."""
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    autocast, dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def run() -> torch.Tensor:
        with (
            torch.inference_mode(inference),
            torch.set_grad_enabled(grad),
            torch.autocast("cpu", dtype=dtype, enabled=autocast),
        ):
            return work()

    return run


def guide_and_main(guide_pass: Callable[[], torch.Tensor], main_pass: Callable[[], torch.Tensor], device):
    """(guide_pass(), main_pass()): side by side where :func:`guide_beside_main` allows, else one after another.

    The step never waits for a guide pass that has not started: when every worker is busy (other requests' guides),
    the queued pass is taken back and run here, after the main one."""
    if not guide_beside_main(torch.device(device)).beside:
        return guide_pass(), main_pass()
    guide = _guide_pool().submit(in_this_threads_modes(guide_pass))
    try:
        main = main_pass()
    except BaseException:
        if not guide.cancel():
            wait([guide])  # a started pass ends before the error leaves the step: no pass outlives its step
        raise
    if guide.cancel():  # not started yet: run it here rather than wait in line
        return guide_pass(), main
    return guide.result(), main


def guided_model_output(
    unet,
    sample: torch.Tensor,
    timestep: torch.Tensor,
    class_labels: torch.Tensor | None,
    guidance_scale: float,
    guide_unet=None,
    autoguidance_scale: float = 1.0,
) -> torch.Tensor:
    """The UNet's output at z_t, guided when a class is asked for and w ≠ 1, or autoguided by ``guide_unet``.

    Both classifier-free branches run in one batched UNet call. w = 1 (or no label, or an unconditional UNet) runs
    only the conditional branch and w = 0 only the unconditional one, so these equal plain sampling exactly
    (as do labels that are all the null label, where both branches coincide). Likewise autoguidance with w = 1
    (or no guide) runs the main UNet alone.
    When the UNet also predicts a variance (twice the channels), only the noise half is guided.
    """
    if class_labels is None:
        if guide_unet is None or autoguidance_scale == 1.0:
            return unet(sample, timestep).sample
        guide, main = guide_and_main(
            lambda: guide_unet(sample, timestep).sample, lambda: unet(sample, timestep).sample, sample.device
        )
        channels = sample.shape[1]
        guided = autoguidance(guide[:, :channels], main[:, :channels], autoguidance_scale)
        return torch.cat([guided, main[:, channels:]], dim=1) if main.shape[1] > channels else guided
    null = null_class_label(unet)
    if guidance_scale == 1.0 or bool((class_labels == null).all()):
        return unet(sample, timestep, class_labels=class_labels).sample
    if guidance_scale == 0.0:
        return unet(sample, timestep, class_labels=torch.full_like(class_labels, null)).sample
    batch = sample.shape[0]
    both = unet(
        torch.cat([sample, sample]),
        timestep,
        class_labels=torch.cat([class_labels, torch.full_like(class_labels, null)]),
    ).sample
    cond, uncond = both[:batch], both[batch:]
    channels = sample.shape[1]
    guided = classifier_free_guidance(uncond[:, :channels], cond[:, :channels], guidance_scale)
    return torch.cat([guided, cond[:, channels:]], dim=1) if cond.shape[1] > channels else guided
