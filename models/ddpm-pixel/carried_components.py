"""Components passed to diffusers' ``from_pretrained`` replace the saved ones, also where a component's class is the
code a folder carries.

A folder names a component of ours as ``["hub_vae", "VAE"]``: a file in the component's folder that diffusers runs
with ``trust_remote_code=True``. diffusers checks a component passed to ``from_pretrained`` against the saved entry's
library, which it resolves only among the libraries it knows or the modules already imported
(``diffusers.pipelines.pipeline_loading_utils._get_library_or_raise``), so it refuses ``vae=...`` for such an entry.
By then the pipeline's own module has imported the class: naming that module instead (what diffusers'
``save_pretrained`` records for a class defined outside its libraries) lets diffusers both load the saved component
and check a passed one, with no file run twice and nothing imported by name from the folder.
"""

from __future__ import annotations

import sys


def imported_module_defining(package: str, class_name: str) -> str | None:
    """The already-imported module of ``package`` that defines class ``class_name`` (None if none does)."""
    for name, module in list(sys.modules.items()):
        if name.startswith(package + ".") and module is not None:
            found = vars(module).get(class_name)
            if isinstance(found, type) and found.__module__ == name:
                return name
    return None


def resolved_entry(package: str, entry):
    """model_index.json's ``[library, class]`` with a library that is no imported module (a folder's entry file)
    replaced by the imported module of ``package`` that defines the class; any other entry as it is."""
    if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and all(isinstance(part, str) for part in entry)):
        return entry
    library, class_name = entry
    if library in sys.modules:
        return entry
    module = imported_module_defining(package, class_name)
    return entry if module is None else [module, class_name]


class CarriedComponentsMixin:
    """Put before DiffusionPipeline: diffusers' ``from_pretrained`` reads the component entries through
    ``extract_init_dict`` of the pipeline class it loads, which this resolves (:func:`resolved_entry`)."""

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        init_dict, unused_kwargs, hidden_dict = super().extract_init_dict(config_dict, **kwargs)
        package = cls.__module__.rpartition(".")[0]
        return {name: resolved_entry(package, entry) for name, entry in init_dict.items()}, unused_kwargs, hidden_dict
