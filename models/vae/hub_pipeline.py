"""diffusers' entry point to this folder's code, which runs this file on
`DiffusionPipeline.from_pretrained(folder_or_repo_id, trust_remote_code=True)`.

Written by the VAE & diffusion playground's `pipelines/hub_code.py`; do not edit. The other .py files
here are that project's own `pipelines/` modules, unchanged. diffusers copies into its module cache only
the files an entry module imports directly (`from .name import ...`), not the files those import in turn,
so each one is imported here."""

import diffusers

MIN_DIFFUSERS = (0, 37, 0)  # older versions cannot load this code
if tuple(int(part) for part in diffusers.__version__.split(".")[:3] if part.isdigit()) < MIN_DIFFUSERS:
    raise ImportError(
        f"this model's code needs diffusers >= 0.37.0, found {diffusers.__version__}: "
        "pip install -U 'diffusers>=0.37.0'"
    )

from .carried_components import __name__ as _carried_components
from .checks import __name__ as _checks
from .distributions import __name__ as _distributions
from .interpolation import __name__ as _interpolation
from .pipeline_vae import VAEPipeline
from .pretrained import __name__ as _pretrained
from .vae import VAE

__all__ = ["VAE", "VAEPipeline"]
# the helper modules, one per file
CARRIED_MODULES = (
    _carried_components,
    _checks,
    _distributions,
    _interpolation,
    _pretrained,
)
