"""Per-visitor bounds on the shared queue: one visitor cannot fill it, and quick views stay open to everyone.

Gradio's queue has one ``max_size`` for every event of every visitor, so a single client that queued 33 minute-long
trainings (from 33 sessions) made every other visitor's calls fail with "Queue is full" for half an hour.
:func:`bound_queue` puts a check in front of the queue's ``push``:

- a visitor holds at most ``MAX_HEAVY_PER_VISITOR`` heavy events (sampling, inpainting, lab trainings) and
  ``MAX_EVENTS_PER_VISITOR`` events in all, waiting or running; one more is refused at once with HTTP 429 and a
  message saying so, and nothing of theirs already queued is lost. The views a page computes when it opens (15
  events, answered from memory at the page's starting values: playground/widgets.py) do not count, so that a
  visitor's clicks are never refused while their page fills in;
- heavy events of all visitors together wait in at most ``MAX_HEAVY_QUEUED`` places (HTTP 503 "Queue is full" beyond);
- quick views (everything else) count only against their visitor's own bound and Gradio's ``max_size``, which is
  set high enough that a full heavy queue never refuses them.

A visitor is a client address: the socket's peer, or, behind a proxy that says who it forwards for (a Hugging Face
Space; ``$PLAYGROUND_TRUST_FORWARDED=1``), the first address of ``X-Forwarded-For``. A client that forges that
header can pass as several visitors; the heavy queue's total bound still holds for them.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass

from fastapi import HTTPException, status
from gradio import route_utils

from .limits import HEAVY, LAB_TRAIN

HEAVY_GROUPS = frozenset({HEAVY, LAB_TRAIN})  # the concurrency groups whose events take seconds to minutes
# A visitor is an address, and a classroom behind one address is many people: room for several at once
MAX_HEAVY_PER_VISITOR = int(os.environ.get("PLAYGROUND_VISITOR_HEAVY", "8"))
MAX_EVENTS_PER_VISITOR = int(os.environ.get("PLAYGROUND_VISITOR_EVENTS", "32"))
MAX_HEAVY_QUEUED = 32  # heavy events waiting, all visitors together
QUEUE_SIZE = 256  # Gradio's own bound on waiting events: a backstop for quick views from many visitors
TRUST_FORWARDED = os.environ.get("PLAYGROUND_TRUST_FORWARDED", "1" if os.environ.get("SPACE_ID") else "0") == "1"


def visitor(request, trust_forwarded: bool = TRUST_FORWARDED) -> str:
    """Who sent ``request`` (a starlette/fastapi request): see the module's docstring."""
    first = request.headers.get("x-forwarded-for", "").split(",")[0].strip() if trust_forwarded else ""
    return first or (request.client.host if request.client else "unknown")


@dataclass(frozen=True)
class Held:
    """What the queue holds now: events per visitor (waiting or running), heavy ones per visitor, heavy ones waiting."""

    events: Counter
    heavy: Counter
    heavy_waiting: int


def held(queue, joining: Counter | None = None, trust_forwarded: bool = TRUST_FORWARDED) -> Held:
    """Count the events of ``queue`` (a ``gradio.queueing.Queue``) by visitor, with ``joining``: the (visitor,
    heavy) pairs admitted whose push has not put them in the queue yet (it awaits before it does)."""
    waiting = [event for group in queue.event_queue_per_concurrency_id.values() for event in group.queue]
    running = [event for job in queue.active_jobs if job for event in job]
    joining = joining or Counter()
    events, heavy = Counter(), Counter()
    for (who, is_heavy), count in joining.items():
        events[who] += count
        heavy[who] += count * is_heavy
    for event in waiting + running:
        if opens_page(event.fn):
            continue
        who = visitor(event.request, trust_forwarded) if event.request is not None else "unknown"
        events[who] += 1
        heavy[who] += event.concurrency_id in HEAVY_GROUPS
    heavy_joining = sum(count for (_, is_heavy), count in joining.items() if is_heavy)
    heavy_waiting = sum(event.concurrency_id in HEAVY_GROUPS for event in waiting) + heavy_joining
    return Held(events, heavy, heavy_waiting)


def opens_page(fn) -> bool:
    """Whether an event (a Gradio BlockFunction) is one the page runs when it opens (``demo.load``)."""
    return any(trigger == "load" for _, trigger in getattr(fn, "targets", ()))


def refusal(now: Held, who: str, is_heavy: bool) -> tuple[int, str] | None:
    """(HTTP status, message) if one more event of visitor ``who`` may not join the queue, else None."""
    if now.events[who] >= MAX_EVENTS_PER_VISITOR:
        return (
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"You already have {now.events[who]} requests waiting or running (at most {MAX_EVENTS_PER_VISITOR} "
            "each): wait for them to finish.",
        )
    if is_heavy and now.heavy[who] >= MAX_HEAVY_PER_VISITOR:
        return (
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"You already have {now.heavy[who]} sampling or training jobs waiting or running (at most "
            f"{MAX_HEAVY_PER_VISITOR} each): wait for one to finish.",
        )
    if is_heavy and now.heavy_waiting >= MAX_HEAVY_QUEUED:
        return (
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"Queue is full: {now.heavy_waiting} sampling or training jobs are waiting. Try again in a minute.",
        )
    return None


def bound_queue(demo) -> None:
    """Check each visitor's bounds before ``demo``'s queue takes an event (call after ``demo.queue``); idempotent."""
    queue = demo._queue
    if getattr(queue.push, "bounded", False):
        return

    push, joining = queue.push, Counter()

    @functools.wraps(push)
    async def bounded_push(body, request, username):
        try:
            fn = route_utils.get_fn(queue.blocks, None, body)
        except Exception:  # no such event: Gradio's own push answers it
            return await push(body, request, username)
        if opens_page(fn):
            return await push(body, request, username)
        key = (visitor(request), fn.concurrency_id in HEAVY_GROUPS)
        refused = refusal(held(queue, joining), *key)
        if refused is not None:
            raise HTTPException(status_code=refused[0], detail=refused[1])
        joining[key] += 1
        try:
            return await push(body, request, username)
        finally:
            joining[key] -= 1

    bounded_push.bounded = True
    queue.push = bounded_push
