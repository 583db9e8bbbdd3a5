"""Train the VAE by maximising the ELBO (β-VAE with --beta), with early stopping on the validation split.

accelerate launch -m training.train_vae --output_dir runs/vae --max_steps 3000
python -m training.train_vae --latent_type spatial --beta 0.25 --binarize none   # the latent-diffusion VAE
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipelines.pipeline_vae import VAEPipeline
from pipelines.vae import VAE

from .cli import run
from .config import VAETrainConfig, parse_config
from .data import BatchDraws, held_out_data, training_data
from .loop import TrainingTask, train

BINARIZE_SEED = 1234  # the fixed binarization of held-out digits used for every reported figure


def binarize(images: torch.Tensor, randomness: torch.Generator | BatchDraws) -> torch.Tensor:
    """Stochastic binarization x ~ Bernoulli(intensity), the usual binarized-MNIST protocol."""
    if isinstance(randomness, torch.Generator):
        return torch.bernoulli(images, generator=randomness)
    return (randomness.rand(*images.shape[1:]) < images).to(images.dtype)  # P(u < p) = p for u ~ U(0, 1)


class VAETask(TrainingTask):
    selection_metric = "val_loss"  # the training objective on the validation split: −ELBO when β = 1

    def __init__(self, cfg: VAETrainConfig):
        self.config = cfg
        self.data = training_data(cfg, cfg.split)
        val = held_out_data(cfg, "val")
        if val is None:  # a folder or Hub data set without validation_split: the last model is exported
            self.selection_metric, self.val_images = None, None
            return
        val = val.images
        self.val_images = (
            binarize(val, torch.Generator().manual_seed(BINARIZE_SEED)) if cfg.binarize == "dynamic" else val
        )

    def build_model(self) -> VAE:
        c, (channels, size, _) = self.config, self.data.image_shape
        return VAE(
            in_channels=channels,
            sample_size=size,
            block_out_channels=c.block_out_channels,
            latent_type=c.latent_type,
            latent_dim=c.latent_dim,
            latent_channels=c.latent_channels,
            likelihood=c.likelihood,
        )

    def loss(self, model, images, labels, draws, step):
        """−(E_q ln p(x|z) − β·KL(q(z|x) ‖ p(z))), β ramped up over kl_warmup_steps."""
        if self.config.binarize == "dynamic":
            images = binarize(images, draws)
        warm = self.config.kl_warmup_steps
        beta = self.config.beta * min(1.0, step / warm) if warm else self.config.beta
        return model.elbo(images, beta=beta, generator=draws.row_generators()).loss.mean()

    def evaluate(self, model) -> dict[str, float]:
        if self.val_images is None:
            return {}
        images = self.val_images.to(model.device)  # on a GPU the model is there, the held-out digits are not
        out = model.elbo(images, beta=self.config.beta, generator=torch.Generator().manual_seed(0))
        return {
            "val_loss": out.loss.mean().item(),
            "val_neg_elbo": -out.elbo.mean().item(),
            "val_kl": out.kl.mean().item(),
        }

    def sample_grid(self, model, generator):
        return VAEPipeline(vae=model)(
            batch_size=self.config.sample_grid_size, generator=generator, output_type="pt"
        ).images

    def export(self, model, path: Path) -> None:
        VAEPipeline(vae=model).save_pretrained(path, safe_serialization=True)


def main(argv: list[str] | None = None) -> Path:
    return train(VAETask(parse_config(VAETrainConfig, argv)))


if __name__ == "__main__":
    run(main)
