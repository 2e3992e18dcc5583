"""A Prometheus remote-write (protocol 0.1.0) client for loading synthetic series into a real Prometheus.

The body is a real protobuf ``prometheus.WriteRequest`` (message classes built at import time from a
``FileDescriptorProto`` with ``google.protobuf.message_factory``; no generated code is kept in the tree),
compressed with snappy *block* format (``cramjam.snappy.compress_raw``) and POSTed with the three headers the
receiver requires.

Ordering matters to the receiver (see ``docs/testing.md``): samples of one series that arrive out of
order inside a request are dropped silently, and once the server holds a sample anything more than ~1 h older is
rejected as "out of bounds". ``RemoteWriteClient.write`` therefore sorts every series, checks it, and sends
all series together in ascending time order, at most ``max_samples_per_request`` samples per request.

Errors, grouped by what the caller should do::

    RemoteWriteError
    ├── InvalidSeries        (also a ValueError) fix the input: the message names the series and field
    ├── RemoteWriteRejected  the server refused the data (HTTP 4xx, e.g. out of bounds): fix the data/order
    └── RemoteWriteFailed    server error (5xx) or unreachable: check the server; not retried here, since 2.42
                             answers "too old sample" with 500 and a blind retry would loop forever
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cramjam
import httpx
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = [
    "STALE_MARKER",
    "InvalidSeries",
    "RemoteWriteClient",
    "RemoteWriteError",
    "RemoteWriteFailed",
    "RemoteWriteRejected",
    "Series",
    "WriteRequest",
    "WriteStats",
    "encode_write_request",
]

#: Prometheus' staleness marker: a NaN with a fixed payload. A sample with this value ends a series at once
#: (what a scrape writes when a target disappears) instead of after the 5-minute lookback.
STALE_MARKER: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# -- protobuf messages, built at runtime --------------------------------------------------------------------
def _build_messages() -> dict[str, Any]:
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="gatekeeper_sim_remote.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, int, str | None]) -> None:
        msg = file.message_type.add(name=name)
        for field_name, number, type_, label, type_name in fields:
            fd = msg.field.add(name=field_name, number=number, type=type_, label=label)
            if type_name:
                fd.type_name = type_name

    opt, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    message("Label", ("name", 1, f.TYPE_STRING, opt, None), ("value", 2, f.TYPE_STRING, opt, None))
    message("Sample", ("value", 1, f.TYPE_DOUBLE, opt, None), ("timestamp", 2, f.TYPE_INT64, opt, None))
    message(
        "TimeSeries",
        ("labels", 1, f.TYPE_MESSAGE, rep, ".prometheus.Label"),
        ("samples", 2, f.TYPE_MESSAGE, rep, ".prometheus.Sample"),
    )
    message("WriteRequest", ("timeseries", 1, f.TYPE_MESSAGE, rep, ".prometheus.TimeSeries"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prometheus.{name}"))
        for name in ("Label", "Sample", "TimeSeries", "WriteRequest")
    }


_MESSAGES = _build_messages()
WriteRequest = _MESSAGES["WriteRequest"]
TimeSeries = _MESSAGES["TimeSeries"]


# -- data ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One time series: labels (``__name__`` included) and ``(timestamp_ms, value)`` samples."""

    labels: Mapping[str, str]
    samples: Sequence[tuple[int, float]]

    @property
    def name(self) -> str:
        return self.labels.get("__name__", "")

    def describe(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()) if k != "__name__")
        return f"{self.name or '<no __name__>'}{{{inner}}}"


@dataclass(frozen=True)
class WriteStats:
    """What one ``write`` call sent."""

    series: int
    samples: int
    requests: int
    bytes_sent: int
    first_timestamp_ms: int | None = None
    last_timestamp_ms: int | None = None
    statuses: tuple[int, ...] = field(default=())


class RemoteWriteError(Exception):
    """Base of every remote-write error."""


class InvalidSeries(RemoteWriteError, ValueError):
    """A series is malformed; the message names it, the field and the fix. Nothing was sent."""


class RemoteWriteRejected(RemoteWriteError):
    """The server answered 4xx: it refused the data. ``status`` and ``server_message`` say why."""

    def __init__(self, message: str, *, status: int, server_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class RemoteWriteFailed(RemoteWriteError):
    """The server answered 5xx or could not be reached. ``status`` is None when unreachable."""

    def __init__(self, message: str, *, status: int | None, server_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


# -- validation and encoding --------------------------------------------------------------------------------
def _validate(series: Series, index: int) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    where = f"series #{index} {series.describe()}"
    if not _METRIC_NAME.match(series.name):
        raise InvalidSeries(
            f"{where}: label '__name__' is {series.name!r}; give a metric name matching [a-zA-Z_:][a-zA-Z0-9_:]*."
        )
    for name, value in series.labels.items():
        if (
            not isinstance(name, str)
            or not _LABEL_NAME.match(name)
            or (name.startswith("__") and name != "__name__")
        ):
            raise InvalidSeries(
                f"{where}: label name {name!r} is invalid; use [a-zA-Z_][a-zA-Z0-9_]* (no '__' prefix)."
            )
        if not isinstance(value, str) or value == "":
            raise InvalidSeries(
                f"{where}: label {name!r} has value {value!r}; use a non-empty string or drop the label."
            )
    if len(series.samples) == 0:
        raise InvalidSeries(f"{where}: field 'samples' is empty; give at least one (timestamp_ms, value).")
    try:
        ts = np.array([int(t) for t, _ in series.samples], dtype=np.int64)
        values = np.array([float(v) for _, v in series.samples], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidSeries(
            f"{where}: field 'samples' must hold (timestamp_ms: int, value: float) pairs ({exc})."
        ) from exc
    order = np.argsort(ts, kind="stable")
    ts, values = ts[order], values[order]
    if ts.size > 1 and np.any(ts[1:] == ts[:-1]):
        dup = int(ts[1:][ts[1:] == ts[:-1]][0])
        raise InvalidSeries(f"{where}: two samples at timestamp {dup} ms; keep one sample per timestamp.")
    return sorted(series.labels.items()), ts, values


def encode_write_request(series: Iterable[tuple[Sequence[tuple[str, str]], np.ndarray, np.ndarray]]) -> bytes:
    """Serialize ``(sorted labels, timestamps_ms, values)`` triples to ``WriteRequest`` bytes (not compressed)."""
    request = WriteRequest()
    for labels, ts, values in series:
        out = request.timeseries.add()
        for name, value in labels:
            out.labels.add(name=name, value=value)
        for t, v in zip(ts.tolist(), values.tolist(), strict=True):
            out.samples.add(value=v, timestamp=t)
    return bytes(request.SerializeToString())


def _chunks(
    prepared: list[tuple[list[tuple[str, str]], np.ndarray, np.ndarray]], max_samples: int
) -> Iterable[list[tuple[list[tuple[str, str]], np.ndarray, np.ndarray]]]:
    """Requests in ascending time order: all samples sorted by time, cut every ``max_samples``."""
    all_ts = np.concatenate([ts for _, ts, _ in prepared])
    owner = np.concatenate([np.full(ts.size, i, dtype=np.int64) for i, (_, ts, _) in enumerate(prepared)])
    pos = np.concatenate([np.arange(ts.size) for _, ts, _ in prepared])
    order = np.lexsort((owner, all_ts))
    for start in range(0, order.size, max_samples):
        part = order[start : start + max_samples]
        regroup = part[np.lexsort((all_ts[part], owner[part]))]
        owners = owner[regroup]
        cuts = np.flatnonzero(np.diff(owners)) + 1
        chunk = []
        for run in np.split(regroup, cuts):
            labels, ts, values = prepared[int(owner[run[0]])]
            idx = pos[run]
            chunk.append((labels, ts[idx], values[idx]))
        yield chunk


# -- client -------------------------------------------------------------------------------------------------
class RemoteWriteClient:
    """POSTs series to ``url`` (``http://HOST:PORT/api/v1/write``).

    Args:
        url: the receiver endpoint.
        timeout: seconds per request.
        max_samples_per_request: requests are cut after this many samples (time order is kept across cuts).
        transport: an ``httpx`` transport, the test seam (default: real HTTP).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        max_samples_per_request: int = 20_000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_samples_per_request < 1:
            raise ValueError(f"max_samples_per_request must be >= 1, got {max_samples_per_request}")
        self.url = url
        self._timeout = timeout
        self._max_samples = max_samples_per_request
        self._transport = transport

    def write(self, series: Iterable[Series]) -> WriteStats:
        """Validate every series first (nothing is sent if one is bad), then send them in time order."""
        prepared = [_validate(s, i) for i, s in enumerate(series)]
        if not prepared:
            return WriteStats(series=0, samples=0, requests=0, bytes_sent=0)
        n_samples = sum(ts.size for _, ts, _ in prepared)
        statuses: list[int] = []
        sent = 0
        with httpx.Client(timeout=self._timeout, transport=self._transport) as client:
            for chunk in _chunks(prepared, self._max_samples):
                body = bytes(cramjam.snappy.compress_raw(encode_write_request(chunk)))
                statuses.append(self._post(client, body, chunk))
                sent += len(body)
        return WriteStats(
            series=len(prepared),
            samples=n_samples,
            requests=len(statuses),
            bytes_sent=sent,
            first_timestamp_ms=int(min(ts[0] for _, ts, _ in prepared)),
            last_timestamp_ms=int(max(ts[-1] for _, ts, _ in prepared)),
            statuses=tuple(statuses),
        )

    def _post(self, client: httpx.Client, body: bytes, chunk: list[Any]) -> int:
        span = f"samples {min(int(ts[0]) for _, ts, _ in chunk)}..{max(int(ts[-1]) for _, ts, _ in chunk)} ms"
        try:
            response = client.post(
                self.url,
                content=body,
                headers={
                    "Content-Encoding": "snappy",
                    "Content-Type": "application/x-protobuf",
                    "X-Prometheus-Remote-Write-Version": "0.1.0",
                    "User-Agent": "gatekeeper-sim/0.1",
                },
            )
        except httpx.TransportError as exc:
            raise RemoteWriteFailed(
                f"remote write to {self.url} failed ({type(exc).__name__}: {exc}); is Prometheus running with "
                "--web.enable-remote-write-receiver?",
                status=None,
                server_message=str(exc),
            ) from exc
        if response.is_success:
            return response.status_code
        server_message = response.text.strip()
        message = (
            f"remote write to {self.url} answered HTTP {response.status_code} for {span}: {server_message}"
        )
        if (
            "out of bounds" in server_message
            or "too old" in server_message
            or "out of order" in server_message
        ):
            message += (
                ". The server already holds newer samples: send in time order, use a later window, a fresh "
                "Prometheus, or storage.tsdb.out_of_order_time_window."
            )
        if "duplicate sample" in server_message:
            message += (
                ". A series with the same labels already holds a different value at that time: give each load "
                "its own label values (e.g. a distinct service)."
            )
        if 400 <= response.status_code < 500:
            raise RemoteWriteRejected(message, status=response.status_code, server_message=server_message)
        raise RemoteWriteFailed(message, status=response.status_code, server_message=server_message)
