"""Webhook notifications: the three payload shapes, the severity filter, and a dead target that never raises."""

from __future__ import annotations

import socket

from gatekeeper.controller.notify import Message, WebhookNotifier, payload, wants
from gatekeeper.spec.models import Notify
from tests.controller_support import WebhookSink

HALT = Message(
    gate="web", namespace="shop", event="Halted", severity="critical", message="halted at stage 3",
    phase="Halted", stage=2, weight=25.0, verdict="fail", time=1_800_000_000.0,
    owners=("team-checkout",), runbook="https://runbooks.example/r", forward_fix="ship the fix",
)  # fmt: skip


def test_each_format_is_delivered_in_its_shape_to_a_real_http_endpoint():
    sink = WebhookSink()
    notifier = WebhookNotifier(timeout=2)
    try:
        for fmt in ("json", "slack", "teams"):
            assert notifier.send(Notify(name=fmt, url=f"{sink.url}/{fmt}", format=fmt), HALT)
    finally:
        notifier.close()
        sink.close()
    got = dict(sink.received)
    assert got["/json"]["event"] == "Halted" and got["/json"]["owners"] == ["team-checkout"]
    assert (
        got["/json"]["forwardFix"] == "ship the fix" and got["/json"]["timestamp"] == "2027-01-15T08:00:00Z"
    )
    assert got["/slack"]["text"].startswith("*gatekeeper: shop/web Halted*")
    assert {"title": "Runbook", "value": "https://runbooks.example/r", "short": False} in got["/slack"][
        "attachments"
    ][0]["fields"]
    assert got["/teams"]["@type"] == "MessageCard" and "halted at stage 3" in got["/teams"]["text"]
    assert "(stage 3, canary 25%, verdict fail)" in got["/teams"]["text"], "people count stages from 1"
    assert got["/teams"]["themeColor"] == "e01e5a"
    section = got["/teams"]["sections"][0]
    assert (
        section["activityTitle"] == "Halted: shop/web"
        and section["activitySubtitle"] == "2027-01-15T08:00:00Z"
    )
    assert section["facts"] == [
        {"name": "Phase", "value": "Halted"},
        {"name": "Stage", "value": "3"},
        {"name": "Canary weight", "value": "25%"},
        {"name": "Verdict", "value": "fail"},
        {"name": "Severity", "value": "critical"},
        {"name": "Owners", "value": "team-checkout"},
        {"name": "Runbook", "value": "https://runbooks.example/r"},
        {"name": "Forward fix", "value": "ship the fix"},
    ]
    assert {"title": "Stage", "value": "3", "short": True} in got["/slack"]["attachments"][0]["fields"]
    assert (got["/json"]["stage"], got["/json"]["stageNumber"]) == (2, 3)


def test_a_target_receives_its_severity_and_worse_only():
    page = Notify(name="pager", url="http://127.0.0.1:9", severity="critical")
    chat = Notify(name="chat", url="http://127.0.0.1:9", severity="warning")
    assert [wants(page, s) for s in ("info", "warning", "critical")] == [False, False, True]
    assert [wants(chat, s) for s in ("info", "warning", "critical")] == [False, True, True]


def test_an_unreachable_target_is_counted_and_never_raises():
    with socket.socket() as sock:  # bound, not listening: connections are refused at once
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        notifier = WebhookNotifier(timeout=1, attempts=2)
        assert notifier.send(Notify(name="dead", url=url), HALT) is False
        assert (notifier.sent, notifier.failed) == (0, 1)
        notifier.close()


def test_the_json_payload_carries_every_field_a_receiver_needs():
    body = payload(Notify(name="j", url="http://x"), HALT)
    assert {"kind", "apiVersion", "gate", "namespace", "event", "severity", "message", "phase", "stage",
            "weight", "verdict", "owners", "runbook", "forwardFix", "timestamp", "stageNumber"} <= set(body)  # fmt: skip
