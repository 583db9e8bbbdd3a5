"""Latent DDPM (Rombach et al. 2022, https://arxiv.org/abs/2112.10752): diffusion in a VAE's latent space.

The UNet denoises latents z·s (s = ``vae.config.scaling_factor``) of the VAE's spatial latent map; the
sampled latents are divided by s and decoded. The sampling loop, guidance, callbacks and trajectory are
:class:`~pipelines.pipeline_ddpm.DDPMPipeline`'s; only the components and the decoding differ.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .pipeline_ddpm import DDPMPipeline
from .vae import VAE


class LatentDDPMPipeline(DDPMPipeline):
    """Generate images by sampling the VAE's latents with the UNet and decoding them with the VAE.

    ``vae`` follows diffusers' AutoencoderKL interface (``decode(z).sample`` in [0, 1], ``config.scaling_factor``);
    the latent shape sampled is the UNet's (in_channels, sample_size, sample_size), e.g. 2 × 7 × 7 for the bundled
    MNIST model. Call arguments are :meth:`DDPMPipeline.__call__`'s; ``.trajectory`` holds latents (decode them with
    :meth:`decode_latents` for display).
    """

    model_cpu_offload_seq = "unet->vae"

    def __init__(
        self,
        vae: VAE,
        unet: UNet2DModel,
        scheduler: SchedulerMixin,
        guide_unet: UNet2DModel | None,
        sampling: dict | None = None,
    ):
        super().__init__(unet, scheduler, guide_unet, sampling)
        self.register_modules(vae=vae)

    def check_inputs(self, batch_size: int, output_type: str) -> None:
        """A VAE to decode with (unless the latents themselves are asked for), whose latent shape the UNet samples."""
        if self.vae is None:
            if output_type == "latent":
                return
            raise ValueError(
                "LatentDDPMPipeline has no vae to decode its latents: give it one, or ask for output_type='latent'."
            )
        latent_shape = getattr(self.vae, "latent_shape", None)
        unet_shape = self.sample_shape(batch_size)[1:]
        if latent_shape is not None and tuple(latent_shape) != unet_shape:
            raise ValueError(
                f"unet samples latents of shape {unet_shape} (in_channels, sample_size) but the vae's latents are "
                f"{tuple(latent_shape)}: the unet must be trained on this vae's spatial latents."
            )

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents → images in [0, 1]: z = latents / s, then the VAE decoder's mean E[x | z]."""
        z = latents / self.vae.config.scaling_factor  # undo latents = z·s
        return self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(0, 1)
