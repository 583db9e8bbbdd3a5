"""diffusers' entry point to this folder's code, which runs this file on
`DiffusionPipeline.from_pretrained(folder_or_repo_id, trust_remote_code=True)`.

Written by the VAE & diffusion playground's `pipelines/hub_code.py`; do not edit. The other .py files
here are that project's own `pipelines/` modules, unchanged. diffusers copies into its module cache only
the files an entry module imports directly (`from .name import ...`), not the files those import in turn,
so each one is imported here."""

from .carried_components import __name__ as _carried_components
from .checks import __name__ as _checks
from .distributions import __name__ as _distributions
from .folder_checks import __name__ as _folder_checks
from .hub_code import __name__ as _hub_code
from .interpolation import __name__ as _interpolation
from .loading import __name__ as _loading
from .pipeline_vae import VAEPipeline
from .vae import VAE

__all__ = ["VAE", "VAEPipeline"]
# the helper modules, one per file
CARRIED_MODULES = (
    _carried_components,
    _checks,
    _distributions,
    _folder_checks,
    _hub_code,
    _interpolation,
    _loading,
)
