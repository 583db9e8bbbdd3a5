"""Loading a saved pipeline safely: safetensors only, every file checked first.

Every pipeline of this package inherits ``SafeFromPretrainedMixin`` (``pipelines/pretrained.py``), whose
``from_pretrained`` is :func:`safe_from_pretrained`: it resolves a local folder or a Hub repo id (from the local
cache when ``HF_HUB_OFFLINE=1``), checks the folder
(:func:`check_pipeline_folder` and ``folder_checks``), then builds each component from this package's own classes
or diffusers' and the pipeline from them. It never imports a .py file of the folder: the code a folder carries
(``pipelines/hub_code.py``) is for diffusers' route, ``DiffusionPipeline.from_pretrained(...,
trust_remote_code=True)``, where the user opts in to running it; the mixin's ``save_pretrained`` writes that code.
This module is the project's own: a Hub repository does not carry it (``hub_code.PROJECT_ONLY``).

model_index.json stores each component as ``[module, class]``: ``["diffusers", "UNet2DModel"]``, our module as
``save_pretrained`` of diffusers records it (``["pipelines.vae", "VAE"]``), or the folder's entry for diffusers
(``["hub_vae", "VAE"]``); this loader maps the latter two to this package's class of that name.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path

import torch

from .folder_checks import (
    MODEL_CONFIG,
    SCHEDULER_CONFIG,
    check_betas,
    check_component_name,
    check_config_bounds,
    check_finite,
    check_schedule_config,
    check_weights,
    expected_tensors,
    find_pickles,
    read_json,
    weight_files,
)

OUR_PACKAGE = __name__.rpartition(".")[0]
# Only these are fetched from the Hub: configs and safetensors weights, never pickles nor code.
HUB_ALLOW_PATTERNS = ["model_index.json", "*.json", "*/*.json", "*.safetensors", "*/*.safetensors", "*.md"]
# from_pretrained keywords handed to each model's own from_pretrained
MODEL_KWARGS = ("torch_dtype", "variant", "low_cpu_mem_usage", "device_map", "disable_mmap")


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


def pipeline_class_name(index: dict, index_file: Path | str = "model_index.json") -> str:
    """The pipeline class model_index.json names: ``"DDPMPipeline"`` or, in a folder that carries its code,
    ``["hub_pipeline", "DDPMPipeline"]``."""
    name = index.get("_class_name")
    if isinstance(name, list) and len(name) == 2 and all(isinstance(part, str) for part in name):
        name = name[1]
    if not isinstance(name, str) or not name:
        raise ValueError(f"{index_file}: _class_name must name a pipeline class, got {index.get('_class_name')!r}.")
    return name


def our_component_classes() -> dict[str, type]:
    """This package's component classes (schedulers, models) by name: those ``pipelines/__init__.py`` exports."""
    from diffusers import DiffusionPipeline
    from diffusers.configuration_utils import ConfigMixin

    package = importlib.import_module(OUR_PACKAGE)
    exported = [getattr(package, name) for name in getattr(package, "__all__", [])]
    return {
        cls.__name__: cls
        for cls in exported
        if isinstance(cls, type) and issubclass(cls, ConfigMixin) and not issubclass(cls, DiffusionPipeline)
    }


def our_pipeline_classes() -> dict[str, type]:
    """This package's pipeline classes by name: those ``pipelines/__init__.py`` exports."""
    from diffusers import DiffusionPipeline

    package = importlib.import_module(OUR_PACKAGE)
    exported = [getattr(package, name) for name in getattr(package, "__all__", [])]
    return {cls.__name__: cls for cls in exported if isinstance(cls, type) and issubclass(cls, DiffusionPipeline)}


def folder_classes(path: str | os.PathLike) -> tuple[type, dict[str, type | None]]:
    """The pipeline class and each component's class that a saved folder names (checked; nothing is loaded)."""
    folder = Path(path)
    index = check_pipeline_folder(folder)
    name = pipeline_class_name(index)
    pipelines = our_pipeline_classes()
    if name not in pipelines:
        raise ValueError(f"{folder / 'model_index.json'} names {name!r}, which is not one of {sorted(pipelines)}.")
    components = {k: None if v[0] is None else component_class(folder, k, *v) for k, v in _components(index)}
    return pipelines[name], components


def component_class(folder: Path, name: str, library: str, class_name: str) -> type:
    """The class to build component ``name`` with, from diffusers or this package; nothing of the folder is run."""
    from diffusers import ModelMixin, SchedulerMixin

    index_file = folder / "model_index.json"
    if not isinstance(library, str) or not isinstance(class_name, str):
        raise ValueError(
            f"{index_file}: component {name!r} must be [module, class] strings, got {[library, class_name]}."
        )
    if library == "diffusers":
        import diffusers

        cls = getattr(diffusers, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, (ModelMixin, SchedulerMixin))):
            raise ValueError(
                f"{index_file}: component {name!r} names {class_name!r}, not a diffusers model or scheduler."
            )
        return cls
    if library.startswith(OUR_PACKAGE + "."):  # as diffusers' save_pretrained records our classes
        try:
            importlib.import_module(library)
        except ImportError as error:
            raise ValueError(
                f"{index_file}: component {name!r} names module {library!r}, which does not exist: {error}"
            ) from None
    elif not (folder / name / f"{library}.py").is_file():  # the entry diffusers' route would run (we do not)
        raise ValueError(
            f"{index_file}: component {name!r} comes from library {library!r}; only diffusers, {OUR_PACKAGE} and "
            "the folder's own entries for this project's classes are loaded."
        )
    ours = our_component_classes()
    if class_name not in ours:
        raise ValueError(
            f"{index_file}: component {name!r} names class {class_name!r}, which is not one of this project's "
            f"component classes {sorted(ours)}."
        )
    return ours[class_name]


def check_pipeline_folder(path: str | os.PathLike, pipeline_class: type | None = None) -> dict:
    """Check a saved pipeline folder before loading it; returns its model_index.json.

    Raises FileNotFoundError for a missing folder, model_index.json, component folder, config or weights file,
    and ValueError for pickle files anywhere in the folder, an unreadable or unbounded model_index.json or config,
    another pipeline class, or a component from a library we do not load. Weights are checked when loading.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"pipeline folder {str(folder)!r} does not exist.")
    pickles = find_pickles(folder)
    if pickles:
        raise ValueError(
            f"pipeline folder {str(folder)!r} holds pickle weights {pickles}; only safetensors weights are loaded "
            "(pickle files can run arbitrary code). Convert them to .safetensors and remove the pickle files."
        )
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise FileNotFoundError(f"pipeline folder {str(folder)!r} has no model_index.json (not a saved pipeline).")
    index = read_json(index_file)
    class_name = pipeline_class_name(index, index_file)
    if pipeline_class is not None and class_name != pipeline_class.__name__:
        raise ValueError(f"{index_file} names the pipeline class {class_name!r}, expected {pipeline_class.__name__!r}.")
    components = dict(_components(index))
    if not components:
        raise ValueError(f"{index_file} lists no components.")
    for name, entry in components.items():
        check_component_name(name, index_file)
        if not isinstance(entry, list) or len(entry) != 2:
            raise ValueError(f"{index_file}: component {name!r} must be [library, class], got {entry!r}.")
        if entry[0] is not None:
            _check_component_files(folder, name, component_class(folder, name, *entry))
    return index


def _check_component_files(folder: Path, name: str, cls: type) -> dict:
    """A scheduler needs a bounded scheduler_config.json; a model a bounded config.json and safetensors weights."""
    from diffusers import SchedulerMixin

    sub = folder / name
    if not sub.is_dir():
        raise FileNotFoundError(f"pipeline folder {str(folder)!r} has no folder for its component {name!r}.")
    config_file = sub / (SCHEDULER_CONFIG if issubclass(cls, SchedulerMixin) else MODEL_CONFIG)
    if not config_file.is_file():
        raise FileNotFoundError(f"component folder {str(sub)!r} has no {config_file.name}.")
    config = read_json(config_file)
    check_config_bounds(config, config_file)
    if issubclass(cls, SchedulerMixin):
        check_schedule_config(config, config_file)
    else:
        weight_files(sub)  # present, and an index names only safetensors beside it
    return config


def load_component(folder: Path, name: str, cls: type, model_kwargs: dict):
    """One checked component: a scheduler from its config; a model whose weights match its class, all finite."""
    from diffusers import SchedulerMixin

    sub = folder / name
    config = _check_component_files(folder, name, cls)
    if issubclass(cls, SchedulerMixin):
        scheduler = cls.from_config(config)
        check_betas(scheduler, sub / SCHEDULER_CONFIG)
        return scheduler
    files = weight_files(sub, model_kwargs.get("variant"))
    check_weights(files, expected_tensors(cls, config, sub / MODEL_CONFIG), cls.__name__)
    try:
        model = cls.from_pretrained(str(sub), use_safetensors=True, **model_kwargs)
    except ValueError as error:  # say which folder
        raise ValueError(f"pipeline folder {str(folder)!r} could not be loaded: {error}") from None
    check_finite(model, files)
    _own_weights(model)
    return model


def safe_from_pretrained(cls: type, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
    """``cls.from_pretrained`` of every pipeline here (``pipelines/pretrained.py``): check the folder, then load
    safetensors only, never running the folder's code."""
    if kwargs.pop("use_safetensors", True) is False:
        raise ValueError("use_safetensors=False is not supported: these pipelines load safetensors weights only.")
    if kwargs.pop("custom_pipeline", None) is not None or kwargs.pop("trust_remote_code", False):
        raise ValueError(
            "custom_pipeline / trust_remote_code are not supported here: this loader never runs a folder's code. "
            "To run the code a folder carries, use diffusers.DiffusionPipeline.from_pretrained(..., "
            "trust_remote_code=True) instead."
        )
    folder = resolve_pipeline_folder(
        pretrained_model_name_or_path,
        cache_dir=kwargs.pop("cache_dir", None),
        revision=kwargs.pop("revision", None),
        local_files_only=kwargs.pop("local_files_only", None),
        token=kwargs.pop("token", None),
    )
    index = check_pipeline_folder(folder, cls)
    model_kwargs = {k: kwargs.pop(k) for k in MODEL_KWARGS if k in kwargs}
    pipeline = _build(cls, folder, index, given=kwargs, model_kwargs=model_kwargs)
    pipeline.register_to_config(_name_or_path=str(pretrained_model_name_or_path))
    return pipeline


def _build(cls: type, folder: Path, index: dict, given: dict, model_kwargs: dict):
    """``cls`` from the components ``given`` (passed to from_pretrained) and those model_index.json lists."""
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(given) - accepted
    if unknown:
        raise TypeError(f"{cls.__name__}.from_pretrained got unexpected keyword arguments {sorted(unknown)}.")
    settings = {k: v for k, v in _settings(index).items() if k in accepted}  # others ignored, as diffusers does
    components = {**settings, **given}  # settings and components passed in are used as given
    for name, (library, class_name) in _components(index):
        if name in components:
            continue
        if name not in accepted:
            raise ValueError(
                f"{folder / 'model_index.json'} lists component {name!r}, which {cls.__name__} does not take."
            )
        if library is None:
            components[name] = None  # saved as absent
        else:
            components[name] = load_component(
                folder, name, component_class(folder, name, library, class_name), model_kwargs
            )
    for name in getattr(cls, "_optional_components", []):  # as diffusers does: an optional one not listed is None
        components.setdefault(name, None)
    try:
        return cls(**components)
    except TypeError as error:  # a required component missing from model_index.json
        raise ValueError(f"{folder / 'model_index.json'} does not list what {cls.__name__} needs: {error}") from None


def _is_setting(value) -> bool:
    """A pipeline setting of model_index.json (``"sampling": {...}`` or null) rather than a ``[library, class]``."""
    return value is None or isinstance(value, dict)


def _components(index: dict) -> list[tuple[str, list]]:
    """model_index.json's components (its other entries, objects or null, are the pipeline's settings)."""
    return [(k, v) for k, v in index.items() if not k.startswith("_") and not _is_setting(v)]


def _settings(index: dict) -> dict:
    """model_index.json's pipeline settings (e.g. ``"sampling"``), checked by the pipeline's ``__init__``."""
    return {k: v for k, v in index.items() if not k.startswith("_") and _is_setting(v)}


def _own_weights(module: torch.nn.Module) -> None:
    """Copy weights memory-mapped from a safetensors file into freshly allocated memory.

    Mapped tensors sit at unaligned addresses, which changes oneDNN's float rounding (~1e-7) on CPU; after the
    copy a loaded pipeline reproduces the saved one bit for bit, and the file is no longer held open.
    """
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.data = tensor.data.clone()
