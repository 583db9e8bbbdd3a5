"""Pixel-space DDPM sampling (Ho et al. 2020, https://arxiv.org/abs/2006.11239), optionally class-conditional.

A drop-in for diffusers' ``DDPMPipeline``: with the same UNet, scheduler and seed it returns the same images, in the
dtype the networks were loaded in. On top: classifier-free guidance for a class-conditional UNet, ``eta`` for DDIM,
step callbacks and the denoising trajectory (z_t and x̂_0 every k steps) for display.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from diffusers import DiffusionPipeline, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from . import ddim_inversion
from .carried_components import CarriedComponentsMixin
from .data_range import to_image_range
from .guidance import check_guide
from .precision import Precision
from .pretrained import SafeFromPretrainedMixin
from .sampling_loop import DenoisingLoopMixin, OutputType, SamplingPipelineOutput
from .sampling_settings import call_settings, check_sampling_settings


class DDPMPipeline(SafeFromPretrainedMixin, CarriedComponentsMixin, DenoisingLoopMixin, DiffusionPipeline):
    """Generate images with a UNet2DModel and a scheduler (ours by default; any diffusers scheduler works).

    For a class-conditional UNet (``num_class_embeds = num_classes + 1``, the last label meaning "no class"),
    ``class_labels`` picks the classes and ``guidance_scale`` w mixes ε̃ = ε_uncond + w·(ε_cond − ε_uncond).
    An unconditional UNet may come with a ``guide_unet`` (a smaller, shorter-trained model of the same data):
    ``autoguidance_scale`` w then mixes ε̃ = ε_guide + w·(ε_main − ε_guide) (Karras et al. 2024).
    """

    model_cpu_offload_seq = "unet"
    _optional_components = ["scheduler", "guide_unet"]

    # every component without a default, as diffusers' own pipelines declare them: diffusers' from_pretrained
    # replaces a saved component only by a passed one it counts as a component (no default), so that
    # ``from_pretrained(..., scheduler=..., guide_unet=None)`` is honoured
    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: SchedulerMixin,
        guide_unet: UNet2DModel | None,
        sampling: dict | None = None,
    ):
        super().__init__()
        check_guide(unet, guide_unet)
        self.register_modules(unet=unet, scheduler=scheduler, guide_unet=guide_unet)
        # how this model samples best: the defaults of __call__ (pipelines/sampling_settings.py)
        self.register_to_config(sampling=check_sampling_settings(sampling))

    @property
    def sampling_settings(self) -> dict:
        """The steps and guidance stored with the model (the sampler is ``self.scheduler``); {} where none are.
        Autoguidance goes with the guide: without a ``guide_unet`` (e.g. ``guide_unet=None`` passed) it is dropped."""
        settings = dict(self.config.get("sampling") or {})
        if getattr(self, "guide_unet", None) is None and "autoguidance_scale" in settings:
            del settings["autoguidance_scale"]
            if "guidance_scale" not in settings:  # the interval was the autoguidance's
                settings.pop("guidance_interval", None)
        return settings

    def invert(
        self,
        images: torch.Tensor,
        num_inference_steps: int | None = None,
        class_labels: int | Sequence[int] | torch.Tensor | None = None,
        guidance_scale: float | None = None,
        autoguidance_scale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        return_trajectory_every: int | None = None,
        precision: Precision | None = None,
    ) -> ddim_inversion.InversionOutput:
        """DDIM inversion: images (N, C, H, W) in [0, 1] → the z_T that ``self(latents=z_T, eta=0.0)`` with the same
        settings maps back to them (the scheduler must be a DDIM one; see :mod:`pipelines.ddim_inversion`)."""
        return ddim_inversion.invert(
            self,
            images,
            num_inference_steps=num_inference_steps,
            class_labels=class_labels,
            guidance_scale=guidance_scale,
            autoguidance_scale=autoguidance_scale,
            guidance_interval=guidance_interval,
            return_trajectory_every=return_trajectory_every,
            precision=precision,
        )

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """z_0 in [−1, 1] → images in [0, 1]."""
        return to_image_range(latents)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int | None = None,
        eta: float = 0.0,
        class_labels: int | Sequence[int] | torch.Tensor | None = None,
        guidance_scale: float | None = None,
        autoguidance_scale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        latents: torch.Tensor | None = None,
        output_type: OutputType = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: list[str] = None,
        return_trajectory_every: int | None = None,
        precision: Precision | None = None,
    ) -> SamplingPipelineOutput | tuple:
        """Sample ``batch_size`` images.

        Args:
            batch_size: number of images.
            generator: torch generator(s) for reproducible sampling.
            num_inference_steps: denoising steps, 1..num_train_timesteps; None: the model's stored steps (1000 where
                it stores none).
            eta: DDIM's noise scale η in [0, 1] (passed only to schedulers whose ``step`` takes it).
            class_labels: one class or one per image, for a class-conditional UNet; None samples unconditionally.
            guidance_scale: classifier-free guidance weight w ≥ 0; 1 is plain conditional sampling.
            autoguidance_scale: autoguidance weight w ≥ 0 (needs a ``guide_unet``); 1 is the main UNet alone.
            guidance_interval: (σ_low, σ_high) to guide (either kind) only at the steps whose noise level
                σ_t = √((1 − ᾱ_t)/ᾱ_t) lies in (σ_low, σ_high], the main UNet alone elsewhere (Kynkäänniemi et al.
                2024); None guides every step. When none of the three guidance arguments is given, they are the
                model's stored ones (:attr:`sampling_settings`), else 1.0, 1.0 and None where not given.
            latents: z_T to start from, (batch_size, channels, height, width) as the UNet samples, a draw of N(0, I)
                (e.g. from :meth:`invert`, or a path between two draws); None draws it from ``generator``.
            output_type: "pil", "np" (float (N, H, W, C) in [0, 1]), "pt" ((N, C, H, W) in [0, 1]) or "latent"
                (the final z_0, not decoded).
            return_dict: return a :class:`SamplingPipelineOutput` instead of a tuple.
            callback_on_step_end: ``f(pipe, step_index, timestep, callback_kwargs) -> dict`` after each step; it may
                return new ``latents`` or set ``pipe._interrupt = True`` to stop.
            callback_on_step_end_tensor_inputs: tensors passed in ``callback_kwargs`` ("latents", "pred_original_sample").
            return_trajectory_every: record (t, z_t, x̂_0) every k steps (and at the last) into ``.trajectory``.
            precision: "loaded" (the networks' own dtype, as loaded), "bf16" (bf16 autocast, for CPUs with native
                bf16) or None for ``pipe.default_precision`` ("loaded" unless set); see :mod:`pipelines.precision`.
        """
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["latents"]
        settings = call_settings(
            self.sampling_settings,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            autoguidance_scale=autoguidance_scale,
            guidance_interval=guidance_interval,
        )
        setup = self.set_up_call(
            batch_size=batch_size,
            eta=eta,
            class_labels=class_labels,
            latents=latents,
            **settings,
            generator=generator,
            output_type=output_type,
            precision=precision,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            return_trajectory_every=return_trajectory_every,
        )
        # 1.-2. (in set_up_call) the timesteps to visit, then z_T ~ N(0, σ_init² I)
        # 3. z_T → z_0, one reverse step per timestep
        step = functools.partial(self.denoising_step, class_labels=setup.class_labels, step_kwargs=setup.step_kwargs)
        latents, trajectory = self.denoise(
            setup.latents,
            step,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            return_trajectory_every=return_trajectory_every,
        )
        # 4. z_0 → image in [0, 1] (or z_0 itself for output_type="latent")
        images = latents if output_type == "latent" else self.decode_latents(latents)
        return self.finish(images, trajectory, output_type, return_dict)
