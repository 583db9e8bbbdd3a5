"""Train a DDPM on pixels or on VAE latents, unconditional or class-conditional (classifier-free guidance
by label dropout), with the ε-prediction loss of the notes (or x_0 / v prediction).

    accelerate launch -m training.train_ddpm --output_dir runs/ddpm --max_steps 20000
    python -m training.train_ddpm --config my-ddpm.yaml     # the same flags as a YAML file of your own
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

from pipelines import schedules
from pipelines.data_range import to_model_range
from pipelines.defaults import app_sampling_kwargs, clips_x0
from pipelines.distributions import DiagonalGaussian
from pipelines.scheduling_ddpm import DDPMScheduler

from .cli import run
from .config import DDPMTrainConfig, parse_config
from .data import BatchDraws, ImageData, LazyImages, check_labels, chunks, training_data
from .loop import TrainingTask, train


def build_unet(cfg: DDPMTrainConfig, sample_size: int, channels: int) -> UNet2DModel:
    """diffusers' UNet2DModel: one level per entry of block_out_channels, self-attention at attention_levels;
    a class embedding with num_classes + 1 rows (the last is "no class") for a conditional model."""
    levels = range(len(cfg.block_out_channels))
    down = tuple("AttnDownBlock2D" if i in cfg.attention_levels else "DownBlock2D" for i in levels)
    up = tuple("AttnUpBlock2D" if i in cfg.attention_levels else "UpBlock2D" for i in reversed(levels))
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        norm_num_groups=cfg.norm_num_groups,
        num_class_embeds=cfg.num_classes + 1 if cfg.num_classes else None,
    )


class DDPMTask(TrainingTask):
    def __init__(self, cfg: DDPMTrainConfig):
        self.config = cfg
        self.scheduler = DDPMScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_schedule=cfg.beta_schedule,
            prediction_type=cfg.prediction_type,
            clip_sample=clips_x0(latent=cfg.space == "latent"),  # saved in the model's scheduler config
        )
        data = training_data(cfg, cfg.split)
        if cfg.num_classes:
            check_labels(data, cfg.num_classes, cfg.data)
        self.vae = None
        if cfg.space == "latent":
            self.vae, data = self._encode(data)
        self.data = data

    def _encode(self, data: ImageData | LazyImages) -> tuple[torch.nn.Module, ImageData]:
        """Encode the data once into q(z|x) = N(μ, σ²), kept as (μ, ln σ²): the loop draws z per batch (a folder
        or Hub data set in chunks, each image at its centre crop). The scaling factor makes the latents
        unit-variance for the diffusion (as in latent diffusion)."""
        if not self.config.vae:
            raise ValueError("space='latent' needs --vae <folder of a trained VAE or VAE pipeline>.")
        from pipelines.vae import VAE

        path = Path(self.config.vae)
        vae = VAE.from_pretrained(path / "vae" if (path / "vae").is_dir() else path, use_safetensors=True).eval()
        with torch.no_grad():
            if isinstance(data, ImageData):
                posterior = vae.encode(data.images).latent_dist
                mean, logvar = posterior.mean, posterior.logvar
            else:
                moments = [vae.encode(images).latent_dist for images, _ in chunks(data, 256)]
                mean, logvar = torch.cat([m.mean for m in moments]), torch.cat([m.logvar for m in moments])
        variance = mean.var() + logvar.exp().mean()  # Var[z] = Var[μ] + E[σ²] (law of total variance)
        scaling = 1.0 / variance.sqrt().item()
        vae.register_to_config(scaling_factor=scaling)
        return vae, ImageData(torch.cat([mean, logvar], dim=1), data.labels)

    def build_model(self) -> UNet2DModel:
        shape = self.data.image_shape
        channels = shape[0] // 2 if self.vae is not None else shape[0]
        if not self.config.init_from:
            return build_unet(self.config, shape[-1], channels)
        path = Path(self.config.init_from)
        if not path.is_dir():
            raise ValueError(f"init_from={str(path)!r} is not a folder (a saved pipeline or UNet).")
        unet = UNet2DModel.from_pretrained(path / "unet" if (path / "unet").is_dir() else path, use_safetensors=True)
        expected = (channels, shape[-1], self.config.num_classes + 1 if self.config.num_classes else None)
        found = (unet.config.in_channels, unet.config.sample_size, unet.config.num_class_embeds)
        if found != expected:
            raise ValueError(
                f"init_from={str(path)!r} has (channels, size, class rows) {found}; this data needs {expected}."
            )
        return unet

    def loss(self, model, images, labels, draws, step):
        """The notes' loss ‖g_t[√ᾱ_t·x + √(1 − ᾱ_t)·ε] − ε‖² at a uniformly drawn t (or its x_0 / v variant),
        each example weighted by min-SNR-γ when snr_gamma > 0."""
        if self.vae is not None:
            posterior = DiagonalGaussian(*images.chunk(2, dim=1))  # q(z|x) = N(μ, σ²) encoded once
            images = posterior.sample(draws.row_generators()) * self.vae.config.scaling_factor  # z = μ + σ·ε, scaled
        else:
            images = to_model_range(images)
        noise = draws.randn(*images.shape[1:])
        t = draws.randint(self.config.num_train_timesteps)
        noisy = self.scheduler.add_noise(images, noise, t)
        class_labels = self._dropped_labels(labels, draws) if self.config.num_classes else None
        prediction = model(noisy, t, class_labels=class_labels).sample
        target = schedules.diffusion_loss_target(
            images, noise, self.scheduler.alphas_cumprod, t, self.config.prediction_type
        )
        if not self.config.snr_gamma:
            return F.mse_loss(prediction.float(), target)
        per_example = F.mse_loss(prediction.float(), target, reduction="none").flatten(1).mean(1)
        weight = schedules.min_snr_loss_weight(
            self.scheduler.alphas_cumprod, t, self.config.snr_gamma, self.config.prediction_type
        )
        return (weight * per_example).mean()

    def _dropped_labels(self, labels: torch.Tensor, draws: BatchDraws) -> torch.Tensor:
        """Replace a label by "no class" (index num_classes) with probability label_dropout (Ho & Salimans 2022)."""
        drop = draws.rand() < self.config.label_dropout
        return torch.where(drop, torch.full_like(labels, self.config.num_classes), labels)

    def _pipeline(self, model):
        from pipelines.scheduling_ddim import DDIMScheduler

        scheduler = DDIMScheduler.from_config(self.scheduler.config)
        if self.vae is not None:
            from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline

            return LatentDDPMPipeline(vae=self.vae, unet=model, scheduler=scheduler, guide_unet=None)
        from pipelines.pipeline_ddpm import DDPMPipeline

        return DDPMPipeline(unet=model, scheduler=scheduler, guide_unet=None)

    def sample_grid(self, model, generator):
        try:
            pipe = self._pipeline(model)
        except ImportError as err:  # the pipelines are optional for a grid
            print(f"(no sample grid: {err})")
            return None
        kwargs = app_sampling_kwargs(pipe)  # the app's default guidance weight for a class-conditional model
        if self.config.num_classes:
            kwargs["class_labels"] = torch.arange(self.config.sample_grid_size) % self.config.num_classes
        return pipe(
            batch_size=self.config.sample_grid_size,
            generator=generator,
            num_inference_steps=self.config.sample_steps,
            output_type="pt",
            **kwargs,
        ).images

    def export(self, model, path):
        """Save the pipeline with the training scheduler (DDPM); users can swap in DDIM at load time."""
        pipe = self._pipeline(model)
        pipe.scheduler = DDPMScheduler.from_config(self.scheduler.config)
        pipe.save_pretrained(path, safe_serialization=True)


def main(argv: list[str] | None = None) -> Path:
    cfg = parse_config(DDPMTrainConfig, argv)
    return train(DDPMTask(cfg))


if __name__ == "__main__":
    run(main)
