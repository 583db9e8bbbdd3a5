"""Unsafe files: pickle weights are refused unread, tampered safetensors get a clear error, the app loads fixed models only."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.support.tiny_pipelines import CLASSES, build
from tests.support.unsafe import write_pickle

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(params=list(CLASSES))
def saved(request, tmp_path):
    """(pipeline class, saved folder, the tampered component's weights file)."""
    pipe, component = build(request.param)
    folder = tmp_path / request.param
    pipe.save_pretrained(folder)
    return CLASSES[request.param], folder, folder / component / WEIGHTS


def test_the_marker_pickle_does_run_code_when_unpickled(tmp_path):
    marker = tmp_path / "ran"
    write_pickle(tmp_path / "w.pt", marker, "torch.save")
    torch.load(tmp_path / "w.pt", weights_only=False)  # what an unsafe loader would do
    assert marker.exists()


@pytest.mark.parametrize(
    "where, how",
    [
        ("{c}/diffusion_pytorch_model.bin", "pickle"),  # in place of the safetensors
        ("{c}/diffusion_pytorch_model.bin", "torch.save"),
        ("{c}/model.pt", "torch.save"),
        ("{c}/extra.ckpt", "torch.save"),
        ("weights.pkl", "pickle"),
        ("{c}/sub/model.pth", "pickle"),
    ],
)
def test_pickle_weights_are_refused_and_never_unpickled(saved, tmp_path, where, how):
    pipeline_class, folder, weights = saved
    component = weights.parent.name
    marker = tmp_path / "marker-created-by-unpickling"
    target = folder / where.format(c=component)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_pickle(target, marker, how)
    if target.name.startswith("diffusion_pytorch_model"):
        weights.unlink()
    with pytest.raises(ValueError, match=r"pickle.*" + target.name):
        pipeline_class.from_pretrained(folder)
    with pytest.raises(ValueError, match="pickle"):
        pipeline_class.from_pretrained(folder, use_safetensors=True, low_cpu_mem_usage=False)
    assert not marker.exists()


def _rewrite_header(path: Path, edit) -> None:
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + size])
    edit(header)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + size :])


def _first_tensor(header: dict) -> str:
    return next(key for key in sorted(header) if key != "__metadata__")


def _edit_tensors(path: Path, edit) -> None:
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def _reshape_first_matrix(tensors: dict) -> None:
    key = next(k for k in sorted(tensors) if tensors[k].ndim >= 2)
    tensors[key] = torch.zeros(*(n + 1 for n in tensors[key].shape))


TAMPERINGS = {
    "garbage-header": (
        lambda p: p.write_bytes(p.read_bytes()[:8] + b"{not json at all" + p.read_bytes()[24:]),
        OSError,
    ),
    "header-length-huge": (lambda p: p.write_bytes(struct.pack("<Q", 2**62) + p.read_bytes()[8:]), OSError),
    "truncated-half": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), OSError),
    "truncated-last-byte": (lambda p: p.write_bytes(p.read_bytes()[:-1]), OSError),
    "empty-file": (lambda p: p.write_bytes(b""), OSError),
    "offsets-past-end": (
        lambda p: _rewrite_header(p, lambda h: h[_first_tensor(h)]["data_offsets"].__setitem__(1, 10**12)),
        OSError,
    ),
    "wrong-shape": (lambda p: _edit_tensors(p, _reshape_first_matrix), ValueError),
    "missing-tensor": (lambda p: _edit_tensors(p, lambda t: t.pop(sorted(t)[0])), ValueError),
    "extra-tensor": (
        lambda p: _edit_tensors(p, lambda t: t.__setitem__("injected.weight", torch.zeros(3))),
        ValueError,
    ),
    "integer-weights": (lambda p: _edit_tensors(p, lambda t: t.update({k: v.int() for k, v in t.items()})), ValueError),
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_tampered_safetensors_give_a_clear_error_naming_the_file(saved, tampering):
    pipeline_class, folder, weights = saved
    tamper, error = TAMPERINGS[tampering]
    tamper(weights)
    with pytest.raises(error) as raised:
        pipeline_class.from_pretrained(folder)
    message = str(raised.value)
    assert str(folder) in message, message  # the folder (and for all but wrong shapes the file itself) is named
    if tampering != "wrong-shape":
        assert str(weights) in message, message


def test_an_untampered_copy_still_loads(saved, tmp_path):
    pipeline_class, folder, _ = saved
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert isinstance(pipeline_class.from_pretrained(copy), pipeline_class)


# ---------------------------------------------------------------- the app loads only its fixed models


def test_model_registry_never_resolves_a_name_from_outside(tmp_path, monkeypatch):
    from playground import models

    monkeypatch.setenv("PLAYGROUND_MODELS_DIR", str(tmp_path))
    for hostile in ["../models/ddpm-pixel", "/etc", "user/some-repo", "ddpm-pixel", "pixel/../vae", "", "PIXEL"]:
        with pytest.raises(models.ModelUnavailable, match="unknown model"):
            models.load(hostile)
    assert all(models.model_folder(key).parent == tmp_path for key in models.SPECS)
    assert all("/" not in spec.folder and ".." not in spec.folder for spec in models.SPECS.values())


PATH_FREE_COMPONENTS = {"Slider", "Number", "Dropdown", "Radio", "CheckboxGroup", "Sketchpad", "ImageEditor"}


def test_no_app_endpoint_takes_a_path_or_repo_id_and_models_come_from_a_fixed_list():
    import app
    from playground import models
    from tests.support.fuzz import public_endpoints

    endpoints = public_endpoints(app.demo)
    assert endpoints
    for name, (_, inputs, _) in endpoints.items():
        kinds = {type(component).__name__ for component in inputs}
        assert kinds <= PATH_FREE_COMPONENTS, f"/{name} takes {kinds - PATH_FREE_COMPONENTS}"  # no Textbox/File
        for component in inputs:
            if type(component).__name__ in ("Dropdown", "Radio") and any(
                k in str(component.choices) for k in models.SPECS
            ):
                assert {value for _, value in component.choices} <= set(models.SPECS), f"/{name}: {component.choices}"


@pytest.mark.parametrize(
    "hostile", ["../models/ddpm-pixel", "/etc", "user/some-repo", "{folder}", "ddpm-pixel", "pixel "]
)
def test_app_refuses_a_model_named_by_path_or_repo_id_without_loading_anything(tmp_path, monkeypatch, hostile):
    import gradio as gr

    from pipelines.pretrained import SafeFromPretrainedMixin
    from playground.tabs import inpaint
    from playground.tabs import sample as sampling

    folder = tmp_path / "hostile"
    build("ddpm")[0].save_pretrained(folder)
    marker = tmp_path / "marker-created-by-unpickling"
    write_pickle(folder / "unet" / "diffusion_pytorch_model.bin", marker, "torch.save")  # a hostile folder
    loads = []
    original = SafeFromPretrainedMixin.from_pretrained.__func__
    monkeypatch.setattr(
        SafeFromPretrainedMixin,
        "from_pretrained",
        classmethod(lambda cls, path, **kw: loads.append(path) or original(cls, path, **kw)),
    )
    model = hostile.format(folder=folder)
    with pytest.raises(gr.Error, match="model must be one of"):
        list(sampling.sample_stream(model, "DDIM", 3, 0.0, 0, 1, 0, 1.0))
    with pytest.raises(gr.Error, match="sampler must be one of"):
        inpaint.inpaint(7, None, "left half", model, 3, 1, 1, 0)
    assert not loads and not marker.exists()


@pytest.mark.slow
def test_the_served_app_refuses_a_server_file_path_sent_as_an_image(tmp_path):
    """A raw API call naming a file on the server (not uploaded) as the drawing is refused, not read."""
    import httpx
    from PIL import Image

    from tests.support.app_server import make_tiny_models
    from tests.support.load import serve_app

    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(secret)
    file_data = {"path": str(secret), "meta": {"_type": "gradio.FileData"}}
    drawing = {"background": file_data, "layers": [], "composite": file_data}
    with serve_app(make_tiny_models(tmp_path / "models")) as (url, _), httpx.Client(base_url=url, timeout=60) as http:
        for args in ([0, drawing, 0, 1.0], [0, None, 0, 1.0]):  # the second, without a path, must work
            event = http.post("gradio_api/call/vae_reconstruct", json={"data": args}).json()["event_id"]
            stream = http.get(f"gradio_api/call/vae_reconstruct/{event}").text
            outcome = "error" if "event: error" in stream else "complete" if "event: complete" in stream else stream
            assert outcome == ("error" if args[1] else "complete"), stream[:500]
            if args[1]:
                # refused, naming the file but not where it lies on the server (playground/server.py)
                assert "not uploaded" in stream and "secret.png" in stream and str(secret) not in stream, stream[:500]
