"""The modules the handlers use but the page does not need to be built: imported on first use.

Most of the project's model code imports diffusers, which takes seconds (torch._dynamo, through
diffusers.utils.torch_utils); the page itself needs only labels and limits. So a tab names such a module with
``lazy_module("pipelines.ddim_inversion")`` instead of importing it: the name reads like the module, and the first
attribute looked up on it imports it (importlib's import lock makes that safe from several threads at once).
app.py calls :func:`import_all` from a thread right after the server is up, so that a visitor rarely waits for it.
``tests/test_cold_start.py`` checks that building the page imports no diffusers.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_NAMES: list[str] = []  # every module named through lazy_module, for import_all


class LazyModule:
    """Stands for the module ``name``; each attribute is looked up on the imported module."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(self.load(), attribute)

    def load(self) -> ModuleType:
        return importlib.import_module(self._name)  # after the first time, one dict lookup in sys.modules

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> LazyModule:
    """The module ``name`` (absolute), imported when an attribute of it is first read."""
    if name not in _NAMES:
        _NAMES.append(name)
    return LazyModule(name)


def import_all() -> None:
    """Import every module named through :func:`lazy_module` so far."""
    for name in list(_NAMES):
        importlib.import_module(name)
