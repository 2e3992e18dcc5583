"""The gatekeeper web app: dashboard, JSON API, `/metrics`, the OTLP intake and the integration endpoints.

    app = create_app(repository=InMemoryGateRepository([...]), token=None)   # read-only
    uvicorn.run(app, host="127.0.0.1", port=8080)

Read-only unless a token is given (`token=`, or `auth=` from `gatekeeper.web.auth`): then the gate page shows
approve/abort forms, and the POSTs must carry the token (form field `token`, or `Authorization: Bearer <token>`),
compared in constant time: 401 without one, 403 with a wrong one. The token travels in the form body, never in
a cookie, so another site cannot forge the request. Approve and abort go through the repository's operations
(the same as the CLI's); the controller acts on them. The same `auth` guards `/integrations/*` and `/v1/traces`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gatekeeper.judge import Judgement
from gatekeeper.ops.errors import GateNotFound, InvalidAction, Refused, Unreachable
from gatekeeper.ops.pages import gate_detail, gate_rows
from gatekeeper.ops.repository import GateRepository
from gatekeeper.spec import GateSpec
from gatekeeper.spec.window import Window
from gatekeeper.web import dashboard
from gatekeeper.web.auth import Auth
from gatekeeper.web.integrations import Evaluator, integration_routes
from gatekeeper.web.metrics import GateMetrics
from gatekeeper.web.serving import BackgroundServer

__all__ = ["BackgroundServer", "create_app", "default_evaluator"]

_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def default_evaluator(
    *, prometheus: str | None = None, metrics: GateMetrics | None = None, traces: Any | None = None
) -> Evaluator:
    """Judge against the gate's Prometheus (or `prometheus`) and the trace store `traces`, record the look in
    `metrics`; an unexpected failure is an ERROR judgement with the reason (never a 5xx), counted as an error."""
    from gatekeeper.evaluation import safe_judgement

    def judge(gate: GateSpec, *, window: Window, stage: int) -> Judgement:
        started = time.perf_counter()
        crashed: list[Exception] = []
        judgement = safe_judgement(
            gate,
            window=window,
            stage=stage,
            prometheus_url=prometheus,
            traces=traces,
            on_crash=crashed.append,
        )
        if metrics is not None:
            if crashed:
                metrics.record_error(gate=gate.name, kind=type(crashed[0]).__name__)
            else:
                metrics.record(judgement, duration_seconds=time.perf_counter() - started, spec=gate)
        return judgement

    return judge


def create_app(
    *,
    repository: GateRepository,
    token: str | None = None,
    metrics: GateMetrics | None = None,
    evaluate: Evaluator | None = None,
    prometheus: str | None = None,
    span_sink: Any | None = None,
    clock: Callable[[], float] = time.time,
    auth: Auth | None = None,
    intake_options: dict[str, Any] | None = None,
    read_only: bool = False,
) -> Starlette:
    """The ASGI app. `span_sink`: a trace store to mount the OTLP intake at `/v1/traces` (optional).

    `auth` (or the shorthand `token`) guards approve/abort, `/integrations/*` and `/v1/traces`; without either
    the dashboard is read-only and the other endpoints are open (bind them to loopback only). `read_only` keeps
    approve/abort off even with a token (the token then guards only the judge endpoints and the intake)."""
    if auth is None:
        auth = Auth.from_token(token) if token is not None else Auth.none()
    metrics = metrics or GateMetrics()
    evaluate = evaluate or default_evaluator(prometheus=prometheus, metrics=metrics, traces=span_sink)
    pages = _Pages(repository=repository, auth=auth, clock=clock, metrics=metrics, read_only=read_only)
    routes: list[Any] = [
        Route("/", pages.index),
        Route("/gates/{namespace}/{name}", pages.gate),
        Route("/gates/{namespace}/{name}/decisions/{at}", pages.decision),
        Route("/gates/{namespace}/{name}/{action:str}", pages.act, methods=["POST"]),
        Route("/api/gates", pages.api_list),
        Route("/api/gates/{namespace}/{name}", pages.api_gate),
        Route("/healthz", lambda request: PlainTextResponse("ok\n")),
        Route("/metrics", _AsgiEndpoint(metrics.asgi_app()), methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=dashboard.STATIC_DIR), name="static"),
        *integration_routes(repository=repository, evaluate=evaluate, clock=clock, auth=auth),
    ]
    if span_sink is not None:
        from gatekeeper.sources.traces import IntakeCollector, TraceStore
        from gatekeeper.web.otlp import otlp_routes

        routes.extend(otlp_routes(span_sink, auth=auth, **(intake_options or {})))
        if isinstance(span_sink, TraceStore):  # the intake's counters on this app's /metrics
            metrics.registry.register(IntakeCollector(span_sink))
    app = Starlette(routes=routes, middleware=[Middleware(_SecurityHeaders)])
    app.state.metrics = metrics
    return app


class _AsgiEndpoint:
    """Wrap an ASGI callable so a `Route` serves it at an exact path (a `Mount` would redirect to `path/`)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class _SecurityHeaders:
    """Pure ASGI middleware: add the security headers to every HTTP response that lacks them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.encode(), v.encode()) for k, v in _SECURITY_HEADERS.items() if k.encode() not in have
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Pages:
    def __init__(
        self,
        *,
        repository: GateRepository,
        auth: Auth,
        clock: Callable[[], float],
        metrics: GateMetrics,
        read_only: bool = False,
    ) -> None:
        self.repository, self.auth, self.clock, self.metrics = repository, auth, clock, metrics
        self.read_only = read_only

    @property
    def writable(self) -> bool:
        return self.auth.has_token and not self.read_only

    async def index(self, request: Request) -> HTMLResponse:
        try:
            records = await run_in_threadpool(self.repository.list_gates)
        except Unreachable as e:
            html = dashboard.render_list([], root=_root(request), writable=self.writable, problem=str(e))
            return HTMLResponse(html, status_code=503)
        rows = gate_rows(records, now=self.clock())
        if request.query_params.get("fragment") == "live":
            return HTMLResponse(dashboard.render_live_list(rows, root=_root(request)), headers=_NO_STORE)
        return HTMLResponse(dashboard.render_list(rows, root=_root(request), writable=self.writable))

    async def gate(self, request: Request) -> HTMLResponse:
        ns, name = request.path_params["namespace"], request.path_params["name"]
        try:
            record = await run_in_threadpool(self.repository.get_gate, namespace=ns, name=name)
        except GateNotFound as e:
            return HTMLResponse(self._message("Not found", str(e), request), status_code=404)
        except Unreachable as e:
            return HTMLResponse(self._message("Unavailable", str(e), request), status_code=503)
        notice = request.query_params.get("done", "")
        failed = request.query_params.get("failed", "")
        links = await run_in_threadpool(self._decision_links, record)
        detail = gate_detail(record, now=self.clock(), decisions=links)
        if request.query_params.get("fragment") == "live":
            live = dashboard.render_live_detail(detail, root=_root(request))
            return HTMLResponse(live, headers=_NO_STORE)
        html = dashboard.render_detail(
            detail,
            root=_root(request),
            writable=self.writable,
            notice=failed or (f"{notice}: recorded" if notice else ""),
            notice_error=bool(failed),
        )
        return HTMLResponse(html)

    async def decision(self, request: Request) -> HTMLResponse:
        """The report of one decision (made at `at`), drawn from its record: the numbers of the look that made
        it, never a recomputation. A decision the history names but whose record is gone (only the newest are
        kept) shows its history entry and says so."""
        ns, name, at = (request.path_params[k] for k in ("namespace", "name", "at"))
        try:
            when = float(at)
            record = await run_in_threadpool(self.repository.get_gate, namespace=ns, name=name)
        except ValueError:
            return HTMLResponse(self._message("Not found", f"'{at}' is not a decision time", request), 404)
        except GateNotFound as e:
            return HTMLResponse(self._message("Not found", str(e), request), status_code=404)
        except Unreachable as e:
            return HTMLResponse(self._message("Unavailable", str(e), request), status_code=503)
        reader = getattr(self.repository, "decision", None)
        if reader is not None:
            try:
                found = await run_in_threadpool(reader, namespace=ns, name=name, at=when, uid=record.uid)
            except (Unreachable, Refused) as e:
                return HTMLResponse(self._message("Unavailable", str(e), request), status_code=503)
            if found is not None:
                from gatekeeper.web.decision_report import render_decision_report

                back = f"{_root(request)}/gates/{quote(ns, safe='')}/{quote(name, safe='')}"
                html = await run_in_threadpool(render_decision_report, found, back=back)
                return HTMLResponse(html, headers={"content-security-policy": _report_policy(html)})
        entry = next((h for h in record.status.history if abs(h.time - when) < 0.001), None)
        if entry is None:
            message = f"{ns}/{name} has no decision recorded at {at}: it may have left the bounded history"
            return HTMLResponse(self._message("Not found", message, request), status_code=404)
        page = dashboard.render_decision(record.namespace, record.name, entry, root=_root(request))
        return HTMLResponse(page)

    def _decision_links(self, record: Any) -> Any:
        """The recorded decisions of a gate, when the repository keeps them (else None: the history's)."""
        reader = getattr(self.repository, "decisions", None)
        if reader is None:
            return None
        try:
            return reader(namespace=record.namespace, name=record.name, uid=record.uid)
        except (Unreachable, Refused):  # the page still shows what the history names
            return None

    async def act(self, request: Request) -> Response:
        ns, name, action = (request.path_params[k] for k in ("namespace", "name", "action"))
        if action not in ("approve", "abort"):
            return PlainTextResponse(f"unknown action '{action}': use approve or abort\n", status_code=404)
        if not self.writable:
            return PlainTextResponse(
                "this dashboard is read-only (started without --token)\n", status_code=403
            )
        form = await _form(request)
        code = self.auth.status(request.headers.get("authorization"), fallback=form.get("token"))
        if code != 200:
            problem = "a token is required" if code == 401 else "the token is wrong"
            return PlainTextResponse(f"{problem}\n", status_code=code)
        by = (form.get("by") or "").strip()
        reason = (form.get("reason") or "").strip()
        if not by:
            return PlainTextResponse("by: say who you are (the 'Your name' field)\n", status_code=400)
        if action == "abort" and not reason:
            return PlainTextResponse("reason: say why the rollout is aborted\n", status_code=400)
        try:
            if action == "approve":
                await run_in_threadpool(self.repository.approve, namespace=ns, name=name, by=by)
            else:
                await run_in_threadpool(self.repository.abort, namespace=ns, name=name, by=by, reason=reason)
                self.metrics.record_action(gate=name, action="abort", caused_by_analysis=False)
        except GateNotFound as e:
            return PlainTextResponse(f"{e}\n", status_code=404)
        except (InvalidAction, Refused) as e:
            return _back(request, ns, name, failed=f"{action} rejected: {e}")
        except Unreachable as e:
            return PlainTextResponse(f"{e}\n", status_code=503)
        return _back(request, ns, name, done=f"{action} by {by}")

    async def api_list(self, request: Request) -> JSONResponse:
        try:
            records = await run_in_threadpool(self.repository.list_gates)
        except Unreachable as e:
            return JSONResponse({"error": str(e)}, status_code=503)
        return JSONResponse({"gates": [_row_json(r) for r in gate_rows(records, now=self.clock())]})

    async def api_gate(self, request: Request) -> JSONResponse:
        ns, name = request.path_params["namespace"], request.path_params["name"]
        try:
            record = await run_in_threadpool(self.repository.get_gate, namespace=ns, name=name)
        except GateNotFound as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        except Unreachable as e:
            return JSONResponse({"error": str(e)}, status_code=503)
        d = gate_detail(record, now=self.clock())
        return JSONResponse(
            {
                **_row_json(d.row),
                "description": d.description,
                "owners": list(d.owners),
                "approvals": list(d.approvals),
                "escalation": d.escalation,
                "signals": [
                    {"name": s.name, "verdict": s.verdict, "evidence": s.evidence} for s in d.signals
                ],
                "history": [h.model_dump(mode="json") for h in d.history],
            }
        )

    def _message(self, title: str, message: str, request: Request) -> str:
        return dashboard.render_message(title, message, root=_root(request), writable=self.writable)


_NO_STORE = {"cache-control": "no-store"}


def _row_json(r: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(r)


async def _form(request: Request) -> dict[str, str]:
    """application/x-www-form-urlencoded without python-multipart: the dashboard forms send nothing else."""
    raw = (await request.body())[:65536].decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _back(request: Request, ns: str, name: str, **query: str) -> RedirectResponse:
    q = "&".join(f"{k}={quote(v)}" for k, v in query.items())
    url = f"{_root(request)}/gates/{quote(ns, safe='')}/{quote(name, safe='')}?{q}"
    return RedirectResponse(url, status_code=303)


def _report_policy(page: str) -> str:
    """The report is one self-contained page with inline scripts (plotly): allow exactly those, by hash."""
    import base64
    import hashlib
    import re

    hashes = {
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)
    }
    scripts = " ".join(sorted(hashes)) or "'none'"
    return (
        f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; "
        "img-src data:; font-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")
