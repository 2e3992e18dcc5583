"""Prometheus (and PromQL-compatible Thanos, Mimir, Cortex) through `prometheus-api-client`.

Timeouts and bounded retries are always set: the library's defaults take ~6 s to give up on a dead server.
Retries use urllib3's backoff on connection errors and on 429/502/503/504; a 4xx answer is a `QueryRejected`.

Answers are asked uncompressed (`Accept-Encoding: identity`): a look's answers are a few kB on a fast link, and
gzip cost ~0.4 ms of CPU per query (+35%) in the GIL-bound controller, with Prometheus compressing on its side.
A gate whose Prometheus sits behind a slow link can ask for gzip with its own `Accept-Encoding` header.

Every answer may be partial: a Thanos, Cortex or Mimir querier that could not reach a store still answers 200
with the data it has and says so in `warnings`; VictoriaMetrics sets `isPartial`. The client library keeps
only `data.result`, so a response hook on the session reads what the backend said about completeness, and
such an answer raises `IncompleteAnswer` (missing evidence, never judged). `infos` (informational PromQL
annotations) do not count.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from gatekeeper.sources.base import IncompleteAnswer, QueryRejected, QueryResult, Series, SourceUnavailable

T = TypeVar("T")

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
        self._said = threading.local()  # what the last answer in this thread said about its completeness
        session.hooks["response"].append(self._completeness)
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

    def _completeness(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """Session response hook: remember the backend's warnings (a cheap byte search first)."""
        body = response.content or b""
        if b'"warnings"' not in body and b'"isPartial"' not in body:
            return
        try:
            doc = json.loads(body)
        except ValueError:
            return
        if not isinstance(doc, dict):  # not an answer at all: the parser says so with a typed error
            return
        warnings = doc.get("warnings") or ()
        said = tuple(str(w) for w in warnings) if isinstance(warnings, list) else (str(warnings),)
        if doc.get("isPartial"):
            said += ("the backend marked its answer partial (isPartial: true)",)
        self._said.warnings = said

    def _checked(self, query: str, data: Any) -> Any:
        said = getattr(self._said, "warnings", ())
        self._said.warnings = ()
        if said:
            raise IncompleteAnswer(
                f"{self.url} said its answer may be incomplete: {'; '.join(said)[:300]}",
                query=query,
                url=self.url,
                warnings=said,
            )
        return data

    def instant(self, query: str, *, at: float) -> QueryResult:
        t0 = time.perf_counter()
        self._said.warnings = ()
        data = self._call(query, lambda: self._client.custom_query(query, params={"time": f"{at:.3f}"}))
        data = self._checked(query, data)
        series = self._parse(query, data, instant=True)
        return QueryResult(query=query, series=series, elapsed=time.perf_counter() - t0)

    def range(self, query: str, *, start: float, end: float, step: float) -> QueryResult:
        t0 = time.perf_counter()
        self._said.warnings = ()
        data = self._call(
            query,
            lambda: self._client.custom_query_range(
                query,
                start_time=dt.datetime.fromtimestamp(start, tz=dt.UTC),
                end_time=dt.datetime.fromtimestamp(end, tz=dt.UTC),
                step=f"{step:g}",
            ),
        )
        data = self._checked(query, data)
        series = self._parse(query, data, instant=False)
        return QueryResult(query=query, series=series, elapsed=time.perf_counter() - t0)

    def _parse(self, query: str, data: Any, *, instant: bool) -> tuple[Series, ...]:
        try:
            return parse_result(data, instant=instant)
        except StringResult as e:
            raise QueryRejected(str(e), query=query, url=self.url) from None
        except MalformedAnswer as e:
            raise SourceUnavailable(
                f"{self.url} did not answer like Prometheus: {e}", query=query, url=self.url
            ) from None

    def _call(self, query: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (KeyError, TypeError, IndexError) as e:  # a 200 answer without data.result
            raise SourceUnavailable(
                f"{self.url} did not answer like Prometheus: a 200 answer without data.result "
                f"({type(e).__name__}: {str(e)[:80]})",
                query=query,
                url=self.url,
            ) from None
        except (requests.exceptions.JSONDecodeError, RecursionError) as e:  # before RequestException
            raise SourceUnavailable(
                f"{self.url} did not answer like Prometheus: the body is not JSON ({str(e)[:80]})",
                query=query,
                url=self.url,
            ) from None
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


class MalformedAnswer(ValueError):
    """A 200 answer whose `data.result` is not the shape Prometheus documents; the message names the path."""


class StringResult(MalformedAnswer):
    """The query returns a string (`resultType: string`), not numbers: the query is wrong, not the server."""


def parse_result(data: Any, *, instant: bool) -> tuple[Series, ...]:
    """`data.result` of a query answer as series (HTTP API: vector, matrix, scalar, string result types).

    A scalar (an instant query like `scalar(...)`) is one series without labels. Values may be "NaN",
    "+Inf", "-Inf" as Prometheus writes them. Anything else raises `MalformedAnswer` naming the path.
    """
    if data is None:
        return ()
    if instant and _is_pair(data) and isinstance(data[1], str):  # resultType scalar or string: [time, "v"]
        if not _is_number(data[1]):
            raise StringResult(
                f"the query returns a string ({str(data[1])[:60]!r}), not a number: fix the query"
            )
        return (_series({}, [data], where="data.result"),)
    if not isinstance(data, list):
        raise MalformedAnswer(f"data.result is {type(data).__name__}, not a list")
    out = []
    for i, item in enumerate(data):
        where = f"data.result[{i}]"
        if not isinstance(item, dict):
            raise MalformedAnswer(f"{where} is {type(item).__name__}, not an object")
        labels = item.get("metric", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise MalformedAnswer(f"{where}.metric is not an object of label strings")
        if "values" in item:  # a matrix: a range query, or an instant query of a range selector (raw samples)
            pairs, key = item["values"], "values"
        elif instant:
            pairs, key = ([item["value"]] if "value" in item else []), "value"
        else:
            pairs, key = [], "values"
        if not isinstance(pairs, list):
            raise MalformedAnswer(f"{where}.{key} is {type(pairs).__name__}, not a list")
        out.append(_series(labels, pairs, where=f"{where}.{key}"))
    return tuple(out)


def _series(labels: dict[str, str], pairs: list[Any], *, where: str) -> Series:
    columns = _fast_columns(pairs)
    if columns is None:  # something is off: find it, pair by pair, and name it
        for j, p in enumerate(pairs):
            if not _is_pair(p) or not _is_number(p[1]):
                raise MalformedAnswer(f'{where}[{j}] is not a [time, "number"] pair: {str(p)[:60]}')
        columns = (
            np.array([float(p[0]) for p in pairs], dtype=float),
            np.array([float(p[1]) for p in pairs], dtype=float),  # "NaN", "+Inf" parse as Prometheus means
        )
    return Series(labels=dict(labels), timestamps=columns[0], values=columns[1])


_first, _second = operator.itemgetter(0), operator.itemgetter(1)


def _fast_columns(pairs: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(times, values) of well-formed pairs in whole-column passes (a raw-sample answer holds thousands), or
    None when any pair is not what `_is_pair` and `_is_number` accept: the same rule, checked by type sets."""
    if set(map(type, pairs)) - {list} or set(map(len, pairs)) - {2}:
        return None
    times, values = list(map(_first, pairs)), list(map(_second, pairs))
    if set(map(type, times)) - {int, float} or set(map(type, values)) - {str}:
        return None
    try:
        ts = np.array(times, dtype=float)
        vals = np.array(list(map(float, values)), dtype=float)
    except (ValueError, OverflowError):
        return None
    if not np.isfinite(ts).all():
        return None
    return ts, vals


def _is_pair(p: Any) -> bool:
    if not (
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], int | float) and not isinstance(p[0], bool)
    ):
        return False
    try:
        return math.isfinite(p[0])
    except OverflowError:  # an integer beyond any float (JSON allows it): not a time
        return False


def _is_number(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True
