"""The picture bounds, the canvas-blob store and the cache sweep (playground/limits.py, playground/server.py), in
process: a picture is refused from its header before any decoding, the blob store never holds more than its budget."""

from __future__ import annotations

import io
import os
import time
import tracemalloc
from pathlib import Path

import fastapi
import gradio as gr
import numpy as np
import pytest
from gradio.components.image_editor import EditorData
from gradio.data_classes import DataWithFiles, FileData
from PIL import Image

from playground import limits, server
from tests.support.limits import bomb_png

MB = 2**20


@pytest.fixture(autouse=True, scope="module")
def bounded():
    limits.bound_image_inputs()
    server.harden()


def png(size: tuple[int, int], mode: str = "1") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 1).save(buffer, format="PNG")
    return buffer.getvalue()


def file_data(tmp_path: Path, name: str, data: bytes) -> FileData:
    path = tmp_path / name
    path.write_bytes(data)
    return FileData(path=str(path), orig_name=name)


def peak_allocated(action) -> int:
    """Bytes allocated at the peak of ``action()`` (Python and numpy allocations, traced), whatever it raises."""
    tracemalloc.start()
    try:
        action()
    except gr.Error:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def editor() -> gr.ImageEditor:
    return gr.ImageEditor(type="numpy", image_mode="RGBA", label="Digit", render=False)


def test_a_decompression_bomb_is_refused_from_its_header_before_any_decoding(tmp_path):
    side = 6000
    bomb = file_data(tmp_path, "bomb.png", bomb_png(side))  # 11 KB; side² × 4 = 144 MB per decoded picture
    payload = EditorData(background=bomb, composite=bomb, layers=[bomb])
    with pytest.raises(gr.Error, match=r"the ImageEditor 'Digit': the image 'bomb.png' is more than .* pixels"):
        editor().preprocess(payload)
    assert peak_allocated(lambda: editor().preprocess(payload)) < side * side * 4 / 100  # nothing was decoded


def test_pictures_up_to_the_bound_pass_and_one_pixel_more_is_refused():
    side = limits.MAX_IMAGE_SIDE
    limits.check_picture(png((side, side)), "the drawing", "ok.png")
    for size in ((side + 1, 1), (1, side + 1), (side, side + 1)):
        with pytest.raises(gr.Error, match=f"at most {side}×{side}"):
            limits.check_picture(png(size), "the drawing", "big.png")


def test_an_unreadable_upload_gets_the_app_message_naming_the_file_not_its_server_path(tmp_path):
    notes = file_data(tmp_path, "notes.png", b"not a picture\n" * 10)
    with pytest.raises(gr.Error) as error:
        editor().preprocess(EditorData(background=notes, composite=notes))
    assert (
        "the ImageEditor 'Digit'" in error.value.message
        and "'notes.png' is not a readable image" in error.value.message
    )
    assert str(tmp_path) not in error.value.message


def test_a_picture_whose_pixels_fail_to_decode_gets_a_clear_error(tmp_path):
    whole = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 4), dtype=np.uint8)).save(whole, "PNG")
    cut = file_data(tmp_path, "cut.png", whole.getvalue()[:400])  # a valid header, then the data stops
    with pytest.raises(gr.Error, match=r"the ImageEditor 'Digit': the picture could not be decoded"):
        editor().preprocess(EditorData(background=cut, composite=cut))


def test_more_layers_than_the_bound_are_refused_before_decoding(tmp_path):
    picture = file_data(tmp_path, "p.png", png((28, 28), "L"))
    many = EditorData(background=picture, composite=picture, layers=[picture] * (limits.MAX_LAYERS + 1))
    with pytest.raises(gr.Error, match=f"at most {limits.MAX_LAYERS} layers"):
        editor().preprocess(many)
    value = editor().preprocess(EditorData(background=picture, composite=picture, layers=[picture] * limits.MAX_LAYERS))
    assert len(value["layers"]) == limits.MAX_LAYERS and value["composite"].shape == (28, 28, 4)


def test_gradio_image_inputs_are_bounded_too(tmp_path):
    bomb = FileData(path=str(tmp_path / "b.png"), orig_name="b.png")
    Path(bomb.path).write_bytes(bomb_png(6000))
    with pytest.raises(gr.Error, match="more than"):
        gr.Image(type="numpy", render=False).preprocess(bomb)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_blob_store_drops_the_oldest_canvases_to_stay_within_its_budget():
    store = limits.BlobStore(budget=100, lifetime=60)
    for key in "abc":
        store.put(key, "composite", None, b"x" * 30)
    assert store.total_bytes() == 90 and "a" in store
    store.put("d", "background", None, b"x" * 30)  # 120 > 100: the oldest canvas goes
    assert "a" not in store and all(k in store for k in "bcd") and store.total_bytes() == 90
    store.put("b", "layer", 2, b"x" * 25)  # growing canvas b to 55 drops the oldest other one (c), never b
    assert "c" not in store and store.total_bytes() == 85 and store.get("b").layers == [None, None, b"x" * 25]
    with pytest.raises(ValueError, match="exceeds the budget"):
        store.put("f", "composite", None, b"x" * 101)
    assert "f" not in store


def test_a_canvas_expires_after_its_lifetime_and_is_popped_once():
    clock = FakeClock()
    store = limits.BlobStore(budget=1000, lifetime=10, clock=clock)
    store.put("old", "composite", None, b"x")
    clock.now = 5
    store.put("new", "composite", None, b"y")
    clock.now = 11
    assert store.get("old") is None and "old" not in store and store.get("new").composite == b"y"
    assert store.pop("new").composite == b"y" and store.pop("new") is None and len(store) == 0


def test_the_blob_store_remembers_canvases_dropped_unread_but_not_those_an_event_used():
    clock = FakeClock()
    store = limits.BlobStore(budget=100, lifetime=10, clock=clock)
    for key in ("oldest", "second", "kept"):
        store.put(key, "composite", None, b"x" * 40)  # 120 > 100: the oldest goes
    assert store.was_dropped("oldest") and not store.was_dropped("second") and not store.was_dropped("kept")
    store.put("read", "composite", None, b"x" * 10)
    store.pop("read")
    clock.now = 11
    assert store.get("kept") is None
    assert store.was_dropped("kept") and not store.was_dropped("read")


def test_a_drawing_dropped_before_its_event_ran_is_an_error_not_an_empty_canvas(monkeypatch):
    monkeypatch.setattr(limits, "BLOBS", limits.BlobStore(budget=100, lifetime=60))
    component = editor()
    limits.BLOBS.put("theirs", "composite", None, png((28, 28)))
    for i in range(20):  # another visitor's flood of canvases
        limits.BLOBS.put(f"flood-{i}", "composite", None, b"x" * 60)
    with pytest.raises(gr.Error, match="your drawing was dropped before it could be used"):
        component.preprocess(EditorData(id="theirs", background=None, layers=[], composite=None))


def blob_call(key, kind, data: bytes, index=None) -> DataWithFiles:
    fields = {"id": key, "type": kind, "index": "null" if index is None else str(index)}
    return DataWithFiles(data=fields, files=[(f"{kind}.png", data)])


def test_accept_blobs_refuses_a_huge_layer_index_without_allocating_for_it():
    component = editor()
    call = blob_call("k", "layer", b"x", index=10**8)
    with pytest.raises(fastapi.HTTPException) as error:
        component.accept_blobs(call)
    assert error.value.status_code == 400 and "layer index" in error.value.detail
    assert peak_allocated(lambda: pytest.raises(fastapi.HTTPException, component.accept_blobs, call)) < MB
    assert "k" not in limits.BLOBS


@pytest.mark.parametrize(
    ("kind", "data", "index", "status"),
    [("nope", png((2, 2)), None, 400), ("layer", png((2, 2)), "-1", 400), ("composite", b"junk", None, 400)],
)
def test_accept_blobs_refuses_malformed_calls(kind, data, index, status):
    with pytest.raises(fastapi.HTTPException) as error:
        editor().accept_blobs(blob_call("m", kind, data, index))
    assert error.value.status_code == status and "m" not in limits.BLOBS


def test_a_canvas_sent_as_blobs_is_decoded_once_by_its_event_and_then_freed():
    component = editor()
    key = "canvas-under-test"
    picture = png((28, 28), "RGBA")
    for kind, index in (("background", None), ("composite", None), ("layer", 0)):
        component.accept_blobs(blob_call(key, kind, picture, index))
    assert key in limits.BLOBS
    value = component.preprocess(EditorData(id=key))
    assert value["composite"].shape == (28, 28, 4) and len(value["layers"]) == 1
    assert key not in limits.BLOBS


def test_the_cache_sweep_deletes_files_unused_for_longer_than_the_age_and_their_empty_folders(tmp_path):
    old, recent, read = tmp_path / "a" / "old.png", tmp_path / "b" / "recent.png", tmp_path / "c" / "read.png"
    for path in (old, recent, read):
        path.parent.mkdir()
        path.write_bytes(b"x")
    now = time.time()
    os.utime(old, (now - 100, now - 100))
    os.utime(read, (now - 1, now - 100))  # written long ago, handed out again just now
    assert server.sweep(tmp_path, age=50, now=now) == 1
    assert not old.exists() and recent.exists() and read.exists()
    assert old.parent.exists()  # emptied just now: a folder goes once it has been empty for the age too
    assert server.sweep(tmp_path, age=50, now=now + 60) == 2 and not old.parent.exists() and not recent.exists()


def test_error_messages_lose_server_paths_but_keep_file_names_and_other_slashes():
    text = "cannot identify image file '/tmp/gradio/ab12/x.png' (cwd /work/app); ratio 2/3, see https://a.b/c/d"
    assert server.without_paths(text) == "cannot identify image file 'x.png' (cwd app); ratio 2/3, see https://a.b/c/d"


def test_heavy_events_share_one_concurrency_group_and_picture_events_another():
    import app

    groups = {fn.api_name: fn.concurrency_id for fn in app.demo.fns.values() if fn.api_name}
    assert groups["sample"] == groups["inpaint"] == limits.HEAVY
    for name in ("vae_reconstruct", "vae_traverse", "forward_process"):
        assert groups[name] == limits.IMAGES, name
    takes_picture = [  # the live (private) views too: any event with a drawing or editor input
        fn for fn in app.demo.fns.values() if any(isinstance(c, gr.ImageEditor) for c in fn.inputs)
    ]
    assert len(takes_picture) > 3
    assert {fn.concurrency_id for fn in takes_picture} <= {limits.IMAGES, limits.HEAVY, "lab-train", "on_open"}
    assert groups["vae_prior"] not in (limits.HEAVY, limits.IMAGES)  # no picture, no model loop: its own limit


def test_the_lab_trainings_keep_their_one_job_group_and_quick_views_never_wait_behind_them():
    """/lab_train_diffusion takes a drawing: it stays in the lab's one-training-at-a-time group with the VAE's, and
    no quick picture view shares a group with a training or a heavy job."""
    import app

    fns = {fn.api_name: fn for fn in app.demo.fns.values() if fn.api_name}
    trainings = [fns["lab_train_diffusion"], fns["lab_train_vae"]]
    assert {fn.concurrency_id for fn in trainings} == {"lab-train"}
    assert all(fn.concurrency_limit == 1 for fn in trainings)
    quick = ("forward_process", "vae_reconstruct", "vae_traverse", "lab_target")
    busy = {limits.HEAVY, "lab-train"}
    assert all(fns[name].concurrency_id not in busy for name in quick)
    page_open = [
        fn for fn in app.demo.fns.values() if (fn.api_name or "").startswith("ui_") and fn.concurrency_id == "on_open"
    ]
    assert page_open, "the page-open views keep their own group"


def test_the_labs_downloads_live_in_the_swept_cache_and_go_with_it(tmp_path, monkeypatch):
    """The lab's model downloads went to fresh folders outside the swept cache that nothing deleted (3–5 GB an hour
    for one client); they are written inside it now, and the sweep removes them and their folders."""
    from playground import lab_handlers

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    path = lab_handlers.download_path("vae-2d.safetensors")
    path.write_bytes(b"weights")
    assert path.is_relative_to(tmp_path)
    later = time.time() + 100
    assert server.sweep(tmp_path, age=50, now=later) == 1
    server.sweep(tmp_path, age=50, now=later + 100)
    assert not path.exists() and not path.parent.exists()


def test_an_error_that_echoes_a_huge_value_comes_back_and_is_logged_short(caplog):
    """Gradio's "not in the list of choices" echoes the refused value whole: 20 MB in, a 20 MB error and log line."""
    from gradio.utils import error_payload

    huge = "x" * 20_000_000
    with caplog.at_level("WARNING", logger="playground"):
        content = server.scrubbed(error_payload)(gr.Error(f"Value: {huge} is not in the list of choices"), True)
    assert len(content["error"]) < server.MAX_ERROR_CHARS + 100
    assert "more characters left out" in content["error"]
    assert all(len(record.getMessage()) < server.MAX_ERROR_CHARS + 200 for record in caplog.records)


def test_sessions_idle_for_longer_than_the_bound_are_forgotten_and_the_others_kept():
    import datetime

    from gradio.state_holder import StateHolder

    with gr.Blocks() as demo:
        gr.State(None)
    holder = StateHolder()
    holder.set_blocks(demo)
    for key in ("idle api session", "active page"):
        holder[key]  # what Gradio does for each event of a session
    an_hour_ago = datetime.datetime.now() - datetime.timedelta(hours=1, seconds=1)
    holder.time_last_used["idle api session"] = an_hour_ago
    assert server.forget_idle_sessions(holder, idle_s=3600) == 1
    assert "idle api session" not in holder and "active page" in holder
    assert list(holder.time_last_used) == ["active page"]
