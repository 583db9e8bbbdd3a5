"""Loading a saved pipeline safely: safetensors weights only, with a clear error for a broken folder.

Every pipeline of this package inherits :class:`SafeFromPretrainedMixin`, whose ``from_pretrained`` resolves a
local folder or a Hub repo id (from the local cache when ``HF_HUB_OFFLINE=1``), checks the folder with
:func:`check_pipeline_folder` and only then hands it to diffusers with ``use_safetensors=True``. Pickle
weights (.bin/.pt/.ckpt/...) are refused before anything reads them.

model_index.json stores each component as ``[library, class]``. diffusers resolves a library other than
its own from ``sys.modules`` only; for our components the library is a module of this package (e.g.
``pipelines.scheduling_ddpm``), which the check imports so that loading works in a fresh process.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import torch

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MODEL_CONFIG = "config.json"
SCHEDULER_CONFIG = "scheduler_config.json"
OUR_PACKAGE = __name__.split(".")[0]
LOADABLE_LIBRARIES = ("diffusers", OUR_PACKAGE)
# Only these are fetched from the Hub: configs and safetensors weights, never pickles.
HUB_ALLOW_PATTERNS = ["model_index.json", "*.json", "*/*.json", "*.safetensors", "*/*.safetensors", "*.md"]


def _is_our_module(library: str) -> bool:
    return library == OUR_PACKAGE or library.startswith(OUR_PACKAGE + ".")


def resolve_pipeline_folder(
    pretrained_model_name_or_path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    local_files_only: bool | None = None,
    token: str | bool | None = None,
) -> Path:
    """A local folder as is; a Hub repo id through huggingface_hub (its local cache when offline)."""
    path = Path(pretrained_model_name_or_path)
    if path.is_dir():
        return path
    name = str(pretrained_model_name_or_path)
    if path.exists() or path.is_absolute() or name.startswith((".", "~")) or name.count("/") != 1:
        raise FileNotFoundError(
            f"pretrained_model_name_or_path {name!r} is not a folder (and not a Hub repo id 'user/name')."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        folder = snapshot_download(
            name,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=bool(local_files_only),
            token=token,
            allow_patterns=HUB_ALLOW_PATTERNS,
        )
    except HFValidationError as error:
        raise FileNotFoundError(
            f"pretrained_model_name_or_path {name!r} is not a folder nor a valid Hub repo id: {error}"
        ) from None
    except Exception as error:  # offline with nothing cached, unknown repo, no network, ...
        raise FileNotFoundError(
            f"pretrained_model_name_or_path {name!r} is not a local folder and could not be found on the Hub or in "
            f"the local Hugging Face cache ({type(error).__name__}: {error})."
        ) from None
    return Path(folder)


def check_pipeline_folder(path: str | os.PathLike, pipeline_class: type | None = None) -> dict:
    """Check a saved pipeline folder before loading it; returns its model_index.json.

    Raises FileNotFoundError for a missing folder, model_index.json, component folder, config or weights
    file, and ValueError for pickle weights anywhere in the folder, an unreadable model_index.json, a
    model_index.json naming another pipeline class, or a component from a library we do not load.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"pipeline folder {str(folder)!r} does not exist.")
    pickles = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ValueError(
            f"pipeline folder {str(folder)!r} holds pickle weights {pickles}; only safetensors weights are loaded "
            "(pickle files can run arbitrary code). Convert them to .safetensors and remove the pickle files."
        )
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise FileNotFoundError(f"pipeline folder {str(folder)!r} has no model_index.json (not a saved pipeline).")
    try:
        index = json.loads(index_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{index_file} is not valid JSON: {error}") from None
    if not isinstance(index, dict):
        raise ValueError(f"{index_file} must hold a JSON object, got {type(index).__name__}.")
    if pipeline_class is not None and index.get("_class_name") != pipeline_class.__name__:
        raise ValueError(
            f"{index_file} names the pipeline class {index.get('_class_name')!r}, expected {pipeline_class.__name__!r}."
        )
    components = {k: v for k, v in index.items() if not k.startswith("_") and isinstance(v, list)}
    if not components:
        raise ValueError(f"{index_file} lists no components.")
    for name, entry in components.items():
        if len(entry) != 2:
            raise ValueError(f"{index_file}: component {name!r} must be [library, class], got {entry}.")
        library, class_name = entry
        if library is None:
            continue  # a component saved as absent
        _check_component_class(index_file, name, library, class_name)
        _check_component_files(folder, name)
    return index


def _check_component_class(index_file: Path, name: str, library: str, class_name: str) -> None:
    """The component's class must come from diffusers or this package; our modules get imported here."""
    if library.split(".")[0] not in LOADABLE_LIBRARIES:
        raise ValueError(
            f"{index_file}: component {name!r} comes from library {library!r}; only {LOADABLE_LIBRARIES} are loaded."
        )
    try:
        module = importlib.import_module(library if _is_our_module(library) else "diffusers")
    except ImportError as error:
        raise ValueError(
            f"{index_file}: component {name!r} names library {library!r}, which cannot be imported: {error}"
        ) from None
    if not hasattr(module, class_name):
        raise ValueError(
            f"{index_file}: component {name!r} names class {class_name!r}, which {library!r} does not define."
        )


def _check_component_files(folder: Path, name: str) -> None:
    """A scheduler needs its config; a model needs its config and safetensors weights."""
    sub = folder / name
    if not sub.is_dir():
        raise FileNotFoundError(f"pipeline folder {str(folder)!r} has no folder for its component {name!r}.")
    if (sub / SCHEDULER_CONFIG).is_file():
        return
    if not (sub / MODEL_CONFIG).is_file():
        raise FileNotFoundError(f"component folder {str(sub)!r} has no {MODEL_CONFIG} or {SCHEDULER_CONFIG}.")
    if not any(p.name.endswith((".safetensors", ".safetensors.index.json")) for p in sub.iterdir()):
        raise FileNotFoundError(f"component folder {str(sub)!r} has no .safetensors weights.")


class SafeFromPretrainedMixin:
    """``from_pretrained`` that checks the folder first and loads safetensors only. Put it before DiffusionPipeline."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        if kwargs.get("use_safetensors") is False:
            raise ValueError("use_safetensors=False is not supported: these pipelines load safetensors weights only.")
        if kwargs.pop("custom_pipeline", None) is not None or kwargs.pop("trust_remote_code", False):
            raise ValueError("custom_pipeline / trust_remote_code are not supported: no code is loaded from a folder.")
        folder = resolve_pipeline_folder(
            pretrained_model_name_or_path,
            cache_dir=kwargs.pop("cache_dir", None),
            revision=kwargs.pop("revision", None),
            local_files_only=kwargs.pop("local_files_only", None),
            token=kwargs.pop("token", None),
        )
        check_pipeline_folder(folder, cls)
        kwargs["use_safetensors"] = True
        try:
            pipeline = super().from_pretrained(str(folder), **kwargs)
        except ValueError as error:  # e.g. a tensor of the wrong shape: say which folder
            raise ValueError(f"pipeline folder {str(folder)!r} could not be loaded: {error}") from None
        for name, component in pipeline.components.items():
            if isinstance(component, torch.nn.Module):
                check_weights_file(folder / name, component, kwargs.get("variant"))
                _own_weights(component)
        return pipeline


def check_weights_file(component_folder: Path, module: torch.nn.Module, variant: str | None = None) -> None:
    """The saved safetensors must hold exactly the module's tensors, with its shapes and a float dtype for float ones.

    diffusers only warns about missing tensors (left randomly initialised) and extra ones (ignored); a tampered
    file must instead be refused, with a ValueError naming the file and the tensors.
    """
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
    from safetensors import safe_open

    name = (
        SAFETENSORS_WEIGHTS_NAME
        if not variant
        else SAFETENSORS_WEIGHTS_NAME.replace(".safetensors", f".{variant}.safetensors")
    )
    weights = component_folder / name
    if not weights.is_file():
        return  # sharded weights: diffusers checks each shard's header
    with safe_open(str(weights), framework="pt") as file:
        names = file.keys()  # a safetensors file handle is not iterable: keys() lists its tensors
        saved = {key: (tuple(file.get_slice(key).get_shape()), file.get_slice(key).get_dtype()) for key in names}
    expected = module.state_dict()
    missing, extra = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
    wrong = sorted(
        key
        for key in set(expected) & set(saved)
        if saved[key][0] != tuple(expected[key].shape)
        or (expected[key].is_floating_point() and saved[key][1] not in ("F16", "BF16", "F32", "F64"))
    )
    if missing or extra or wrong:
        raise ValueError(
            f"{weights} does not match its model {type(module).__name__}: missing tensors {missing[:5]}, "
            f"unexpected tensors {extra[:5]}, wrong shape or dtype {wrong[:5]}."
        )


def _own_weights(module: torch.nn.Module) -> None:
    """Copy weights memory-mapped from a safetensors file into freshly allocated memory.

    Mapped tensors sit at unaligned addresses, which changes oneDNN's float rounding (~1e-7) on CPU; after the
    copy a loaded pipeline reproduces the saved one bit for bit, and the file is no longer held open.
    """
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.data = tensor.data.clone()
