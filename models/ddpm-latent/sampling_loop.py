"""The reverse-diffusion loop shared by every pipeline: z_T ~ N(0, I), then z_t → z_{t'} by the scheduler.

The pixel, latent and inpainting pipelines all sample through :meth:`DenoisingLoopMixin.denoise`; they differ
only in what a step does around the scheduler (inpainting pastes the known region back) and in how the final
z_0 becomes an image. Works with any diffusers-style scheduler (ours or diffusers' DDPM/DDIM/...).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from . import guidance, schedules
from .checks import check_number, is_int, is_positive_int
from .guidance import (
    guided_model_output,
    prepare_class_labels,
    validate_guidance_interval,
    validate_guidance_scale,
)
from .precision import Precision, autocast, check_precision

OutputType = Literal["pil", "np", "pt", "latent"]
OUTPUT_TYPES = ("pil", "np", "pt", "latent")


class TrajectoryPoint(NamedTuple):
    """One recorded step: the timestep t, z_t and the model's x̂_0 at z_t (CPU float32 tensors)."""

    timestep: int
    sample: torch.Tensor
    pred_original_sample: torch.Tensor | None


@dataclass
class SamplingPipelineOutput(ImagePipelineOutput):
    """``images`` as in diffusers' ImagePipelineOutput; ``trajectory`` when ``return_trajectory_every`` is set."""

    trajectory: list[TrajectoryPoint] | None = None


StepFunction = Callable[[torch.Tensor, int, torch.Tensor], "tuple[torch.Tensor, torch.Tensor | None]"]


@dataclass
class CallSetup:
    """What a pipeline call needs once its arguments are checked: labels, z_T and the scheduler's step options."""

    device: torch.device
    class_labels: torch.Tensor | None
    latents: torch.Tensor
    step_kwargs: dict


class DenoisingLoopMixin:
    """The one sampling loop, its call set-up, argument checks and output conversion, for pipelines with a ``unet``
    and a ``scheduler`` (and optionally a ``guide_unet``)."""

    _callback_tensor_inputs = ["latents", "pred_original_sample"]
    # the precision of a call that passes none: "loaded" (the networks' own dtype), or "bf16" autocast where an
    # application opts in for a CPU with native bf16 (pipelines/precision.py)
    default_precision: Precision = "loaded"

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """Set ``pipe._interrupt = True`` (e.g. from a callback) to stop after the current step."""
        return getattr(self, "_interrupt", False)

    def check_components(self) -> None:
        """A missing component (set to None after construction) is named in a ValueError, not an AttributeError."""
        if getattr(self, "unet", None) is None:
            raise ValueError(f"{type(self).__name__} has no unet: build it with one.")
        if getattr(self, "scheduler", None) is None:
            raise ValueError(
                f"{type(self).__name__} has no scheduler: set one, e.g. "
                "pipe.scheduler = DDIMScheduler.from_config(saved_scheduler_config)."
            )

    def check_inputs(self, batch_size: int, output_type: str) -> None:
        """Checks beyond the loop's own (the latent pipeline adds the VAE's)."""

    def check_sampling_inputs(
        self,
        batch_size: int,
        num_inference_steps: int,
        eta: float,
        output_type: str,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs: list[str],
        return_trajectory_every: int | None,
    ) -> None:
        """Every argument the loop takes, checked up front: a ValueError names the one that is wrong."""
        if not is_positive_int(batch_size):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        num_train_timesteps = self.scheduler.config.num_train_timesteps
        if not is_int(num_inference_steps):
            raise ValueError(f"num_inference_steps must be an integer, got {num_inference_steps!r}.")
        if not 1 <= num_inference_steps <= num_train_timesteps:
            raise ValueError(
                f"num_inference_steps must lie in [1, {num_train_timesteps}] (the scheduler's num_train_timesteps), "
                f"got {num_inference_steps}."
            )
        check_number("eta (0: deterministic DDIM, 1: DDPM's ancestral noise)", eta, 0.0, 1.0)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise ValueError(f"callback_on_step_end must be callable, got {callback_on_step_end!r}.")
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, got {unknown}."
            )
        if return_trajectory_every is not None and not is_positive_int(return_trajectory_every):
            raise ValueError(
                f"return_trajectory_every must be a positive integer or None, got {return_trajectory_every!r}."
            )

    def set_up_call(
        self,
        *,
        batch_size: int,
        num_inference_steps: int,
        eta: float,
        class_labels,
        guidance_scale: float,
        autoguidance_scale: float,
        generator,
        output_type: str,
        precision: Precision | None,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs: list[str],
        return_trajectory_every: int | None,
        guidance_interval: tuple[float, float] | None = None,
        latents: torch.Tensor | None = None,
    ) -> CallSetup:
        """Shared by every pipeline's ``__call__``: check everything, then the timesteps, then z_T (drawn, or the
        ``latents`` given)."""
        self.check_components()
        self.check_sampling_inputs(
            batch_size,
            num_inference_steps,
            eta,
            output_type,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
            return_trajectory_every,
        )
        self.check_inputs(batch_size, output_type)
        self.check_latents(latents, batch_size)
        device = self._execution_device
        self.start_sampling(guidance_scale, precision, device, autoguidance_scale, batch_size, guidance_interval)
        labels = prepare_class_labels(self.unet, class_labels, batch_size, device)
        # 1. the timesteps to visit, T > … > 0; first, because sigma-based schedulers (Euler, LMS, ...) set their
        #    init_noise_sigma here
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        # 2. z_T ~ N(0, σ_init² I), or the z_T given
        latents = self.prepare_latents(batch_size, generator, device, latents)
        return CallSetup(device, labels, latents, self.prepare_extra_step_kwargs(generator, eta))

    def sample_shape(self, batch_size: int) -> tuple[int, ...]:
        """(batch, channels, height, width) of z_t, from the UNet's config."""
        size = self.unet.config.sample_size
        spatial = (size, size) if isinstance(size, int) else tuple(size)
        return (batch_size, self.unet.config.in_channels, *spatial)

    def check_latents(self, latents: torch.Tensor | None, batch_size: int) -> None:
        """A given z_T is a floating-point tensor of the sampled shape (batch_size, channels, height, width)."""
        if latents is None:
            return
        if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
            raise ValueError(f"latents must be a floating-point torch.Tensor, got {type(latents).__name__}.")
        expected = self.sample_shape(batch_size)
        if tuple(latents.shape) != expected:
            raise ValueError(
                f"Unexpected latents shape, got {tuple(latents.shape)}, expected {expected} (batch_size, the unet's "
                "in_channels and sample_size)."
            )

    def prepare_latents(
        self, batch_size: int, generator, device: torch.device, latents: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z_T ~ N(0, σ_init² I) (σ_init = 1 for DDPM/DDIM), drawn exactly as diffusers' pipelines draw it; or the
        ``latents`` given, a draw of N(0, I) in the UNet's dtype and device, scaled the same way."""
        if latents is None:
            shape = self.sample_shape(batch_size)
            latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        else:
            latents = latents.to(device=device, dtype=self.unet.dtype)
        return latents * self.scheduler.init_noise_sigma

    def prepare_extra_step_kwargs(self, generator, eta: float) -> dict:
        """Pass ``eta`` and ``generator`` to ``scheduler.step`` only where its signature takes them."""
        parameters = inspect.signature(self.scheduler.step).parameters
        extra = {}
        if "eta" in parameters:
            extra["eta"] = eta
        if "generator" in parameters:
            extra["generator"] = generator
        return extra

    def start_sampling(
        self,
        guidance_scale: float,
        precision: Precision | None,
        device: torch.device,
        autoguidance_scale: float = 1.0,
        batch_size: int = 1,
        guidance_interval: tuple[float, float] | None = None,
    ) -> None:
        """Per-call state read by the loop (and by callbacks, as in diffusers)."""
        self._guidance_scale = validate_guidance_scale(guidance_scale)
        self._autoguidance_scale = validate_guidance_scale(autoguidance_scale, "autoguidance_scale")
        if self._autoguidance_scale != 1.0 and getattr(self, "guide_unet", None) is None:
            raise ValueError(
                f"autoguidance_scale={autoguidance_scale} needs a guide_unet; this pipeline has none (use 1.0)."
            )
        self._guidance_interval = validate_guidance_interval(guidance_interval)
        if self._guidance_interval is not None and not hasattr(self.scheduler, "alphas_cumprod"):
            raise ValueError(
                f"guidance_interval needs the noise level σ_t of each step: {type(self.scheduler).__name__} has no "
                "alphas_cumprod (use None)."
            )
        self._precision = check_precision(self.default_precision if precision is None else precision)
        self._interrupt = False

    def guides_at_step(self, t: torch.Tensor) -> bool:
        """Whether guidance applies at timestep t: always without a guidance interval, else where σ_t lies in it."""
        interval = getattr(self, "_guidance_interval", None)
        if interval is None:
            return True
        alphas_cumprod = self.scheduler.alphas_cumprod
        index = min(max(round(float(t)), 0), len(alphas_cumprod) - 1)  # sigma-based schedulers' t can be fractional
        return guidance.guides_at(guidance.noise_level(alphas_cumprod[index]), interval)

    def denoising_step(
        self,
        latents: torch.Tensor,
        step_index: int,
        t: torch.Tensor,
        *,
        class_labels: torch.Tensor | None,
        step_kwargs: dict,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One reverse step z_t → z_{t'}; returns (z_{t'}, x̂_0)."""
        # 1. the network's output at z_t, guided (ε̃ = ε_uncond + w·(ε_cond − ε_uncond)) when a class is asked for,
        #    or autoguided (ε̃ = ε_guide + w·(ε_main − ε_guide)) by the pipeline's guide_unet; outside the
        #    guidance interval (when one is given) the main network alone (w = 1)
        model_input = self.scheduler.scale_model_input(latents, t)
        guided = self.guides_at_step(t)
        with autocast(getattr(self, "_precision", "loaded"), latents.device):
            model_output = guided_model_output(
                self.unet,
                model_input,
                t,
                class_labels,
                self.guidance_scale if guided else 1.0,
                guide_unet=getattr(self, "guide_unet", None),
                autoguidance_scale=getattr(self, "_autoguidance_scale", 1.0) if guided else 1.0,
            )
        model_output = model_output.to(latents.dtype)
        # 2. z_{t'} from the scheduler's reverse step (DDPM: z_{t−1} = μ̃_t(z_t, x̂_0) + σ_t·ε)
        out = self.scheduler.step(model_output, t, latents, **step_kwargs)
        # 3. x̂_0, from the scheduler when it returns it, else from the network's output at the (scaled) z_t
        #    (Ho et al. eq. 15)
        pred_original_sample = getattr(out, "pred_original_sample", None)
        if pred_original_sample is None and hasattr(self.scheduler, "alphas_cumprod"):
            alpha_prod_t = self.scheduler.alphas_cumprod.to(latents.device)[int(t)]
            pred_original_sample = schedules.predict_original_sample(
                model_output[:, : latents.shape[1]], model_input, alpha_prod_t, self.scheduler.config.prediction_type
            )
        return out.prev_sample, pred_original_sample

    def denoise(
        self,
        latents: torch.Tensor,
        step: StepFunction,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        return_trajectory_every: int | None = None,
    ) -> tuple[torch.Tensor, list[TrajectoryPoint] | None]:
        """Run ``step(z_t, i, t) -> (z_{t'}, x̂_0)`` over ``scheduler.timesteps`` (set beforehand).

        Returns z_0 and the trajectory recorded every ``return_trajectory_every`` steps.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        trajectory = [] if return_trajectory_every else None
        for i, t in enumerate(self.progress_bar(timesteps)):
            if self.interrupt:
                break
            # 1.-3. one reverse step z_t → z_{t'}
            prev_sample, pred_original_sample = step(latents, i, t)
            # 4. record (t, z_t, x̂_0) every k-th step and at the last one
            if trajectory is not None and (i % return_trajectory_every == 0 or i == len(timesteps) - 1):
                x0 = None if pred_original_sample is None else pred_original_sample.detach().float().cpu().clone()
                trajectory.append(TrajectoryPoint(int(t), latents.detach().float().cpu().clone(), x0))
            latents = prev_sample
            # 5. callback_on_step_end(pipe, i, t, kwargs) may replace the latents (diffusers' convention)
            if callback_on_step_end is not None:
                available = {"latents": latents, "pred_original_sample": pred_original_sample}
                callback_kwargs = {k: available[k] for k in callback_on_step_end_tensor_inputs}
                callback_outputs = callback_on_step_end(self, i, t, callback_kwargs) or {}
                latents = callback_outputs.pop("latents", latents)
        return latents, trajectory

    def finish(
        self, images: torch.Tensor, trajectory: list[TrajectoryPoint] | None, output_type: OutputType, return_dict: bool
    ):
        """Images in [0, 1] (N, C, H, W) → "pt" as is, "np" (N, H, W, C) float32, or "pil"; as diffusers does.
        For "latent" ``images`` are the final latents z_0, returned as they are."""
        if output_type not in ("pt", "latent"):
            images = images.float().cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        output = SamplingPipelineOutput(images=images, trajectory=trajectory)
        return output if return_dict else output.to_tuple()
