"""Inpainting with an unconditionally trained DDPM: RePaint (Lugmayr et al. 2022, https://arxiv.org/abs/2201.09865).

No retraining: at every reverse step the unknown region comes from the model, z_{t'}^unknown ~ p(z_{t'} | z_t),
and the known region from the forward process applied to the given image, z_{t'}^known ~ q(z_{t'} | x); the two
are joined through the mask (Algorithm 1). ``resample_steps`` U > 1 re-noises z_{t'} back to z_t and redoes the
step U times so that the two regions harmonise (RePaint's resampling with jump length 1).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from . import schedules
from .carried_components import CarriedComponentsMixin
from .checks import is_positive_int
from .data_range import to_image_range, to_model_range
from .guidance import check_guide
from .precision import Precision
from .pretrained import SafeFromPretrainedMixin
from .sampling_loop import DenoisingLoopMixin, OutputType, SamplingPipelineOutput

ImageInput = PIL.Image.Image | Sequence[PIL.Image.Image] | np.ndarray | torch.Tensor


def images_to_tensor(images: ImageInput, name: str, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """PIL image(s), an array or a tensor in [0, 1] (uint8 ones in 0..255) → float32 (N, C, H, W).

    Arrays and tensors may be (H, W), (C, H, W), (H, W, C), (N, C, H, W) or (N, H, W, C); the channel axis is
    the one of size ``channels`` (1 or the UNet's channel count). A ValueError names ``name`` otherwise.
    """
    if isinstance(images, PIL.Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)) and images and all(isinstance(im, PIL.Image.Image) for im in images):
        mode = "L" if channels == 1 else "RGB"
        images = np.stack([np.asarray(im.convert(mode)) for im in images])
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images.copy())
    if not isinstance(images, torch.Tensor):
        raise ValueError(
            f"{name} must be a PIL image, a list of them, a numpy array or a torch tensor, got {type(images).__name__}."
        )
    x = images.detach().cpu()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"{name} must have 2 to 4 dimensions, got shape {tuple(images.shape)}.")
    if x.shape[1] not in (1, channels) and x.shape[-1] in (1, channels):
        x = x.permute(0, 3, 1, 2)  # (N, H, W, C) → (N, C, H, W)
    if x.shape[1] not in (1, channels) or tuple(x.shape[2:]) != size:
        raise ValueError(
            f"{name} must be {size[0]}×{size[1]} pixels with 1 or {channels} channel(s) (the unet's sample size), "
            f"got shape {tuple(images.shape)}."
        )
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError(f"{name} must hold finite values in [0, 1].")
    return x.contiguous()


class DDPMInpaintPipeline(SafeFromPretrainedMixin, CarriedComponentsMixin, DenoisingLoopMixin, DiffusionPipeline):
    """Fill the masked-out pixels of images with a pixel-space DDPM (components ``unet``, ``scheduler`` and an
    optional ``guide_unet`` for autoguidance, as in :class:`~pipelines.pipeline_ddpm.DDPMPipeline`).

    ``mask`` is 1 on known pixels and 0 on those to fill (values are thresholded at 0.5). The returned images
    equal the input exactly on the known pixels.
    """

    model_cpu_offload_seq = "unet"
    _optional_components = ["scheduler", "guide_unet"]

    def __init__(self, unet: UNet2DModel, scheduler: SchedulerMixin, guide_unet: UNet2DModel | None):
        super().__init__()
        check_guide(unet, guide_unet)
        self.register_modules(unet=unet, scheduler=scheduler, guide_unet=guide_unet)

    def prepare_image_and_mask(self, image: ImageInput, mask: ImageInput) -> tuple[torch.Tensor, torch.Tensor]:
        """The image as (N, C, H, W) in [0, 1] and the mask as a boolean (N or 1, 1 or C, H, W), True = known."""
        channels, size = self.unet.config.in_channels, self.sample_shape(1)[2:]
        image = images_to_tensor(image, "image", channels, size)
        if image.shape[1] != channels:
            raise ValueError(f"image must have {channels} channel(s) (the unet's in_channels), got {image.shape[1]}.")
        mask = images_to_tensor(mask, "mask", channels, size)
        if mask.shape[0] not in (1, image.shape[0]):
            raise ValueError(f"mask must hold 1 or {image.shape[0]} (the image batch) masks, got {mask.shape[0]}.")
        return image, mask > 0.5

    def previous_timestep(self, step_index: int, t: torch.Tensor) -> int:
        """The timestep t' the scheduler steps to from t (−1 past the last step)."""
        if hasattr(self.scheduler, "previous_timestep"):
            return max(int(self.scheduler.previous_timestep(t)), -1)
        timesteps = self.scheduler.timesteps
        return int(timesteps[step_index + 1]) if step_index + 1 < len(timesteps) else -1

    def repaint_step(
        self,
        latents: torch.Tensor,
        step_index: int,
        t: torch.Tensor,
        *,
        known: torch.Tensor,
        mask: torch.Tensor,
        resample_steps: int,
        generator,
        class_labels: torch.Tensor | None,
        step_kwargs: dict,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One RePaint step z_t → z_{t'} (Algorithm 1), repeated ``resample_steps`` times with re-noising between."""
        prev_t = self.previous_timestep(step_index, t)
        batch = latents.shape[0]
        for u in range(resample_steps):
            # 1.-3. unknown region: z_{t'} ~ p(z_{t'} | z_t), the model's reverse step
            unknown, pred_original_sample = self.denoising_step(
                latents, step_index, t, class_labels=class_labels, step_kwargs=step_kwargs
            )
            # 4. known region: z_{t'} ~ q(z_{t'} | x) = N(√ᾱ_{t'}·x, (1 − ᾱ_{t'}) I); x itself after the last step
            if prev_t >= 0:
                noise = randn_tensor(known.shape, generator=generator, device=known.device, dtype=known.dtype)
                known_prev = self.scheduler.add_noise(known, noise, torch.full((batch,), prev_t, dtype=torch.long))
            else:
                known_prev = known
            # 5. z_{t'} = m ⊙ z_{t'}^known + (1 − m) ⊙ z_{t'}^unknown
            prev_sample = torch.where(mask, known_prev, unknown)
            # 6. resample: back to z_t ~ q(z_t | z_{t'}) = N(√(ᾱ_t/ᾱ_{t'})·z_{t'}, (1 − ᾱ_t/ᾱ_{t'}) I), then redo the step
            if u < resample_steps - 1 and prev_t >= 0:
                alphas_cumprod = self.scheduler.alphas_cumprod
                ratio = (alphas_cumprod[int(t)] / alphas_cumprod[prev_t]).reshape(1)  # ᾱ_t/ᾱ_{t'} plays ᾱ's role
                noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
                latents = schedules.closed_form_sample(prev_sample, noise, ratio, torch.zeros(batch, dtype=torch.long))
        return prev_sample, pred_original_sample

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput,
        mask: ImageInput,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 1000,
        eta: float = 0.0,
        resample_steps: int = 1,
        class_labels: int | Sequence[int] | torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        autoguidance_scale: float = 1.0,
        guidance_interval: tuple[float, float] | None = None,
        output_type: OutputType = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: list[str] = None,
        return_trajectory_every: int | None = None,
        precision: Precision | None = None,
    ) -> SamplingPipelineOutput | tuple:
        """Inpaint ``image`` where ``mask`` is 0.

        Args:
            image: images in [0, 1]: PIL, (N, C, H, W) tensor/array, or (N, H, W, C) array; H, W = the UNet's size.
            mask: same size, 1 = keep the pixel, 0 = fill it; one mask for all images or one per image.
            resample_steps: RePaint's U, the times each step is done (≥ 1; 1 = no resampling).
            The other arguments are :meth:`DDPMPipeline.__call__`'s (``autoguidance_scale`` needs a ``guide_unet``);
            the batch size is the image batch.
        """
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["latents"]
        if not is_positive_int(resample_steps):
            raise ValueError(f"resample_steps must be a positive integer, got {resample_steps!r}.")
        self.check_components()
        image, mask = self.prepare_image_and_mask(image, mask)
        setup = self.set_up_call(
            batch_size=image.shape[0],
            num_inference_steps=num_inference_steps,
            eta=eta,
            class_labels=class_labels,
            guidance_scale=guidance_scale,
            autoguidance_scale=autoguidance_scale,
            guidance_interval=guidance_interval,
            generator=generator,
            output_type=output_type,
            precision=precision,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            return_trajectory_every=return_trajectory_every,
        )
        # 1.-2. (in set_up_call) the timesteps to visit, then z_T ~ N(0, σ_init² I); the known image in [−1, 1]
        image, mask = image.to(setup.device), mask.to(setup.device)
        known = to_model_range(image).to(setup.latents.dtype)
        # 3. z_T → z_0 by RePaint steps
        step = functools.partial(
            self.repaint_step,
            known=known,
            mask=mask,
            resample_steps=resample_steps,
            generator=generator,
            class_labels=setup.class_labels,
            step_kwargs=setup.step_kwargs,
        )
        latents, trajectory = self.denoise(
            setup.latents,
            step,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            return_trajectory_every=return_trajectory_every,
        )
        if output_type == "latent":  # z_0 itself: its known region is x = 2·image − 1 after the last step
            return self.finish(latents, trajectory, output_type, return_dict)
        # 4. z_0 → image in [0, 1], with the known pixels pasted back exactly
        images = torch.where(mask, image, to_image_range(latents).to(image.dtype))
        return self.finish(images, trajectory, output_type, return_dict)
