"""Lifecycle webhooks with Flagger's hook points and request bodies.

Every hook is an HTTP POST of ``{"name", "namespace", "phase", "metadata"}`` (Flagger's webhook payload; the
phase in Flagger's words: Initialized, Waiting, Progressing, Succeeded, Failed, so receivers written for
Flagger keep working). An ``event`` hook gets the Event in ``metadata``: ``eventMessage``, ``eventType``
(Normal or Warning) and ``timestamp`` (unix milliseconds, a string), as Flagger sends it.

Answers: any 2xx passes. A 4xx is a refusal (a closed gate; the response body goes into the reason, as
Flagger puts it into its events) and is not retried. A timeout, a refused connection, a 429 or a 5xx is no
answer: retried ``retries`` times with backoff, then reported as unanswered, which the machine holds on and
fails at the stage's deadline. ``HttpHooks.call`` never raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx

from gatekeeper.controller.machine import HookAnswer
from gatekeeper.spec.models import Hook
from gatekeeper.spec.status import GateStatus, Phase

__all__ = ["HookCaller", "HttpHooks", "call_all", "event_body", "hook_body", "peer_phase"]

log = logging.getLogger("gatekeeper.controller")

_PEER_PHASE = {
    Phase.PENDING: "Initialized",
    Phase.PROGRESSING: "Progressing",
    Phase.AWAITING_APPROVAL: "Waiting",
    Phase.PAUSED: "Waiting",
    Phase.PROMOTED: "Succeeded",
    Phase.ROLLED_BACK: "Failed",
    Phase.HALTED: "Failed",
    Phase.ABORTED: "Failed",
}


def peer_phase(s: GateStatus) -> str:
    """The gate's phase in Flagger's vocabulary (a pending gate held by its confirm hook is Waiting)."""
    if s.phase == Phase.PENDING and s.waiting_for:
        return "Waiting"
    if s.phase == Phase.PROGRESSING and s.waiting_for == "confirm-promotion":
        return "WaitingPromotion"
    return _PEER_PHASE.get(s.phase, str(s.phase))


def hook_body(hook: Hook, *, name: str, namespace: str, status: GateStatus) -> dict[str, Any]:
    """Flagger's body. Pre-rollout checks run once the rollout is confirmed, as Flagger's do, in Progressing."""
    phase = "Progressing" if hook.type == "pre-rollout" else peer_phase(status)
    return {"name": name, "namespace": namespace, "phase": phase, "metadata": dict(hook.metadata)}


def event_body(
    hook: Hook, *, name: str, namespace: str, status: GateStatus, message: str, warning: bool, at: float
) -> dict[str, Any]:
    meta = {
        **hook.metadata,
        "eventMessage": message,
        "eventType": "Warning" if warning else "Normal",
        "timestamp": str(int(at * 1000)),
    }
    return {"name": name, "namespace": namespace, "phase": peer_phase(status), "metadata": meta}


class HookCaller(Protocol):
    def call(self, hook: Hook, body: dict[str, Any]) -> HookAnswer:
        """POST ``body`` to the hook; never raises."""
        ...


class HttpHooks:
    """Calls hooks over HTTP with httpx: the hook's own timeout per attempt, ``retries`` more attempts."""

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = httpx.Client(transport=transport, follow_redirects=False)
        self.backoff, self._sleep = backoff, sleep
        self.calls = 0

    def call(self, hook: Hook, body: dict[str, Any]) -> HookAnswer:
        last = HookAnswer(ok=False, answered=False, message="not called")
        for attempt in range(hook.retries + 1):
            if attempt:
                self._sleep(min(self.backoff * 2 ** (attempt - 1), 10.0))
            self.calls += 1
            try:
                r = self._client.post(hook.url, json=body, timeout=hook.timeout)
            except httpx.TimeoutException:
                last = HookAnswer(ok=False, answered=False, message=f"no answer within {hook.timeout:g}s")
                continue
            except httpx.HTTPError as e:
                last = HookAnswer(ok=False, answered=False, message=f"could not be reached: {e}")
                continue
            text = " ".join(r.text.split())[:200]
            said = f"HTTP {r.status_code}" + (f": {text}" if text else "")
            if 200 <= r.status_code < 300:
                return HookAnswer(ok=True, message=said)
            if r.status_code >= 500 or r.status_code == 429:
                last = HookAnswer(ok=False, answered=False, message=said)
                continue
            return HookAnswer(ok=False, answered=True, message=said)  # a refusal is an answer: no retry
        if hook.retries:
            last = HookAnswer(
                ok=False, answered=False, message=f"{last.message} ({hook.retries + 1} attempts)"
            )
        return last

    def close(self) -> None:
        self._client.close()


def call_all(caller: HookCaller, hooks: Sequence[Hook], body: Callable[[Hook], dict[str, Any]]) -> HookAnswer:
    """Call ``hooks`` in order; the first that does not pass decides (the later ones are not called)."""
    passed: list[str] = []
    for h in hooks:
        a = caller.call(h, body(h))
        log.info("hook %s (%s) at %s: %s", h.name, h.type, h.url, a.message)
        if not a.ok:
            return HookAnswer(ok=False, answered=a.answered, message=f"hook {h.name!r}: {a.message}")
        passed.append(f"{h.name}: {a.message}")
    return HookAnswer(ok=True, message="; ".join(passed))
