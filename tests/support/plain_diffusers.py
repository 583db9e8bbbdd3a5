"""Running plain diffusers where this project cannot be imported: ``python -I`` in a fresh folder, offline, with its
Hub and module caches inside the test's tmp_path (the route a user of the published model repos takes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PYTHON = sys.executable  # the venv's python: diffusers is installed, this project is not
SHA = "0123456789abcdef0123456789abcdef01234567"

# diffusers' AutoModel asks the Hub for the commit of a repo's code even when the code is cached (model_info); offline,
# the test answers with the cached commit. Everything else comes from the local Hub cache.
ANSWER_MODEL_INFO = (
    "import types, diffusers.utils.dynamic_modules_utils as dynamic_modules\n"
    "dynamic_modules.model_info = lambda repo_id, **kwargs: types.SimpleNamespace(sha=SHA)\n"
)


def populate_hub_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """Lay ``folder`` out as huggingface_hub's cache does after a download (links followed: real files)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / SHA)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SHA)


def run_plain_diffusers(tmp_path: Path, script: str, *args: str, python: str = PYTHON) -> subprocess.CompletedProcess:
    """``python -I`` (``python``: another interpreter, e.g. one with another diffusers release) in a fresh folder: no
    project on sys.path; Hub cache and module cache inside tmp_path."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (work / "script.py").write_text(script)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_"))},
        "HF_HUB_CACHE": str(tmp_path / "hub-cache"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing may reach a network
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [python, "-I", "script.py", *args], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result
