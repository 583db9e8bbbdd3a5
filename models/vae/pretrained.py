"""The project's ``from_pretrained`` and ``save_pretrained`` on every pipeline, without the loader itself.

A Hub repository carries this file but not the loader, folder checks and code writer it calls (``loading.py``,
``folder_checks.py``, ``hub_code.py``): diffusers' route, ``DiffusionPipeline.from_pretrained(...,
trust_remote_code=True)``, never calls these two methods, so a reviewer of the repository reads only the code that
runs. They import the project's modules when called, in the project.
"""

import importlib


def _project_module(name: str):
    """The project's ``pipelines.<name>``; a clear error in a folder's copy of the code, which does not carry it."""
    try:
        return importlib.import_module(f".{name}", __package__)
    except ModuleNotFoundError:
        raise ImportError(
            f"this copy of the code does not carry the project's {name}.py: load the folder with "
            "diffusers.DiffusionPipeline.from_pretrained(..., trust_remote_code=True) and save it with diffusers."
        ) from None


class SafeFromPretrainedMixin:
    """``from_pretrained`` that checks the folder and loads safetensors only, never running the folder's code
    (``pipelines/loading.py``); ``save_pretrained`` that writes the code diffusers' route needs
    (``pipelines/hub_code.py``). Put it before DiffusionPipeline."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        return _project_module("loading").safe_from_pretrained(cls, pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """diffusers' save_pretrained (safetensors), then the code that lets plain diffusers load the folder with
        ``trust_remote_code=True``. Publish with ``training.publish``."""
        if kwargs.pop("push_to_hub", False):
            raise ValueError("push_to_hub is not supported here; publish with `python -m training.publish`.")
        write_hub_code = _project_module("hub_code").write_hub_code
        super().save_pretrained(save_directory, **kwargs)
        classes = {name: None if c is None else type(c) for name, c in self.components.items()}
        write_hub_code(save_directory, type(self), classes)
