"""The code a saved folder carries, so that plain diffusers loads it with ``trust_remote_code=True``.

diffusers' custom-code mechanism (``diffusers/utils/dynamic_modules_utils.py``, ``get_cached_module_file``):

- ``model_index.json``'s ``"_class_name": [module, class]`` names the pipeline's module, a file at the folder's
  root; ``"<component>": [module, class]`` names a component's module, a file in the component's folder.
- Loading a module copies it, and only the sibling files it imports directly with ``from .name import ...``,
  into one flat package (``diffusers_modules.local``), then runs it. Files imported in turn, and ``from . import
  name``, are not copied.

So the folder's root carries the project's own modules unchanged (the closure of the relative imports of the
pipeline's and its components' modules, computed here from the source, less the project-only modules that
diffusers' route never runs: ``PROJECT_ONLY``) plus one generated entry module,
``hub_pipeline.py``, that imports each of them directly. A component of ours gets a generated entry
``<component>/hub_<component>.py`` that takes its class from the root module the pipeline already imported,
so that the pipeline and diffusers see the same class. Components from diffusers stay ``["diffusers", class]``.
A single model (``diffusers.AutoModel``) carries its module's closure and ``hub_model.py``, named by config.json's
``auto_map``.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

PIPELINE_ENTRY = "hub_pipeline"
MODEL_ENTRY = "hub_model"
PROJECT = "the VAE & diffusion playground"
# The project's loader, folder checks and this writer: imported only inside the project's own from_pretrained and
# save_pretrained (pipelines/pretrained.py), which diffusers' route never calls, so a folder does not carry them.
PROJECT_ONLY = ("loading", "folder_checks", "hub_code")
# The oldest diffusers the carried code loads with: older ones read `from __future__ import annotations`' string
# annotations as missing types and fail with a KeyError on a component (docs/hub.md has the versions tried).
MIN_DIFFUSERS = "0.37.0"


def relative_imports(path: Path) -> set[str]:
    """The sibling modules a module file imports relatively, anywhere in the file (function-level imports too).

    Both ``from .name import x`` and ``from . import name`` count; an import from a parent package (``..``) or a
    sub-package (``.a.b``) cannot travel as a flat folder and is refused.
    """
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        if node.level > 1 or (node.module and "." in node.module):
            raise ValueError(f"{path}: `from {'.' * node.level}{node.module or ''} import ...` cannot travel.")
        names.update([node.module] if node.module else [alias.name for alias in node.names])
    return names


def module_closure(modules: Iterable[str], source_dir: Path, leave_out: Iterable[str] = PROJECT_ONLY) -> list[str]:
    """``modules`` and every sibling module they import, directly or in turn, but those of ``leave_out`` (sorted
    names, no ``.py``)."""
    found, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name in found or name in leave_out:
            continue
        path = source_dir / f"{name}.py"
        if not path.is_file():
            raise ValueError(f"module {name!r} is not a file of {source_dir} (only sibling modules can travel).")
        found.add(name)
        todo.extend(relative_imports(path) - found)
    return sorted(found)


def _module_name(cls: type) -> str:
    return cls.__module__.rpartition(".")[2]


def _source_dir(cls: type) -> Path:
    return Path(sys.modules[cls.__module__].__file__).resolve().parent


def _is_ours(cls: type) -> bool:
    """A class defined in a sibling module of this one (in the project, or in a folder diffusers loaded)."""
    return cls.__module__.rpartition(".")[0] == __name__.rpartition(".")[0]


def component_entry(component: str) -> str:
    return f"hub_{component}"


def component_entries(component_classes: Mapping[str, type | None]) -> dict[str, list[str | None]]:
    """model_index.json's ``[module, class]`` per component: diffusers' own classes by name, ours through an entry."""
    entries = {}
    for name, cls in component_classes.items():
        if cls is None:
            entries[name] = [None, None]
        elif _is_ours(cls):
            entries[name] = [component_entry(name), cls.__name__]
        elif cls.__module__.split(".")[0] == "diffusers":
            entries[name] = ["diffusers", cls.__name__]
        else:
            raise ValueError(
                f"component {name!r} is a {cls.__module__}.{cls.__name__}: only diffusers' and ours travel."
            )
    return entries


def code_modules(pipeline_class: type, component_classes: Mapping[str, type | None]) -> list[str]:
    """The project modules a folder of ``pipeline_class`` carries at its root (computed from the import graph)."""
    ours = [pipeline_class, *(c for c in component_classes.values() if c is not None and _is_ours(c))]
    return module_closure({_module_name(c) for c in ours}, _source_dir(pipeline_class))


def entry_source(how: str, classes: Mapping[str, set[str]], modules: list[str], package: str) -> str:
    """An entry module: imports each carried module directly (the only imports diffusers copies), exporting
    ``classes`` (module → class names). ``how`` is the call that runs it; ``package`` where the modules come from."""
    imports = [
        f"from .{m} import {', '.join(sorted(classes[m]))}" if m in classes else f"from .{m} import __name__ as _{m}"
        for m in modules
    ]
    helpers = [f"    _{m}," for m in modules if m not in classes]
    exported = json.dumps(sorted(set().union(*classes.values())))
    minimum = tuple(int(part) for part in MIN_DIFFUSERS.split("."))
    return "\n".join(
        [
            '"""diffusers\' entry point to this folder\'s code, which runs this file on',
            f"{how}.",
            "",
            f"Written by {PROJECT}'s `pipelines/hub_code.py`; do not edit. The other .py files",
            f"here are that project's own `{package}/` modules, unchanged. diffusers copies into its module cache only",
            "the files an entry module imports directly (`from .name import ...`), not the files those import in turn,",
            'so each one is imported here."""',
            "",
            "import diffusers",
            "",
            f"MIN_DIFFUSERS = {minimum}  # older versions cannot load this code",
            'if tuple(int(part) for part in diffusers.__version__.split(".")[:3] if part.isdigit()) < MIN_DIFFUSERS:',
            "    raise ImportError(",
            f'        f"this model\'s code needs diffusers >= {MIN_DIFFUSERS}, found {{diffusers.__version__}}: "',
            f"        \"pip install -U 'diffusers>={MIN_DIFFUSERS}'\"",
            "    )",
            "",
            *imports,
            "",
            f"__all__ = {exported}",
            *(["# the helper modules, one per file", "CARRIED_MODULES = (", *helpers, ")"] if helpers else []),
            "",
        ]
    )


def pipeline_entry_source(
    pipeline_class: type, component_classes: Mapping[str, type | None], modules: list[str]
) -> str:
    """``hub_pipeline.py``, which exports the pipeline class and our component classes."""
    classes = {_module_name(pipeline_class): {pipeline_class.__name__}}
    for cls in component_classes.values():
        if cls is not None and _is_ours(cls):
            classes.setdefault(_module_name(cls), set()).add(cls.__name__)
    how = "`DiffusionPipeline.from_pretrained(folder_or_repo_id, trust_remote_code=True)`"
    return entry_source(how, classes, modules, _source_dir(pipeline_class).name)


def component_entry_source(component: str, cls: type) -> str:
    """``<component>/hub_<component>.py``: the class of the root module that the pipeline entry imported."""
    module = _module_name(cls)
    return (
        f'"""diffusers loads the `{component}` component\'s class, {cls.__name__}, from this file '
        "(`trust_remote_code=True`).\n\n"
        f"Written by {PROJECT}'s `pipelines/hub_code.py`; do not edit. The class is the one in\n"
        f"the folder root's `{module}.py`, which `{PIPELINE_ENTRY}.py` has already imported. It is looked up by module\n"
        "name, not imported with `from .`, because diffusers copies the files a component's module imports from the\n"
        'component\'s own folder, which holds no code but this file."""\n\n'
        "import importlib\n\n"
        f'{cls.__name__} = importlib.import_module(f"{{__package__}}.{module}").{cls.__name__}\n'
    )


def hub_files(pipeline_class: type, component_classes: Mapping[str, type | None]) -> dict[str, str | Path]:
    """Every code file of the folder: relative path → generated text, or the project module file it carries."""
    modules = code_modules(pipeline_class, component_classes)
    source = _source_dir(pipeline_class)
    files: dict[str, str | Path] = {f"{m}.py": source / f"{m}.py" for m in modules}
    files[f"{PIPELINE_ENTRY}.py"] = pipeline_entry_source(pipeline_class, component_classes, modules)
    for name, cls in component_classes.items():
        if cls is not None and _is_ours(cls):
            files[f"{name}/{component_entry(name)}.py"] = component_entry_source(name, cls)
    return files


def hub_model_index(index: Mapping, pipeline_class: type, component_classes: Mapping[str, type | None]) -> dict:
    """``index`` with the pipeline and our components pointing at the folder's entries (other keys kept)."""
    rewritten = {k: v for k, v in index.items() if not isinstance(v, list) or k == "_class_name"}
    rewritten["_class_name"] = [PIPELINE_ENTRY, pipeline_class.__name__]
    rewritten.update(component_entries(component_classes))
    return dict(sorted(rewritten.items()))


def _code_paths(folder: Path, components: Iterable[str]) -> set[str]:
    """The .py files now in the folder's root and component folders."""
    paths = {p.name for p in folder.glob("*.py")}
    for name in components:
        paths |= {f"{name}/{p.name}" for p in (folder / name).glob("*.py")}
    return paths


def _text(content: str | Path) -> str:
    """A code file's text: generated, or read from the project module it carries."""
    return content.read_text(encoding="utf-8") if isinstance(content, Path) else content


def _differs(target: Path, text: str) -> bool:
    return target.is_symlink() or not target.is_file() or target.read_text(encoding="utf-8") != text


def stale_hub_code(
    folder: str | os.PathLike, pipeline_class: type, component_classes: Mapping[str, type | None]
) -> list[str]:
    """The paths in ``folder`` that :func:`write_hub_code` would change (an empty list: up to date)."""
    folder = Path(folder)
    files = hub_files(pipeline_class, component_classes)
    stale = [p for p, content in files.items() if _differs(folder / p, _text(content))]
    stale += sorted(_code_paths(folder, component_classes) - set(files))
    index = json.loads((folder / "model_index.json").read_text())
    if index != hub_model_index(index, pipeline_class, component_classes):
        stale.append("model_index.json")
    return sorted(stale)


def write_hub_code(
    folder: str | os.PathLike, pipeline_class: type, component_classes: Mapping[str, type | None]
) -> list[str]:
    """Make ``folder`` (a saved pipeline) loadable by plain diffusers: write its code (real files, as a Hub repository
    holds them), rewrite model_index.json. Stale .py files of an earlier version are removed. Returns the relative
    paths of the code files."""
    folder = Path(folder)
    files = hub_files(pipeline_class, component_classes)
    for stale in _code_paths(folder, component_classes) - set(files):
        (folder / stale).unlink()
    for relative, content in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()
        target.write_text(_text(content), encoding="utf-8")
    index_file = folder / "model_index.json"
    index = hub_model_index(json.loads(index_file.read_text()), pipeline_class, component_classes)
    index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return sorted(files)


def model_files(model_class: type) -> dict[str, str | Path]:
    """A single model's code files (``AutoModel`` route): its module's import closure and ``hub_model.py``."""
    source = _source_dir(model_class)
    modules = module_closure([_module_name(model_class)], source)
    files: dict[str, str | Path] = {f"{m}.py": source / f"{m}.py" for m in modules}
    how = "`diffusers.AutoModel.from_pretrained(folder_or_repo_id, trust_remote_code=True)`"
    classes = {_module_name(model_class): {model_class.__name__}}
    files[f"{MODEL_ENTRY}.py"] = entry_source(how, classes, modules, source.name)
    return files


def write_model_code(folder: str | os.PathLike, model_class: type) -> list[str]:
    """Make a saved model folder (config.json, safetensors) loadable by ``diffusers.AutoModel`` with
    ``trust_remote_code=True``: copy its code and point config.json's ``auto_map`` at the entry."""
    folder = Path(folder)
    files = model_files(model_class)
    for relative, content in files.items():
        (folder / relative).write_text(_text(content), encoding="utf-8")
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config["auto_map"] = {"AutoModel": f"{MODEL_ENTRY}.{model_class.__name__}"}
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return sorted(files)
