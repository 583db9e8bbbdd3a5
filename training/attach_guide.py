"""Attach a guide UNet to a saved unconditional DDPM pipeline, for autoguidance (Karras et al. 2024,
https://arxiv.org/abs/2406.02507): ε̃ = ε_guide + w·(ε_main − ε_guide), see ``pipelines/guidance.py``.

The guide is a smaller, shorter-trained model of the same data, noise schedule and (for a latent model) VAE,
trained with ``training.train_ddpm`` like any other:

    python -m training.train_ddpm --output_dir runs/guide --block_out_channels 16,32,32 --layers_per_block 1 \\
        --attention_levels "" --max_minutes 12 ...
    python -m training.attach_guide models/ddpm-pixel runs/guide/model

The pipeline folder is rewritten with a ``guide_unet`` component (or written to --output).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from diffusers import UNet2DModel

from pipelines.guidance import check_guide

from .evaluate import load_pipeline

SCHEDULE_KEYS = (
    "num_train_timesteps",
    "beta_schedule",
    "beta_start",
    "beta_end",
    "trained_betas",
    "prediction_type",
    "rescale_betas_zero_snr",
)


def attach_guide(folder: str | Path, guide_folder: str | Path, output: str | Path | None = None) -> Path:
    folder, guide_folder = Path(folder), Path(guide_folder)
    pipe, guide_pipe = load_pipeline(folder), load_pipeline(guide_folder)
    if type(guide_pipe) is not type(pipe):
        raise ValueError(
            f"the guide is a {type(guide_pipe).__name__} but the model a {type(pipe).__name__}: both must sample the same space."
        )
    if not isinstance(getattr(pipe, "unet", None), UNet2DModel):
        raise ValueError(f"{folder} holds no UNet2DModel to guide (a DDPM or latent DDPM pipeline is needed).")
    check_guide(pipe.unet, guide_pipe.unet)
    differ = [k for k in SCHEDULE_KEYS if pipe.scheduler.config.get(k) != guide_pipe.scheduler.config.get(k)]
    if differ:
        raise ValueError(
            f"the guide was trained with another noise schedule ({', '.join(differ)} differ): it must predict at the same z_t."
        )
    if hasattr(pipe, "vae"):
        same = pipe.vae.config.scaling_factor == guide_pipe.vae.config.scaling_factor and all(
            torch.equal(a, b)
            for a, b in zip(pipe.vae.state_dict().values(), guide_pipe.vae.state_dict().values(), strict=True)
        )
        if not same:
            raise ValueError(
                "the guide was trained on another VAE's latents (or another latent scaling): retrain it with this model's --vae."
            )
    pipe.register_modules(guide_unet=guide_pipe.unet)
    target = Path(output) if output else folder
    pipe.save_pretrained(target, safe_serialization=True)
    return target


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="the saved unconditional DDPM or latent DDPM pipeline to guide")
    parser.add_argument(
        "guide", help="the saved pipeline of the guide (same kind, schedule and VAE; smaller and shorter-trained)"
    )
    parser.add_argument("--output", help="write the guided pipeline here instead of rewriting FOLDER")
    args = parser.parse_args(argv)
    target = attach_guide(args.folder, args.guide, args.output)
    print(f"Wrote {target} with a guide_unet; sample with autoguidance_scale > 1.")
    return target


if __name__ == "__main__":
    main(sys.argv[1:])
