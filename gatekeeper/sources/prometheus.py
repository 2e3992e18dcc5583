"""Prometheus (and PromQL-compatible Thanos, Mimir, Cortex) through `prometheus-api-client`.

Timeouts and bounded retries are always set: the library's defaults take ~6 s to give up on a dead server.
Retries use urllib3's backoff on connection errors and on 429/502/503/504; a 4xx answer is a `QueryRejected`.

Answers are asked uncompressed (`Accept-Encoding: identity`): a look's answers are a few kB on a fast link, and
gzip cost ~0.4 ms of CPU per query (+35%) in the GIL-bound controller, with Prometheus compressing on its side.
A gate whose Prometheus sits behind a slow link can ask for gzip with its own `Accept-Encoding` header.
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from gatekeeper.sources.base import QueryRejected, QueryResult, Series, SourceUnavailable

_RETRY_STATUS = (429, 502, 503, 504)


class PrometheusSource:
    """A `MetricsSource` on one Prometheus-compatible endpoint."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.2,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=backoff,
            status_forcelist=_RETRY_STATUS,
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,
        )
        session = requests.Session()
        # Proxy settings are not read from the environment on every query (that lookup cost ~5 ms per query);
        # a Prometheus behind a proxy is reached through its own URL and headers.
        session.trust_env = False
        self._client = PrometheusConnect(
            url=self.url,
            headers={"Accept-Encoding": "identity", **(headers or {})},
            disable_ssl=False,
            retry=retry,
            timeout=timeout,
            session=session,
        )

    def close(self) -> None:
        self._client.close()

    def instant(self, query: str, *, at: float) -> QueryResult:
        t0 = time.perf_counter()
        data = self._call(query, lambda: self._client.custom_query(query, params={"time": f"{at:.3f}"}))
        return QueryResult(query=query, series=_parse(data, instant=True), elapsed=time.perf_counter() - t0)

    def range(self, query: str, *, start: float, end: float, step: float) -> QueryResult:
        t0 = time.perf_counter()
        data = self._call(
            query,
            lambda: self._client.custom_query_range(
                query,
                start_time=dt.datetime.fromtimestamp(start, tz=dt.UTC),
                end_time=dt.datetime.fromtimestamp(end, tz=dt.UTC),
                step=f"{step:g}",
            ),
        )
        return QueryResult(query=query, series=_parse(data, instant=False), elapsed=time.perf_counter() - t0)

    def _call(self, query: str, fn):  # type: ignore[no-untyped-def]
        try:
            return fn()
        except PrometheusApiClientException as e:
            status, detail = _status_of(str(e))
            if status is not None and 400 <= status < 500 and status not in _RETRY_STATUS:
                raise QueryRejected(
                    f"Prometheus rejected the query (HTTP {status}): {detail}", query=query, url=self.url
                ) from e
            raise SourceUnavailable(
                f"Prometheus answered HTTP {status}: {detail}", query=query, url=self.url
            ) from e
        except requests.exceptions.Timeout as e:
            raise SourceUnavailable(
                f"Prometheus at {self.url} did not answer within {self.timeout:g}s", query=query, url=self.url
            ) from e
        except requests.exceptions.RequestException as e:
            raise SourceUnavailable(
                f"cannot reach Prometheus at {self.url} ({_short(e)})", query=query, url=self.url
            ) from e
        except ValueError as e:  # a non-JSON body from something that is not Prometheus
            raise SourceUnavailable(
                f"{self.url} did not answer like Prometheus ({e})", query=query, url=self.url
            ) from e


def _status_of(message: str) -> tuple[int | None, str]:
    import ast
    import json
    import re

    m = re.match(r"HTTP Status Code (\d+) \((.*)\)$", message, re.S)
    if not m:
        return None, message
    body = m.group(2)
    try:
        raw = (
            ast.literal_eval(body) if body.startswith(("b'", 'b"')) else body
        )  # the library puts a bytes repr here
        detail = json.loads(raw).get("error", raw)
    except Exception:
        detail = body
    return int(m.group(1)), str(detail)[:300]


def _short(e: Exception) -> str:
    text = str(e)
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused"
    return text[:200]


def _parse(data: list[dict], *, instant: bool) -> tuple[Series, ...]:
    out = []
    for item in data or []:
        if instant:
            pairs = [item["value"]] if "value" in item else []
        else:
            pairs = item.get("values", [])
        ts = np.array([float(p[0]) for p in pairs], dtype=float)
        vals = np.array([float(p[1]) for p in pairs], dtype=float)  # float('NaN'), '+Inf' parse fine
        out.append(Series(labels=dict(item.get("metric", {})), timestamps=ts, values=vals))
    return tuple(out)
