"""Hook calls over real HTTP (a server on 127.0.0.1): answers, refusals, timeouts, retries, unreachable hooks,
and Flagger's request bodies (fluxcd/flagger docs/gitbook/usage/webhooks.md: ``name``, ``namespace``, ``phase``,
``metadata``; event hooks add ``eventMessage``, ``eventType``, ``timestamp`` in ms to ``metadata``)."""

from __future__ import annotations

import socket

import pytest

from gatekeeper.controller.webhooks import HttpHooks, call_all, event_body, hook_body, peer_phase
from gatekeeper.spec.models import Hook
from gatekeeper.spec.status import GateStatus, Phase
from tests.controller_support import HookServer


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    s = HookServer(
        {"/ok": 200, "/accepted": 202, "/closed": 403, "/broken": 500, "/busy": 429, "/hang": "hang"}
    )
    yield s
    s.close()


def hook(url: str, **kw: object) -> Hook:
    return Hook.model_validate({"name": "h", "type": "confirm-rollout", "url": url, **kw})


def calls() -> HttpHooks:
    return HttpHooks(backoff=0.01)


def test_any_2xx_passes(server) -> None:  # type: ignore[no-untyped-def]
    for path in ("/ok", "/accepted"):
        a = calls().call(hook(server.url + path), {"name": "g"})
        assert a.ok and a.answered
    assert server.paths() == ["/ok", "/accepted"]


def test_a_refusal_is_an_answer_with_its_body_and_is_not_retried(server) -> None:  # type: ignore[no-untyped-def]
    a = calls().call(hook(server.url + "/closed", retries=3), {})
    assert (a.ok, a.answered) == (False, True)
    assert a.message == "HTTP 403: gate closed"
    assert server.paths() == ["/closed"]


@pytest.mark.parametrize("path", ["/broken", "/busy"])
def test_5xx_and_429_are_retried_then_reported_unanswered(server, path: str) -> None:  # type: ignore[no-untyped-def]
    a = calls().call(hook(server.url + path, retries=2), {})
    assert (a.ok, a.answered) == (False, False)
    assert server.paths() == [path] * 3
    assert a.message.endswith("(3 attempts)")


def test_a_hook_that_hangs_times_out_at_its_own_timeout(server) -> None:  # type: ignore[no-untyped-def]
    a = calls().call(hook(server.url + "/hang", timeout="0.2s", retries=1), {})
    assert (a.ok, a.answered) == (False, False)
    assert a.message == "no answer within 0.2s (2 attempts)"
    assert server.paths() == ["/hang", "/hang"]


def test_an_unreachable_hook_is_unanswered_and_never_raises() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        a = calls().call(hook(f"http://127.0.0.1:{port}/x"), {})
    assert (a.ok, a.answered) == (False, False) and "could not be reached" in a.message


def test_call_all_stops_at_the_first_hook_that_does_not_pass(server) -> None:  # type: ignore[no-untyped-def]
    hooks = [
        hook(server.url + "/ok", name="a"),
        hook(server.url + "/closed", name="b"),
        hook(server.url + "/ok", name="c"),
    ]
    a = call_all(calls(), hooks, lambda h: {"hook": h.name})
    assert not a.ok and a.message == "hook 'b': HTTP 403: gate closed"
    assert [b["hook"] for _, b, _ in server.calls] == ["a", "b"]
    ok = call_all(calls(), [hooks[0], hooks[2]], lambda h: {})
    assert ok.ok and ok.message == "a: HTTP 200; c: HTTP 200"


def test_bodies_have_flaggers_shape_and_phase_words() -> None:
    h = Hook.model_validate(
        {"name": "load", "type": "rollout", "url": "http://x/", "metadata": {"cmd": "hey"}}
    )
    s = GateStatus(phase=Phase.PROGRESSING)
    assert hook_body(h, name="web", namespace="shop", status=s) == {
        "name": "web", "namespace": "shop", "phase": "Progressing", "metadata": {"cmd": "hey"},
    }  # fmt: skip
    e = event_body(
        h, name="web", namespace="shop", status=s, message="advanced", warning=False, at=1700000000.25
    )
    assert e["metadata"] == {
        "cmd": "hey",
        "eventMessage": "advanced",
        "eventType": "Normal",
        "timestamp": "1700000000250",
    }
    words = {p: peer_phase(GateStatus(phase=p)) for p in Phase}
    assert words[Phase.PENDING] == "Initialized" and words[Phase.PROMOTED] == "Succeeded"
    assert {words[Phase.ROLLED_BACK], words[Phase.HALTED], words[Phase.ABORTED]} == {"Failed"}
    assert peer_phase(GateStatus(phase=Phase.PENDING, waiting_for="confirm-rollout")) == "Waiting"
    assert (
        peer_phase(GateStatus(phase=Phase.PROGRESSING, waiting_for="confirm-promotion")) == "WaitingPromotion"
    )
