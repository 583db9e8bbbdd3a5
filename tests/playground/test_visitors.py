"""Per-visitor queue bounds (playground/visitors.py): who a visitor is, and when one more event is refused."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from playground import visitors


def request(peer: str, forwarded: str | None = None):
    headers = {"x-forwarded-for": forwarded} if forwarded is not None else {}
    return SimpleNamespace(client=SimpleNamespace(host=peer), headers=headers)


def event(who: str, group: str, trigger: str = "click"):
    fn = SimpleNamespace(targets=[(1, trigger)])
    return SimpleNamespace(request=request("10.0.0.1", who), concurrency_id=group, fn=fn)


def fake_queue(waiting: list, running: list):
    group = SimpleNamespace(queue=waiting)
    return SimpleNamespace(event_queue_per_concurrency_id={"any": group}, active_jobs=[running, None])


def test_a_visitor_is_the_socket_peer_unless_a_trusted_proxy_says_whom_it_forwards_for():
    assert visitors.visitor(request("10.0.0.1", "203.0.113.7, 10.0.0.1"), trust_forwarded=False) == "10.0.0.1"
    assert visitors.visitor(request("10.0.0.1", "203.0.113.7, 10.0.0.1"), trust_forwarded=True) == "203.0.113.7"
    assert visitors.visitor(request("10.0.0.1", ""), trust_forwarded=True) == "10.0.0.1"


def test_waiting_running_and_joining_events_all_count_against_their_visitor_but_not_page_opens():
    page_open = event("a", "on_open", trigger="load")
    queue = fake_queue([event("a", "heavy"), event("b", "images"), page_open], [event("a", "lab-train")])
    held = visitors.held(queue, Counter({("a", True): 1, ("b", False): 2}), trust_forwarded=True)
    assert held.events == Counter({"a": 3, "b": 3})
    assert held.heavy == Counter({"a": 3})
    assert held.heavy_waiting == 2  # one waiting, one joining; the running one holds no place in the queue


def test_a_visitor_at_the_heavy_bound_is_refused_heavy_work_but_still_gets_quick_views():
    full = visitors.MAX_HEAVY_PER_VISITOR
    now = visitors.Held(Counter({"a": full}), Counter({"a": full}), heavy_waiting=full)
    status, message = visitors.refusal(now, "a", is_heavy=True)
    assert status == 429 and f"at most {full} each" in message
    assert visitors.refusal(now, "a", is_heavy=False) is None
    assert visitors.refusal(now, "b", is_heavy=True) is None


def test_a_full_heavy_queue_refuses_heavy_work_but_never_a_quick_view():
    now = visitors.Held(Counter({"b": 1}), Counter(), heavy_waiting=visitors.MAX_HEAVY_QUEUED)
    status, message = visitors.refusal(now, "b", is_heavy=True)
    assert status == 503 and message.startswith("Queue is full")
    assert visitors.refusal(now, "b", is_heavy=False) is None


def test_a_visitor_at_the_event_bound_is_refused_even_a_quick_view():
    now = visitors.Held(Counter({"a": visitors.MAX_EVENTS_PER_VISITOR}), Counter(), heavy_waiting=0)
    status, message = visitors.refusal(now, "a", is_heavy=False)
    assert status == 429 and "wait for them to finish" in message
