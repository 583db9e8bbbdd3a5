"""Raw HTTP calls to a served Gradio app, below gradio_client: what a crafted client can send.

gradio_client only sends what the page's API describes; the red-team cases need more: hidden (``ui_*``) events
with crafted event data, an ``fn_index`` that does not exist, uploads with odd names, the image editor's
``accept_blobs`` component-server call, and cancelling a running job. Each helper is one request (httpx).

    events = fn_indices(url)                       # api_name → fn_index, hidden events included
    outcome = run_event(url, events["ui_map_click"], [], event_data={"index": [1e308, 0], "value": None})
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import httpx

API = "gradio_api"


def config(url: str) -> dict:
    return httpx.get(f"{url}config", timeout=30).json()


def fn_indices(url: str) -> dict[str, int]:
    """api_name → fn_index of every event of the served app (public and hidden)."""
    return {dep["api_name"]: dep["id"] for dep in config(url)["dependencies"] if dep.get("api_name")}


def component_ids(url: str, kind: str) -> list[int]:
    """Ids of the served page's components of ``kind`` (e.g. "imageeditor", "sketchpad")."""
    return [c["id"] for c in config(url)["components"] if c.get("type") == kind]


def upload(url: str, data: bytes, name: str = "upload.png", timeout: float = 120) -> httpx.Response:
    """POST one file to /upload (as the page does before an event that takes it)."""
    return httpx.post(f"{url}{API}/upload", files={"files": (name, data)}, timeout=timeout)


def file_data(path: str, name: str = "upload.png") -> dict:
    """The FileData JSON an event input carries for an uploaded file."""
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def accept_blobs(
    url: str, component_id: int, blob_id, kind, data: bytes | list[bytes], index=None, session_hash: str | None = None
) -> httpx.Response:
    """The image editor's component-server call that stores one canvas blob (``kind``: background/composite/layer;
    the page sends one file, ``data`` may be a list of any number)."""
    form = {
        "component_id": str(component_id),
        "session_hash": session_hash or uuid.uuid4().hex,
        "fn_name": "accept_blobs",
        "id": str(blob_id),
        "type": str(kind),
        "index": "null" if index is None else str(index),
    }
    files = [("file", (f"{kind}.png", blob)) for blob in (data if isinstance(data, list) else [data])]
    return httpx.post(f"{url}{API}/component_server", data=form, files=files, timeout=120)


def hidden_events(url: str) -> dict[str, dict]:
    """api_name → the config of every hidden (``api_visibility`` private) event, with ``input_components`` (their
    configs: type and props) and ``select`` (whether the event carries event data: a select/click)."""
    page = config(url)
    components = {c["id"]: c for c in page["components"]}
    found = {}
    for dep in page["dependencies"]:
        if dep.get("api_name") and dep.get("api_visibility") == "private":
            found[dep["api_name"]] = {
                **dep,
                "input_components": [components[i] for i in dep["inputs"]],
                "select": dep.get("collects_event_data", False),
            }
    return found


@dataclass
class Outcome:
    """How one event ended: ``status`` "complete" | "error" | "refused" (HTTP status ≠ 200 at join), its data or
    error message, the streamed updates, and the seconds from join to the end."""

    status: str
    data: list | None = None
    message: str | None = None
    http_status: int = 200
    updates: list = field(default_factory=list)
    seconds: float = 0.0


def visitor_headers(visitor: str | None) -> dict:
    """The header that makes a call come from ``visitor`` (an address) to a server that trusts it (tests serve the
    app with ``PLAYGROUND_TRUST_FORWARDED=1``, as a Space's proxy does): every test call comes from 127.0.0.1."""
    return {"X-Forwarded-For": visitor} if visitor else {}


def join(
    url: str, fn_index: int, data: list, session_hash: str, event_data=None, visitor: str | None = None
) -> httpx.Response:
    body = {"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": event_data}
    return httpx.post(f"{url}{API}/queue/join", json=body, headers=visitor_headers(visitor), timeout=60)


def listen(url: str, session_hash: str, event_id: str, timeout: float, on_update=None) -> Outcome:
    """Read the session's server-sent events until ``event_id`` completes (``on_update(message)`` per message)."""
    start, updates = time.perf_counter(), []
    params = {"session_hash": session_hash}
    with httpx.stream("GET", f"{url}{API}/queue/data", params=params, timeout=timeout) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") not in (None, event_id):
                continue
            if on_update is not None:
                on_update(message)
            if message.get("msg") == "process_generating":
                updates.append(message)
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}
                seconds = time.perf_counter() - start
                if message.get("success"):
                    return Outcome("complete", output.get("data"), updates=updates, seconds=seconds)
                return Outcome("error", message=output.get("error"), updates=updates, seconds=seconds)
            if message.get("msg") == "unexpected_error":
                return Outcome("error", message=message.get("message"), seconds=time.perf_counter() - start)
    return Outcome("error", message="stream closed without a result", seconds=time.perf_counter() - start)


def run_event(
    url: str, fn_index: int, data: list, event_data=None, timeout: float = 300, on_update=None, visitor=None
) -> Outcome:
    """Join the queue with ``data`` (and ``event_data`` for select events) as ``visitor`` and wait for the outcome."""
    session_hash = uuid.uuid4().hex
    response = join(url, fn_index, data, session_hash, event_data, visitor)
    if response.status_code != 200:
        return Outcome("refused", message=response.text[:500], http_status=response.status_code)
    return listen(url, session_hash, response.json()["event_id"], timeout, on_update)


def cancel(url: str, fn_index: int, session_hash: str, event_id: str) -> httpx.Response:
    """What the page's Stop button and gradio_client's ``job.cancel()`` send."""
    body = {"session_hash": session_hash, "fn_index": fn_index, "event_id": event_id}
    return httpx.post(f"{url}{API}/cancel", json=body, timeout=300)
