"""Fuzz what a crafted client can reach below gradio_client (tests/support/gradio_http.py): the hidden (ui_*) events, with
bad inputs and crafted select-event data, and the image editor's ``accept_blobs`` component-server call.

Each hidden event must answer with a result or a clear error (a message, no traceback, no server path), never an
HTTP 5xx; the component server must answer every crafted call with a 2xx or 4xx. Run by tests/support/fuzz.py
(against its served app) and tests/app/test_fuzz.py.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import uuid
from pathlib import Path

from tests.support import gradio_http as http
from tests.support.fuzz import ROOT, bad_numbers, malformed_files, short, value_pools
from tests.support.limits import bomb_png

RAW_KINDS = {
    "slider": "number",
    "number": "number",
    "dropdown": "choice",
    "radio": "choice",
    "checkboxgroup": "choices",
    "imageeditor": "image",
}


def json_value(value):
    """A fuzz value as JSON carries it: NaN/±inf → null, integers beyond 64 bits → their digits, arrays → null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        return str(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value if isinstance(value, (str, int, float, bool, type(None))) else None


def raw_pictures(url: str, folder: Path) -> list:
    """Editor payloads a crafted client can send: uploaded malformed files, a decompression bomb, too many layers,
    a path it did not upload, a canvas id that holds nothing, wrong shapes."""
    (folder / "bomb.png").write_bytes(bomb_png(6000))
    uploaded = [http.upload(url, Path(f).read_bytes(), Path(f).name).json()[0] for f in malformed_files(folder)]
    uploaded.append(http.upload(url, (folder / "bomb.png").read_bytes(), "bomb.png").json()[0])
    good = http.upload(url, (folder / "good.png").read_bytes(), "good.png").json()[0]
    picture = lambda path: http.file_data(path, Path(path).name)
    payloads = [{"background": picture(p), "layers": [], "composite": picture(p), "id": None} for p in uploaded]
    return payloads + [
        None,
        {},
        {"background": None, "layers": [], "composite": None, "id": None},
        {"background": picture(good), "layers": [picture(good)] * 50, "composite": picture(good), "id": None},
        {"background": picture("/etc/passwd"), "layers": [], "composite": None, "id": None},
        {"background": None, "layers": [], "composite": None, "id": "no-such-canvas"},
        {"background": "x", "layers": "y", "composite": 3},
        [1, 2],
        "x" * 10_000,
    ]


def raw_event_data(rng: random.Random) -> dict:
    """A select event's data as a crafted client can send it: any index, any value."""
    numbers = bad_numbers(rng)
    index = rng.choice([rng.choice(numbers), [rng.choice(numbers), rng.choice(numbers)], [1, 2, 3], [10, 10]])
    return json_value({"index": index, "value": rng.choice(numbers), "selected": rng.choice([True, None, "x"])})


def raw_crash(outcome) -> str | None:
    """None for an answer a client may get (a result, a clear error, a 4xx); else what is wrong."""
    message = str(outcome.message)
    if outcome.status == "refused":
        return f"HTTP {outcome.http_status}: {message[:200]}" if outcome.http_status >= 500 else None
    if outcome.status == "complete":
        return None
    if not message.strip() or message == "None" or "Traceback" in message or 'File "' in message:
        return f"unclear error: {message[:300]}"
    if any(place in message for place in (str(ROOT), tempfile.gettempdir() + "/")):
        return f"a server path in the error: {message[:300]}"
    return None


def fuzz_hidden(url: str, per_endpoint: int, seed: int = 2) -> dict:
    """Every hidden (ui_*) event through raw HTTP with bad inputs and crafted event data: a result or a clear error."""
    rng = random.Random(seed)
    pools = {**value_pools(rng, []), "image": raw_pictures(url, Path(tempfile.mkdtemp(prefix="fuzz-raw-")))}
    report = {}
    for api_name, event in http.hidden_events(url).items():
        counts = {"ok": 0, "error": 0, "crash": []}
        components = event["input_components"]
        base = [c.get("props", {}).get("value") for c in components]
        for _ in range(per_endpoint):
            args = list(base)
            for i in rng.sample(range(len(args)), k=min(len(args), rng.choice([1, 1, 2]))):
                args[i] = rng.choice(pools[RAW_KINDS.get(components[i]["type"], "choice")])
            data = [
                a if isinstance(a, (dict, list)) and RAW_KINDS.get(c["type"]) == "image" else json_value(a)
                for a, c in zip(args, components)
            ]
            event_data = raw_event_data(rng) if event["select"] else None
            outcome = http.run_event(url, event["id"], data, event_data=event_data, timeout=120)
            problem = raw_crash(outcome)
            if problem:
                counts["crash"].append((short(data + [event_data]), problem))
            else:
                counts["ok" if outcome.status == "complete" else "error"] += 1
        report[api_name] = counts
    return report


def fuzz_component_server(url: str, count: int, seed: int = 3) -> dict:
    """The image editor's ``accept_blobs`` (and other names) with crafted fields and files: never an HTTP 5xx."""
    rng = random.Random(seed)
    editors = http.component_ids(url, "imageeditor")
    small = (Path(malformed_files(Path(tempfile.mkdtemp(prefix="fuzz-blobs-")))[0]).parent / "good.png").read_bytes()
    kinds = ["background", "composite", "layer", "", "nope", "LAYER", None]
    indices = [None, "null", 0, 1, 3, 4, -1, 10**8, "1e8", "abc", 2**70, " 1", "٣"]
    ids = lambda: rng.choice([uuid.uuid4().hex, "", "x" * 100, "../x", 0])
    blobs = [b"", b"x", small, bomb_png(6000), os.urandom(1000), [small, small], []]
    counts = {"ok": 0, "error": 0, "crash": []}
    for _ in range(count):
        component = rng.choice([*editors, 0, 10**6])
        fields = (component, ids(), rng.choice(kinds), rng.choice(blobs), rng.choice(indices))
        response = http.accept_blobs(url, fields[0], fields[1], fields[2], fields[3], index=fields[4])
        if response.status_code >= 500:
            counts["crash"].append((short(list(fields)), f"HTTP {response.status_code}: {response.text[:200]}"))
        else:
            counts["ok" if response.status_code == 200 else "error"] += 1
    return {"component_server/accept_blobs": counts}
