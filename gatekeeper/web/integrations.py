"""Endpoints that let an existing rollout controller use gatekeeper as its judge.

Argo Rollouts `web` metric provider
    GET  /integrations/argo/{namespace}/{gate}?window=10m&stage=1&service=checkout   (other params = gate args)
    POST /integrations/argo/{namespace}/{gate}   body {"args": {...}, "window": "10m", "stage": 1}
    200 {"verdict": "pass"|"inconclusive"|"nodata"|"error"|"fail", "reason", "signals", ...}
    Argo applies `jsonPath` (default `{$}`: the whole body) and evaluates the conditions on `result`. With
    `successCondition: result.verdict == "pass"` and `failureCondition: result.verdict == "fail"` every other
    verdict is Inconclusive (Argo: neither condition true). An evaluation error is a 200 with verdict "error",
    not a 5xx: Argo counts non-2xx as measurement errors toward `consecutiveErrorLimit` and then aborts the
    rollout, and a Prometheus outage must never roll back by itself (Argo Rollouts #1466). Bad input (unknown
    gate 404, bad arguments 400) is non-2xx on purpose: the template is wrong, a human must look.

Flagger webhooks (request body {name, namespace, phase, checksum, metadata}; Flagger proceeds on 200-202)
    POST /integrations/flagger/confirm-rollout    200 unless the gate was aborted or its first stage needs an
                                                  approval not yet given
    POST /integrations/flagger/confirm-promotion  200 only on a pass (and approval where the last stage asks)
    POST /integrations/flagger/rollback           200 (= roll back) only on a fail, or after an operator abort
    Anything else is 403 with a JSON reason (Flagger logs the body), as Flagger's own tester answers a closed
    gate. The gate is `metadata.gate` ("name" or "namespace/name"), else the Canary's name and namespace;
    `metadata.window` and `metadata.stage` as for Argo; every other metadata key is a gate argument.

Authentication (`gatekeeper.web.auth`): with a token configured every endpoint needs `Authorization: Bearer
<token>` (Argo: the web provider's `headers`, the value from a Secret through an argument's `valueFrom`): 401
without, 403 with a wrong one. Flagger's webhooks cannot send headers, so a Flagger hook may carry the token
as `metadata.token` instead (visible to whoever can read the Canary: prefer a NetworkPolicy, see docs/traces.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatekeeper.judge import Judgement
from gatekeeper.ops.dry_run import resolve_window
from gatekeeper.ops.errors import GateNotFound, Unreachable
from gatekeeper.ops.gate import GateView, resolve_spec
from gatekeeper.ops.repository import GateRepository
from gatekeeper.spec import GateSpec, SpecError
from gatekeeper.spec.outcome import Verdict
from gatekeeper.spec.status import Phase
from gatekeeper.spec.window import Window
from gatekeeper.web.auth import Auth, denial

__all__ = ["FLAGGER_HOOKS", "Evaluator", "integration_routes"]

FLAGGER_HOOKS = ("confirm-rollout", "confirm-promotion", "rollback")
_RESERVED = frozenset({"window", "stage", "gate", "token"})
_DEFAULT_WINDOW = "10m"


class Evaluator(Protocol):
    """Evaluate a gate over a window (blocking; called in a worker thread)."""

    def __call__(self, gate: GateSpec, *, window: Window, stage: int) -> Judgement: ...


class BadInput(ValueError):
    """The request names a field that is wrong; the message says which and how to fix it."""


def integration_routes(
    *,
    repository: GateRepository,
    evaluate: Evaluator,
    clock: Callable[[], float] = time.time,
    auth: Auth | None = None,
) -> list[Route]:
    judge = _Judge(repository=repository, evaluate=evaluate, clock=clock, auth=auth or Auth.none())
    return [
        Route("/integrations/argo/{namespace}/{name}", judge.argo, methods=["GET", "POST"]),
        Route("/integrations/flagger/{hook}", judge.flagger, methods=["POST"]),
    ]


class _Judge:
    def __init__(
        self, *, repository: GateRepository, evaluate: Evaluator, clock: Callable[[], float], auth: Auth
    ) -> None:
        self.repository, self.evaluate, self.clock, self.auth = repository, evaluate, clock, auth

    # --- Argo Rollouts -------------------------------------------------------------------------------------

    async def argo(self, request: Request) -> Response:
        if (denied := self.auth.deny(request)) is not None:
            return denied
        try:
            params = await _argo_params(request)
            namespace, name = request.path_params["namespace"], request.path_params["name"]
            record = await run_in_threadpool(self.repository.get_gate, namespace=namespace, name=name)
            judgement = await run_in_threadpool(self._judge, record, params, default_stage=1)
        except BadInput as e:
            return _error(400, str(e))
        except GateNotFound as e:
            return _error(404, str(e))
        except Unreachable as e:
            return _error(503, str(e))
        return JSONResponse(_verdict_body(record, judgement))

    # --- Flagger -------------------------------------------------------------------------------------------

    async def flagger(self, request: Request) -> Response:
        hook = request.path_params["hook"]
        if self.auth.has_token and not request.headers.get("authorization"):
            try:  # Flagger sends no headers: the token may come as metadata.token
                meta = (await _json_body(request)).get("metadata")
            except BadInput:
                meta = None
            token = meta.get("token") if isinstance(meta, dict) else None
            code = self.auth.status(None, fallback=token if isinstance(token, str) else None)
            if code != 200:
                return denial(code)
        elif (denied := self.auth.deny(request)) is not None:
            return denied
        if hook not in FLAGGER_HOOKS:
            return _error(404, f"unknown Flagger hook '{hook}': use one of {', '.join(FLAGGER_HOOKS)}")
        try:
            payload = await _flagger_payload(request)
            namespace, name, params = _flagger_target(payload)
            record = await run_in_threadpool(self.repository.get_gate, namespace=namespace, name=name)
            if hook == "confirm-rollout":
                return await run_in_threadpool(self._confirm_rollout, record, params)
            stage_default = None if hook == "confirm-promotion" else 1
            if hook == "rollback" and record.status.phase == Phase.ABORTED:
                return _answer(
                    True, {"gate": _ref(record), "reason": f"operator abort: {record.status.reason}"}
                )
            judgement = await run_in_threadpool(self._judge, record, params, default_stage=stage_default)
        except BadInput as e:
            return _error(400, str(e))
        except GateNotFound as e:
            return _error(404, str(e))
        except Unreachable as e:
            return _error(503, str(e))
        body = _verdict_body(record, judgement)
        if hook == "rollback":
            return _answer(judgement.verdict == Verdict.FAIL, body)
        blocked = _blocked(record, stage=judgement.stage)
        if blocked:
            body["reason"] = blocked
            return _answer(False, body)
        return _answer(judgement.verdict == Verdict.PASS, body)

    def _confirm_rollout(self, record: GateView, params: dict[str, str]) -> JSONResponse:
        gate = _spec(record, params)
        body: dict[str, Any] = {"gate": _ref(record), "phase": record.status.phase.value}
        blocked = (
            _blocked(record, stage=0) if gate.stages[0].authority.mode == "approval" else _aborted(record)
        )
        body["reason"] = blocked or "the gate is ready: its spec and arguments resolve"
        return _answer(not blocked, body)

    # --- shared --------------------------------------------------------------------------------------------

    def _judge(self, record: GateView, params: dict[str, str], *, default_stage: int | None) -> Judgement:
        gate = _spec(record, params)
        stage = _stage(params.get("stage"), gate, default=default_stage)
        try:
            window = resolve_window(
                gate=gate, now=self.clock(), window=params.get("window") or _DEFAULT_WINDOW
            )
        except ValueError as e:
            raise BadInput(f"window: {e}") from e
        return self.evaluate(gate, window=window, stage=stage)


def _spec(record: GateView, params: dict[str, str]) -> GateSpec:
    args = {k: v for k, v in params.items() if k not in _RESERVED}
    try:
        return resolve_spec(record, args=args)
    except SpecError as e:
        raise BadInput(f"gate {_ref(record)} does not resolve with the arguments given: {e}") from e


def _stage(value: str | None, gate: GateSpec, *, default: int | None) -> int:
    """1-based `stage` parameter to a 0-based index; default None = the last stage."""
    if value in (None, ""):
        return len(gate.stages) - 1 if default is None else min(default, len(gate.stages)) - 1
    try:
        n = int(value)
    except ValueError:
        raise BadInput(f"stage: '{value}' is not a number; give 1..{len(gate.stages)}") from None
    if not 1 <= n <= len(gate.stages):
        raise BadInput(f"stage: {n} is out of range; the gate has stages 1..{len(gate.stages)}")
    return n - 1


def _blocked(record: GateView, *, stage: int) -> str:
    from gatekeeper.controller.machine import is_approved

    aborted = _aborted(record)
    if aborted:
        return aborted
    stages = record.spec.get("stages") if isinstance(record.spec.get("stages"), list) else []
    spec_stage = stages[stage] if stage < len(stages) and isinstance(stages[stage], dict) else {}
    authority = spec_stage.get("authority") if isinstance(spec_stage.get("authority"), dict) else {}
    if authority.get("mode") == "approval" and not is_approved(record.status, stage):
        return f"stage {stage + 1} needs an approval by group {authority.get('group')}; none recorded yet"
    return ""


def _aborted(record: GateView) -> str:
    if record.status.phase == Phase.ABORTED:
        return f"the gate was aborted: {record.status.reason}"
    return ""


async def _argo_params(request: Request) -> dict[str, str]:
    params = {k: v for k, v in request.query_params.items()}
    if request.method == "POST":
        body = await _json_body(request)
        args = body.get("args", {})
        if not isinstance(args, dict):
            raise BadInput('args: must be an object of strings, e.g. {"service": "checkout"}')
        params |= {str(k): str(v) for k, v in args.items()}
        for key in ("window", "stage"):
            if body.get(key) is not None:
                params[key] = str(body[key])
    return params


async def _flagger_payload(request: Request) -> dict[str, Any]:
    body = await _json_body(request)
    for key in ("name", "namespace"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise BadInput(f"{key}: Flagger sends the Canary's {key}; the body has none")
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict):
        raise BadInput("metadata: must be an object of strings (the webhook's metadata)")
    return body


def _flagger_target(payload: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    meta = {str(k): str(v) for k, v in (payload.get("metadata") or {}).items()}
    namespace, name = payload["namespace"], payload["name"]
    ref = meta.get("gate", "")
    if ref:
        namespace, _, name = ref.rpartition("/") if "/" in ref else (namespace, "", ref)
    return namespace, name, meta


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise BadInput(f"body: not JSON ({e})") from e
    if not isinstance(body, dict):
        raise BadInput("body: must be a JSON object")
    return body


def _verdict_body(record: GateView, j: Judgement) -> dict[str, Any]:
    return {
        "verdict": j.verdict.value,
        "reason": j.reason,
        "gate": _ref(record),
        "stage": j.stage + 1,
        "weight": j.weight,
        "window": j.window,
        "critical_failure": j.critical_failure,
        "signals": {s.name: s.verdict.value for s in j.signals},
        "decided": j.verdict in (Verdict.PASS, Verdict.FAIL),
    }


def _ref(record: GateView) -> str:
    return f"{record.namespace}/{record.name}"


def _answer(proceed: bool, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse({**body, "proceed": proceed}, status_code=200 if proceed else 403)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
