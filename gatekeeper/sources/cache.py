"""A per-evaluation memo over a MetricsSource: signals of one gate often share queries (the same `total`
counter, the same histogram, the same freshness check). Identical queries in one evaluation run once; callers
asking concurrently wait for the first. Errors are memoised too, so every signal sees the same failure."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from gatekeeper.sources.base import MetricsSource, QueryResult


class MemoSource:
    """Wrap `inner` for the lifetime of one evaluation (never longer: data moves on)."""

    def __init__(self, inner: MetricsSource) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._futures: dict[tuple[object, ...], Future[QueryResult]] = {}

    def instant(self, query: str, *, at: float) -> QueryResult:
        return self._once(("instant", query, at), lambda: self.inner.instant(query, at=at))

    def range(self, query: str, *, start: float, end: float, step: float) -> QueryResult:
        return self._once(
            ("range", query, start, end, step),
            lambda: self.inner.range(query, start=start, end=end, step=step),
        )

    def _once(self, key: tuple[object, ...], call: Callable[[], QueryResult]) -> QueryResult:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if owner:
                future = self._futures[key] = Future()
        assert future is not None
        if owner:
            try:
                future.set_result(call())
            except BaseException as e:
                future.set_exception(e)
        return future.result()
