"""For the app's tests and benchmark: tiny random models in the bundled layout, and `python app.py` on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch
from diffusers import UNet2DModel

from pipelines.pipeline_ddpm import DDPMPipeline
from pipelines.pipeline_latent_ddpm import LatentDDPMPipeline
from pipelines.pipeline_vae import VAEPipeline
from pipelines.scheduling_ddpm import DDPMScheduler
from pipelines.vae import VAE
from playground.models import CLASSIFIER_FOLDER, ROOT, SPECS
from training.classifier import DigitClassifier


def _unet(sample_size: int, channels: int, blocks: tuple[int, ...], num_class_embeds: int | None = None) -> UNet2DModel:
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=blocks,
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D",) * len(blocks),
        up_block_types=("UpBlock2D",) * len(blocks),
        num_class_embeds=num_class_embeds,
    ).eval()


def make_tiny_models(folder: str | Path, keys: tuple[str, ...] = tuple(SPECS)) -> Path:
    """Save random pixel/latent/conditional DDPMs and vector (β-)VAEs under ``folder`` (only ``keys``), and a random
    scoring classifier; the pixel DDPM ships a guide UNet for autoguidance, the latent one does not."""
    folder = Path(folder)
    torch.manual_seed(0)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    spatial = VAE(block_out_channels=(8, 8), latent_type="spatial", latent_channels=4, norm_num_groups=4).eval()
    builders = {
        "pixel": lambda: DDPMPipeline(
            _unet(28, 1, (8, 8)), scheduler, guide_unet=_unet(28, 1, (8,))
        ),  # with an autoguidance guide
        "latent": lambda: LatentDDPMPipeline(spatial, _unet(7, 4, (8,)), scheduler, None),
        "conditional": lambda: LatentDDPMPipeline(spatial, _unet(7, 4, (8,), num_class_embeds=11), scheduler, None),
        "vae": lambda: VAEPipeline(VAE(block_out_channels=(8, 8), latent_dim=16, norm_num_groups=4).eval()),
    }
    for key in ("vae-beta0.25", "vae-beta4"):  # β-VAEs: the same architecture, other (random) weights
        builders[key] = builders["vae"]
    for key in keys:
        builders[key]().save_pretrained(folder / SPECS[key].folder, safe_serialization=True)
    DigitClassifier(channels=4, feature_dim=8).save_pretrained(folder / CLASSIFIER_FOLDER, safe_serialization=True)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_app(
    models_dir: str | Path | None,
    log_path: str | Path,
    startup_timeout: float = 120.0,
    env: dict | None = None,
    root: str | Path = ROOT,
):
    """Start `python app.py` of the project at ``root`` on a free port (with ``models_dir`` if given); returns
    (process, url) once it serves."""
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    if models_dir is not None:
        env["PLAYGROUND_MODELS_DIR"] = str(models_dir)
    log_path = Path(log_path)
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, f"http://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"app.py did not serve within {startup_timeout} s:\n{log_path.read_text()}")


def stop_app(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
