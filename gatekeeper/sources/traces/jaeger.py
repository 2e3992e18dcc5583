"""Traces from an existing Jaeger, judged with the intake's own rules: a `TraceSource` over Jaeger's query API.

    source.traces: {jaeger: {url: http://jaeger-query.tracing:16686, service: storefront}}

For a window, the traces of `service` that started in it come from `GET /api/v3/traces` (OTLP JSON), one
request per step; an interval that returns as many traces as asked for (`depth`) may have been cut short, so
it is halved and asked again, down to one second. Each trace is assembled and judged as the intake does
(`rules.judge`), counted at its root span's end, per version (`version_attribute` on the root's resource or
span). Gaps are reported as the intake reports them, in `dropped_spans`: the spans of traces the rule would
have judged whose root is missing (incomplete traces), and `depth` for every one-second interval still cut
short (a sampling gap: traces exist that were not seen). No traces in the window is an empty answer, which the
invariant signal turns into NODATA.

Errors: connection failures, timeouts and 5xx raise `SourceUnavailable`; other non-2xx `QueryRejected`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

from gatekeeper.sources.base import InvariantCounts, QueryRejected, SourceUnavailable
from gatekeeper.sources.traces.buckets import step_grid
from gatekeeper.sources.traces.decode import MalformedPayload, parse_json, trace_id_hex
from gatekeeper.sources.traces.rules import Rule, TraceView, has_when, judge
from gatekeeper.sources.traces.store import _attribute

__all__ = ["JaegerTraceSource"]


@dataclass(frozen=True)
class _Trace:
    trace_id: str
    version: str | None
    root_name: str | None
    root_end: float
    spans: list[Any]  # flat: name, status code, end (as the store keeps them)
    newest: float


@dataclass(frozen=True)
class _Window:
    traces: tuple[_Trace, ...]
    truncated: int  # one-second intervals still cut short at `depth`


class JaegerTraceSource:
    def __init__(
        self,
        *,
        url: str,
        service: str,
        version_attribute: str = "service.version",
        timeout: float = 10.0,
        depth: int = 2000,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.service = service
        self.version_attribute = version_attribute
        self.depth = depth
        self._client = client or httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[float, float, float], _Window] = OrderedDict()

    def close(self) -> None:
        self._client.close()

    def invariant_counts(
        self, signal: Any, *, arm: str, start: float, end: float, step: float
    ) -> InvariantCounts:
        rule = Rule.of(signal)
        points = step_grid(start, end, step)
        window = self._window(float(points[0]) - step, end, step)
        lo = float(points[0]) - step
        checked = np.zeros(len(points), dtype=np.int64)
        violations = np.zeros(len(points), dtype=np.int64)
        examples: list[tuple[float, str]] = []
        lost = 0
        newest: float | None = None
        for t in window.traces:
            if t.version != arm:
                continue
            seen = min(t.newest, end)
            newest = seen if newest is None else max(newest, seen)
            if t.root_name is None:
                if has_when(rule, t.spans):
                    lost += len(t.spans) // 3
                continue
            if not lo <= t.root_end < end:
                continue
            applies, violated = judge(rule, TraceView(root_name=t.root_name, spans=t.spans))
            if not applies:
                continue
            k = min(int((t.root_end - lo) // step), len(points) - 1)
            checked[k] += 1
            if violated:
                violations[k] += 1
                examples.append((t.root_end, t.trace_id))
        examples.sort(reverse=True)
        return InvariantCounts(
            timestamps=points,
            checked=checked,
            violations=violations,
            examples=tuple(tid for _, tid in examples[:20]),
            dropped_spans=lost + window.truncated * self.depth,
            newest_span=newest,
        )

    # -- fetching -----------------------------------------------------------------------------------------------
    def _window(self, start: float, end: float, step: float) -> _Window:
        key = (start, end, step)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        truncated = 0
        t = start
        while t < end:
            truncated += self._fetch(t, min(t + step, end), found)
            t += step
        window = _Window(tuple(self._assemble(tid, spans) for tid, spans in found.items()), truncated)
        with self._lock:
            self._cache[key] = window
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
        return window

    def _fetch(self, lo: float, hi: float, found: dict[str, list[tuple[dict[str, Any], Any]]]) -> int:
        """Traces that started in [lo, hi) into `found` (by trace id); returns intervals still cut short."""
        params = {
            "query.service_name": self.service,
            "query.start_time_min": _rfc3339(lo),
            "query.start_time_max": _rfc3339(hi),
            "query.num_traces": str(self.depth),
        }
        request = self._get(params)
        ids = set()
        for rs in request.resource_spans:
            attrs = rs.resource.attributes
            for ss in rs.scope_spans:
                for span in ss.spans:
                    tid = trace_id_hex(span.trace_id)
                    ids.add(tid)
                    spans = found.setdefault(tid, [])
                    spans.append((attrs, span))
        if len(ids) < self.depth:
            return 0
        if hi - lo <= 1.0:
            return 1
        mid = (lo + hi) / 2
        return self._fetch(lo, mid, found) + self._fetch(mid, hi, found)

    def _get(self, params: dict[str, str]) -> Any:
        url = f"{self.url}/api/v3/traces"
        try:
            r = self._client.get(url, params=params)
        except httpx.TimeoutException as e:
            raise SourceUnavailable(
                f"Jaeger at {self.url} did not answer in time", query=str(params), url=url
            ) from e
        except httpx.HTTPError as e:
            raise SourceUnavailable(
                f"Jaeger at {self.url} is unreachable: {e}", query=str(params), url=url
            ) from e
        if r.status_code == 404 and "No traces found" in r.text:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

            return ExportTraceServiceRequest()
        if r.status_code >= 500 or r.status_code == 429:
            raise SourceUnavailable(
                f"Jaeger answered HTTP {r.status_code}: {r.text[:200]}", query=str(params), url=url
            )
        if r.status_code != 200:
            raise QueryRejected(
                f"Jaeger answered HTTP {r.status_code}: {r.text[:200]}", query=str(params), url=url
            )
        try:
            body = r.json()
            result = body.get("result") if isinstance(body, dict) else None
            return parse_json(json.dumps(result if isinstance(result, dict) else {}).encode())
        except (ValueError, MalformedPayload) as e:
            raise QueryRejected(f"Jaeger's answer is not OTLP JSON: {e}", query=str(params), url=url) from e

    def _assemble(self, tid: str, spans: list[tuple[Any, Any]]) -> _Trace:
        flat: list[Any] = []
        root_name: str | None = None
        root_end = 0.0
        version: str | None = None
        root_version: str | None = None
        seen_ids: set[bytes] = set()
        for attrs, span in spans:
            if span.span_id in seen_ids:  # the same span from two overlapping intervals
                continue
            seen_ids.add(span.span_id)
            end = span.end_time_unix_nano / 1e9 or span.start_time_unix_nano / 1e9
            v = _attribute(attrs, self.version_attribute) or _attribute(
                span.attributes, self.version_attribute
            )
            flat += (span.name, span.status.code, end)
            if not span.parent_span_id:
                root_name, root_end, root_version = span.name, end, v
            elif version is None:
                version = v
        return _Trace(
            trace_id=tid,
            version=root_version if root_version is not None else version,
            root_name=root_name,
            root_end=root_end,
            spans=flat,
            newest=max(flat[2::3]) if flat else 0.0,
        )


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
