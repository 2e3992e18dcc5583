"""Webhook notifications per transition: generic JSON, Slack-compatible or Microsoft Teams payloads.

A ``Notifier`` sends one payload to one target. ``WebhookNotifier`` posts with httpx, a timeout on every call
and a bounded number of attempts; it never raises: a lost notification is logged and counted, it never stops a
decision. Notifications are sent after the status recording the transition is written, so a crash in between
loses a notification rather than sending it twice (at most once).

A target's ``severity`` is the least severe event it receives (``info`` gets everything, ``critical`` only
halts).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx

from gatekeeper.controller.bookkeeping import rfc3339
from gatekeeper.spec.models import Notify

__all__ = ["Message", "Notifier", "WebhookNotifier", "payload"]

log = logging.getLogger("gatekeeper.controller")

_RANK = {"info": 0, "warning": 1, "critical": 2}
_COLOR = {"info": "#2eb67d", "warning": "#ecb22e", "critical": "#e01e5a"}


@dataclass(frozen=True)
class Message:
    """What happened to a gate, in words and fields."""

    gate: str
    namespace: str
    event: str  # the Event reason: Advanced, Promoted, RolledBack, Halted, ...
    severity: str
    message: str
    phase: str
    stage: int
    weight: float
    verdict: str
    time: float
    owners: tuple[str, ...] = ()
    runbook: str | None = None
    forward_fix: str | None = None


def wants(target: Notify, severity: str) -> bool:
    return _RANK.get(severity, 0) >= _RANK[target.severity]


def payload(target: Notify, m: Message) -> dict[str, Any]:
    """The body for ``target.format``."""
    title = f"gatekeeper: {m.namespace}/{m.gate} {m.event}"
    number = m.stage + 1  # people count stages from 1; the status' `stage` is the 0-based index
    text = f"{m.message} (stage {number}, canary {m.weight:g}%, verdict {m.verdict or 'n/a'})"
    if target.format == "slack":
        fields = [
            {"title": "Phase", "value": m.phase, "short": True},
            {"title": "Stage", "value": str(number), "short": True},
        ]
        if m.owners:
            fields.append({"title": "Owners", "value": ", ".join(m.owners), "short": False})
        if m.runbook:
            fields.append({"title": "Runbook", "value": m.runbook, "short": False})
        return {
            "text": f"*{title}*: {text}",
            "attachments": [
                {"color": _COLOR.get(m.severity, "#cccccc"), "fields": fields, "ts": int(m.time)}
            ],
        }
    if target.format == "teams":  # an Office 365 connector MessageCard, as Flagger's MS Teams notifier sends
        facts = [
            ("Phase", m.phase),
            ("Stage", str(number)),
            ("Canary weight", f"{m.weight:g}%"),
            ("Verdict", m.verdict or "n/a"),
            ("Severity", m.severity),
            ("Owners", ", ".join(m.owners)),
            ("Runbook", m.runbook or ""),
            ("Forward fix", m.forward_fix or ""),
        ]
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": title,
            "themeColor": _COLOR.get(m.severity, "#cccccc").lstrip("#"),
            "title": title,
            "text": text,
            "sections": [
                {
                    "activityTitle": f"{m.event}: {m.namespace}/{m.gate}",
                    "activitySubtitle": rfc3339(m.time),
                    "facts": [{"name": k, "value": v} for k, v in facts if v],
                }
            ],
        }
    body = asdict(m)
    body["owners"] = list(m.owners)
    body["forwardFix"] = body.pop("forward_fix")
    body["timestamp"] = rfc3339(m.time)
    body["stageNumber"] = number
    return {"kind": "GateNotification", "apiVersion": "gatekeeper.dev/v1alpha1", **body}


class Notifier(Protocol):
    def send(self, target: Notify, message: Message) -> bool:
        """Deliver; True when the target accepted it. Never raises."""
        ...


class WebhookNotifier:
    def __init__(
        self, *, timeout: float = 5.0, attempts: int = 2, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._client = httpx.Client(timeout=timeout, transport=transport)
        self.attempts = max(attempts, 1)
        self.sent = 0
        self.failed = 0

    def send(self, target: Notify, message: Message) -> bool:
        body = payload(target, message)
        last = ""
        for _ in range(self.attempts):
            try:
                r = self._client.post(target.url, json=body)
                if r.status_code < 300:
                    self.sent += 1
                    return True
                last = f"HTTP {r.status_code}"
                if r.status_code < 500 and r.status_code != 429:
                    break  # the target refuses this payload; retrying will not help
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
        self.failed += 1
        log.warning("notification %s for %s/%s to %s not delivered: %s", message.event, message.namespace,
                    message.gate, target.name, last)  # fmt: skip
        return False

    def close(self) -> None:
        self._client.close()
