"""The repository deploys as a Hugging Face Space: binary files stored with LFS, no file behind a git symlink (the Hub
keeps none), torch from the CPU wheel index, a licence that matches the README's, and front matter that lists only
published model repos."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipelines.hub_code import MIN_DIFFUSERS
from training.hub import BUNDLED_REPOS

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def git(*args: str) -> str:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def front_matter() -> dict:
    return yaml.safe_load((ROOT / "README.md").read_text(encoding="utf-8").split("---\n")[1])


def test_no_tracked_file_is_a_symlink():
    links = [line.split("\t")[1] for line in git("ls-files", "-s").splitlines() if line.startswith("120000")]
    assert links == []


def test_every_tracked_binary_file_is_stored_with_lfs():
    files = git("ls-files", "-z").split("\0")
    binary = [f for f in files if f and (ROOT / f).is_file() and b"\0" in (ROOT / f).read_bytes()[:8000]]
    assert binary  # the weights and pictures are there to check
    attributes = git("check-attr", "filter", "--", *binary).splitlines()
    assert [line for line in attributes if not line.endswith(": filter: lfs")] == []


def test_requirements_take_torch_from_the_cpu_index_and_state_the_diffusers_minimum():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert CPU_INDEX in lines and lines.index(CPU_INDEX) < lines.index("torch==2.13.0")
    assert any(f"supports >= {MIN_DIFFUSERS}" in line for line in lines if line.startswith("# diffusers"))
    pinned = next(line for line in lines if line.startswith("diffusers=="))
    version = tuple(int(part) for part in pinned.split("==")[1].split("."))
    assert version >= tuple(int(part) for part in MIN_DIFFUSERS.split("."))


def test_the_licence_file_is_the_licence_the_space_declares():
    assert front_matter()["license"] == "mit"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License") and "CC BY-SA 3.0" in (ROOT / "LICENSE").read_text()


def test_the_space_lists_only_the_bundled_models_repos():
    """`python -m training.publish ... --space-readme README.md` adds each repo once it is published."""
    models = front_matter()["models"]
    assert isinstance(models, list) and set(models) <= set(BUNDLED_REPOS.values())
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+", repo) for repo in models)
