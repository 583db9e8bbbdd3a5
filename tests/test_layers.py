"""The package layers point one way: data, pipelines ← training ← lab ← playground ← app (nothing imports upwards);
the app reads its digits from ``data``, not from ``training``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package → the project packages it must never import
FORBIDDEN = {
    "data": {"pipelines", "training", "lab", "playground", "app", "tests", "bench"},
    "pipelines": {"training", "lab", "playground", "app", "tests", "bench"},
    "training": {"lab", "playground", "app", "tests", "bench"},
    "lab": {"playground", "app", "tests", "bench"},
    "playground": {"app", "tests", "bench"},
}


def imported_top_levels(path: Path) -> set[str]:
    """The top-level module names a file imports (relative imports stay inside the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif is_lazy_import(node):  # lazy_module("lab.toy2d") imports it later (pipelines/deferred.py)
            names.add(node.args[0].value.split(".")[0])
    return names


def is_lazy_import(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "lazy_module"
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
    )


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_higher_layer(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_top_levels(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_app_takes_no_data_from_training():
    assert "training" not in imported_top_levels(ROOT / "playground" / "models.py")


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom training.data import load_data\n\ndef f():\n    import playground.models\n")
    assert imported_top_levels(bad) == {"os", "training", "playground"}
    bad.write_text('from .lazy import lazy_module\n\napp = lazy_module("app.main")\n')
    assert imported_top_levels(bad) == {"app"}


def test_no_test_support_module_shadows_a_project_package():
    """Scripts under tests/support run with that folder first on sys.path (torchrun runs launch_probe.py there): a
    support module named like a package would hide it ("'pipelines' is not a package")."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} | {"app"}
    modules = {p.stem for p in (ROOT / "tests" / "support").glob("*.py")}
    assert modules & packages == set()
