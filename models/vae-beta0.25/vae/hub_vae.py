"""diffusers loads the `vae` component's class, VAE, from this file (`trust_remote_code=True`).

Written by the VAE & diffusion playground's `pipelines/hub_code.py`; do not edit. The class is the one in
the folder root's `vae.py`, which `hub_pipeline.py` has already imported. It is looked up by module
name, not imported with `from .`, because diffusers copies the files a component's module imports from the
component's own folder, which holds no code but this file."""

import importlib

VAE = importlib.import_module(f"{__package__}.vae").VAE
