"""Deferred imports: the modules the app's handlers use but its page does not need, imported on first use.

Most of this package imports diffusers, which takes seconds (torch._dynamo, through diffusers.utils.torch_utils);
the app's page needs only labels and limits. So ``pipelines/__init__.py`` imports its names on first use, the
sampler table names its scheduler classes by import path, and a module of the app names such a module with
``lazy_module("pipelines.ddim_inversion")``: the name reads like the module, and the first attribute looked up on it
imports it. app.py calls :func:`import_all` from a thread once the server is up, so that a visitor rarely waits.

Every deferred import goes through :func:`import_deferred`, one thread at a time: two threads importing diffusers'
lazy modules at once can each wait for a module the other is importing, and Python then hands one of them a
half-initialised module ("cannot import name 'DiffusionPipeline' from 'diffusers'", seen with the warm-up thread
and a first request). ``tests/app/test_cold_start.py`` checks that building the page imports no diffusers.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

IMPORT_LOCK = threading.RLock()  # held while a deferred module is imported (re-entrant: imports nest)
_NAMES: list[str] = []  # every module named through lazy_module, for import_all


def import_deferred(name: str, package: str | None = None) -> ModuleType:
    """``importlib.import_module(name, package)``, one thread at a time."""
    with IMPORT_LOCK:
        return importlib.import_module(name, package)


class LazyModule:
    """Stands for the module ``name``; each attribute is looked up on the imported module."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(self.load(), attribute)

    def load(self) -> ModuleType:
        return import_deferred(self._name)  # after the first time, a lock and one dict lookup in sys.modules

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> LazyModule:
    """The module ``name`` (absolute), imported when an attribute of it is first read."""
    if name not in _NAMES:
        _NAMES.append(name)
    return LazyModule(name)


def import_all() -> None:
    """Import this package's names and every module named through :func:`lazy_module` so far, holding the lock
    throughout (a request meanwhile waits for the imports instead of racing them)."""
    with IMPORT_LOCK:
        package = importlib.import_module(__package__)
        for name in package.__all__:
            getattr(package, name)
        for name in list(_NAMES):
            importlib.import_module(name)
