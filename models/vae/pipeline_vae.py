"""VAE pipeline: samples from the prior, reconstructions, latent interpolations, traversals and 2-D latent maps.

Every image shown is the mean of p(x | z) (``vae.decode(z).sample``). Images go in as PIL images, numpy arrays
or tensors in [0, 1] (uint8 in 0–255 is also accepted); see :meth:`VAEPipeline.prepare_images`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import PIL.Image
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from . import interpolation
from .carried_components import CarriedComponentsMixin
from .checks import finite_float, is_int
from .pretrained import SafeFromPretrainedMixin
from .vae import LATENT_CHOICES, VAE, LatentChoice

OutputType = Literal["pil", "np", "pt"]
InterpolationMethod = Literal["linear", "slerp"]
Directions = Literal["axes", "pca"]
OUTPUT_TYPES = ("pil", "np", "pt")
INTERPOLATION_METHODS = ("linear", "slerp")
DIRECTIONS = ("axes", "pca")
DECODE_BATCH_SIZE = 256  # latents decoded at a time
ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | Sequence[PIL.Image.Image | np.ndarray | torch.Tensor]


@dataclass
class VAEPipelineOutput(BaseOutput):
    """``images``: PIL images, a float array (N, H, W, C) in [0, 1] or a tensor (N, C, H, W); ``latents``: the z."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    latents: torch.Tensor | None = None


def principal_directions(points: torch.Tensor, num: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PCA of ``points`` (N, D): (mean (D,), the first ``num`` unit directions (num, D), the std along each (num,)).

    Each direction's sign is fixed so that its largest-magnitude component is positive (SVD's sign is arbitrary).
    """
    if points.ndim != 2 or points.shape[0] <= num or points.shape[1] < num:
        raise ValueError(f"points must be (N, D) with N > {num} and D >= {num}, got shape {tuple(points.shape)}.")
    center = points.mean(dim=0)
    _, singular_values, vh = torch.linalg.svd(points - center, full_matrices=False)
    directions = vh[:num]
    signs = torch.sign(directions.gather(1, directions.abs().argmax(dim=1, keepdim=True)))
    stds = singular_values[:num] / math.sqrt(points.shape[0] - 1)  # std along direction i = s_i / √(N − 1)
    return center, directions * signs, stds


class VAEPipeline(SafeFromPretrainedMixin, CarriedComponentsMixin, DiffusionPipeline):
    """Pictures of a trained :class:`~pipelines.vae.VAE`'s latent space."""

    model_cpu_offload_seq = "vae"

    def __init__(self, vae: VAE):
        super().__init__()
        if vae is None:
            raise ValueError("VAEPipeline needs a vae (a pipelines.vae.VAE); got None.")
        self.register_modules(vae=vae)
        self.image_processor = VaeImageProcessor(do_resize=False, do_normalize=False)

    # ---------------------------------------------------------------- inputs and outputs

    def prepare_images(self, images: ImageInput, name: str = "images") -> torch.Tensor:
        """Images as a float tensor (N, C, H, W) in [0, 1] on the pipeline's device.

        Accepts a PIL image; a numpy array (H, W), (N, H, W), (H, W, C) or (N, H, W, C); a tensor (H, W),
        (N, H, W) for one channel / (C, H, W) for several, or (N, C, H, W); or a list of these. uint8 is read as
        0–255, other dtypes must already lie in [0, 1].
        """
        channels = self.vae.config.in_channels
        if isinstance(images, (list, tuple)):
            if len(images) == 0:
                raise ValueError(f"{name} is an empty list.")
            return torch.cat([self.prepare_images(image, name) for image in images])
        if isinstance(images, PIL.Image.Image):
            if channels not in (1, 3):
                raise ValueError(f"{name}: PIL images need a VAE with 1 or 3 channels, this one has {channels}.")
            images = np.asarray(images.convert("L" if channels == 1 else "RGB"))
        if isinstance(images, np.ndarray):
            if images.ndim == 3 and not (channels > 1 and images.shape[-1] == channels):
                images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
            if images.ndim in (2, 3):
                images = images.reshape(1, *images.shape[:2], -1)  # one image -> (1, H, W, C)
            if images.ndim != 4:
                raise ValueError(
                    f"{name} must be a numpy array (H, W), (N, H, W) or (N, H, W, C), got shape {images.shape}."
                )
            if not (np.issubdtype(images.dtype, np.number) or images.dtype == bool):
                raise ValueError(f"{name} must hold numbers, got dtype {images.dtype}.")
            images = torch.tensor(images).permute(0, 3, 1, 2)  # a copy: the array may be read-only
        elif isinstance(images, torch.Tensor):
            if images.ndim == 2:
                images = images[None, None]
            elif images.ndim == 3:
                images = images.unsqueeze(1 if channels == 1 else 0)
            if images.ndim != 4:
                shapes = "(H, W), (N, H, W), (C, H, W) or (N, C, H, W)"
                raise ValueError(f"{name} must be a tensor {shapes}, got shape {tuple(images.shape)}.")
        else:
            kinds = "a PIL image, a numpy array, a torch tensor or a list of them"
            raise ValueError(f"{name} must be {kinds}, got {type(images).__name__}.")
        images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        self.vae.check_images(images, name)
        return images.to(self.device)

    def _postprocess(self, images: torch.Tensor, latents: torch.Tensor, output_type: str, return_dict: bool):
        images = self.image_processor.postprocess(images.float(), output_type=output_type)
        return VAEPipelineOutput(images=images, latents=latents) if return_dict else (images,)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.vae.decode(chunk).sample for chunk in latents.split(DECODE_BATCH_SIZE)])

    @staticmethod
    def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {value!r}.")

    @staticmethod
    def _check_positive_int(name: str, value: int, minimum: int = 1) -> None:
        if not is_int(value) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")

    def _single_mean(self, image: ImageInput, name: str) -> torch.Tensor:
        means = self.encode_means(image, name=name)
        if means.shape[0] != 1:
            raise ValueError(f"{name} must be a single image, got {means.shape[0]}.")
        return means[0]

    # ---------------------------------------------------------------- latent-space pictures

    @torch.no_grad()
    def encode_means(self, images: ImageInput, batch_size: int = 256, name: str = "images") -> torch.Tensor:
        """The posterior means μ(x), shape (N, *vae.latent_shape), float32."""
        self._check_positive_int("batch_size", batch_size)
        x = self.prepare_images(images, name)
        return torch.cat([self.vae.encode(chunk).latent_dist.mean for chunk in x.split(batch_size)])

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: OutputType = "pil",
        return_dict: bool = True,
    ) -> VAEPipelineOutput | tuple:
        """New images: z ~ p(z) = N(0, I) (or the given ``latents``), then the mean of p(x | z)."""
        self._check_choice("output_type", output_type, OUTPUT_TYPES)
        self._check_positive_int("batch_size", batch_size)
        if latents is None:
            latents = randn_tensor(
                (batch_size, *self.vae.latent_shape), generator=generator, device=self.device, dtype=torch.float32
            )
        else:
            self.vae.check_latents(latents, "latents")
            latents = latents.to(self.device, torch.float32)
        return self._postprocess(self._decode(latents), latents, output_type, return_dict)

    @torch.no_grad()
    def reconstruct(
        self,
        images: ImageInput,
        latent: LatentChoice = "mode",
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: OutputType = "pil",
        return_dict: bool = True,
    ) -> VAEPipelineOutput | tuple:
        """x → z (μ for ``latent="mode"``, a draw from q(z | x) for ``"sample"``) → the mean of p(x | z)."""
        self._check_choice("output_type", output_type, OUTPUT_TYPES)
        self._check_choice("latent", latent, LATENT_CHOICES)
        posterior = self.vae.encode(self.prepare_images(images)).latent_dist
        latents = posterior.mode() if latent == "mode" else posterior.sample(generator)
        return self._postprocess(self._decode(latents), latents, output_type, return_dict)

    @torch.no_grad()
    def interpolate(
        self,
        image_a: ImageInput,
        image_b: ImageInput,
        num_frames: int = 8,
        method: InterpolationMethod = "linear",
        output_type: OutputType = "pil",
        return_dict: bool = True,
    ) -> VAEPipelineOutput | tuple:
        """Decode ``num_frames`` evenly spaced points on the path from μ(image_a) to μ(image_b), both included."""
        self._check_choice("output_type", output_type, OUTPUT_TYPES)
        self._check_choice("method", method, INTERPOLATION_METHODS)
        self._check_positive_int("num_frames", num_frames, minimum=2)
        z_a, z_b = self._single_mean(image_a, "image_a"), self._single_mean(image_b, "image_b")
        fractions = torch.linspace(0.0, 1.0, num_frames)
        latents = (interpolation.lerp if method == "linear" else interpolation.slerp)(z_a, z_b, fractions)
        return self._postprocess(self._decode(latents), latents, output_type, return_dict)

    @torch.no_grad()
    def traverse(
        self,
        image: ImageInput,
        dim: int,
        values: Sequence[float] | np.ndarray | torch.Tensor,
        output_type: OutputType = "pil",
        return_dict: bool = True,
    ) -> VAEPipelineOutput | tuple:
        """Set latent coordinate ``dim`` (index into the flattened latent) of μ(image) to each of ``values``."""
        self._check_choice("output_type", output_type, OUTPUT_TYPES)
        z = self._single_mean(image, "image").flatten()
        if not is_int(dim) or not 0 <= dim < z.numel():
            raise ValueError(f"dim must be an integer in [0, {z.numel()}), got {dim!r}.")
        try:
            values = values.detach().cpu() if isinstance(values, torch.Tensor) else values
            values = torch.as_tensor(np.asarray(values, dtype=np.float32))
        except (TypeError, ValueError):
            values = None
        if values is None or values.ndim != 1 or values.numel() == 0 or not torch.isfinite(values).all():
            raise ValueError("values must be a non-empty 1-D sequence of finite numbers.")
        latents = z.repeat(values.numel(), 1)
        latents[:, dim] = values.to(latents)
        latents = latents.view(-1, *self.vae.latent_shape)
        return self._postprocess(self._decode(latents), latents, output_type, return_dict)

    @torch.no_grad()
    def latent_map(
        self,
        grid_size: int = 10,
        span: float = 3.0,
        dims: tuple[int, int] = (0, 1),
        directions: Directions = "axes",
        data: ImageInput | None = None,
        output_type: OutputType = "pil",
        return_dict: bool = True,
    ) -> VAEPipelineOutput | tuple:
        """Decode a ``grid_size``² grid over a plane of latent space, row-major, top row = largest second coordinate.

        ``directions="axes"``: latent axes ``dims`` (flattened indices), ``span`` in prior standard deviations,
        centred on 0 or on the mean of μ(``data``). ``"pca"``: principal directions ``dims`` of μ(``data``),
        ``span`` in the data's standard deviations along each, centred on the data's mean.
        """
        self._check_choice("output_type", output_type, OUTPUT_TYPES)
        self._check_choice("directions", directions, DIRECTIONS)
        self._check_positive_int("grid_size", grid_size, minimum=2)
        if finite_float(span) is None or span <= 0:
            raise ValueError(f"span must be a positive finite number, got {span!r}.")
        if len(dims) != 2 or any(not is_int(d) or d < 0 for d in dims) or dims[0] == dims[1]:
            raise ValueError(f"dims must be two different non-negative integers, got {dims!r}.")
        size = math.prod(self.vae.latent_shape)
        means = None if data is None else self.encode_means(data, name="data").flatten(1)
        if directions == "pca":
            if means is None or means.shape[0] <= max(dims) + 1 or means.shape[1] <= max(dims):
                raise ValueError(
                    f"directions='pca' needs data of more than {max(dims) + 1} images, and dims below the latent "
                    f"size {size}; got dims={dims!r}."
                )
            center, basis, scales = principal_directions(means, num=max(dims) + 1)
            basis, scales = basis[list(dims)], scales[list(dims)]
        else:
            if max(dims) >= size:
                raise ValueError(f"dims must index the {size} latent coordinates, got {dims!r}.")
            center = torch.zeros(size, device=self.device) if means is None else means.mean(dim=0)
            basis, scales = torch.eye(size, device=self.device)[list(dims)], torch.ones(2, device=self.device)
        steps = torch.linspace(-span, span, grid_size, device=self.device)
        v, u = torch.meshgrid(steps.flip(0), steps, indexing="ij")  # rows: second coordinate, top = +span
        coords = torch.stack([u.flatten(), v.flatten()], dim=1)  # (grid_size², 2)
        latents = (center + (coords * scales) @ basis).view(-1, *self.vae.latent_shape)  # z = c + Σ_i a_i s_i e_i
        return self._postprocess(self._decode(latents), latents, output_type, return_dict)
