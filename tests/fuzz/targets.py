"""Fuzz targets: each takes the fuzzer's bytes, drives one input surface exactly as gatekeeper's own callers do,
and lets only the surface's documented, typed errors through. Any other exception escaping a target is a
finding (a traceback a user or the controller would see); so is an input that takes over a second or grows
memory without bound (the runner's limits catch those).

    spec           a gate file as `gatekeeper lint` reads it: load_gate (bytes on disk), then check_queries
    gate-resource  a Gate object as the controller reads it: parse_gate, status_of, read_requests, spec_hash
    otlp           an OTLP/HTTP export body (protobuf or JSON, identity or gzip) into the trace store
    prometheus     a Prometheus HTTP answer (status, encoding, body) through PrometheusSource, over real HTTP
    import-*       peer configuration (Argo, Flagger, Kayenta, Keptn) through import_texts, then verify_gate

The first byte(s) of an input choose a mode where a surface has several (media type, status code, files);
the rest is the payload. Seeds live in ``tests/fuzz/corpus/<target>/`` (with every input that ever failed,
named ``regression-*``); dictionaries of the formats' words are built from the schema and the seeds.
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import http.server
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
FILE_SEPARATOR = b"\n#%%FILE\n"  # splits an import input into several files (Keptn slo.yaml + sli.yaml)


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    instrument: tuple[str, ...]  # packages whose code the coverage-guided fuzzer instruments
    about: str

    @property
    def corpus(self) -> Path:
        return CORPUS / self.name


# -- spec ---------------------------------------------------------------------------------------------------
_SPEC_DIR = tempfile.mkdtemp(prefix="gk-fuzz-spec-")
atexit.register(shutil.rmtree, _SPEC_DIR, True)  # a worker process per target: leave no directory behind
_SPEC_FILE = Path(_SPEC_DIR) / "gate.yaml"


def run_spec(data: bytes) -> None:
    """A gate file as `gatekeeper lint` reads it: from disk (any bytes), then every query rendered and parsed."""
    from gatekeeper.signals.lint import check_queries
    from gatekeeper.spec import SpecError, load_gate

    _SPEC_FILE.write_bytes(data)
    try:
        gate = load_gate(_SPEC_FILE)
    except SpecError:
        return
    check_queries(gate)


def run_gate_resource(data: bytes) -> None:
    """A Gate object as the API server hands it to the controller (any JSON: the CRD schema is not trusted)."""
    from gatekeeper.controller.kube import BadStatus, parse_gate, read_requests, spec_hash, status_of
    from gatekeeper.spec import SpecError

    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return  # the API server only ever sends JSON
    if not isinstance(doc, dict):
        return
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    ann = meta.get("annotations")
    meta = {  # what the API server guarantees: a name and namespace, annotations as strings
        **meta,
        "name": "fuzz",
        "namespace": "default",
        "annotations": {k: v for k, v in ann.items() if isinstance(v, str)} if isinstance(ann, dict) else {},
    }
    obj = {**doc, "apiVersion": "gatekeeper.dev/v1alpha1", "kind": "Gate", "metadata": meta}
    spec_hash(obj)
    read_requests(obj)
    with contextlib.suppress(SpecError):
        parse_gate(obj)
    with contextlib.suppress(BadStatus):
        status_of(obj)


# -- otlp ---------------------------------------------------------------------------------------------------
_MEDIA = ("application/x-protobuf", "application/json", "application/protobuf; proto=x", "Application/JSON")


class _StepClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        self.t += 31.0  # every ingest completes (and judges) what the previous one opened
        return self.t


def run_otlp(data: bytes) -> None:
    """An OTLP/HTTP export body as the intake route handles it: decode_body, then the store's ingest.

    Mode byte: bits 0-1 media type; bits 2-3 encoding (identity, gzip of the payload, the payload sent as if
    it were gzip, ' GZIP ' of the payload); bit 4 a 4 KiB decoded-size limit instead of 16 MiB."""
    from gatekeeper.sources.traces import PayloadError, StoreLimits, TraceStore
    from gatekeeper.sources.traces.decode import decode_body
    from gatekeeper.spec.signals import InvariantSignal

    if not data:
        return
    mode, payload = data[0], data[1:]
    encoding: str | None = None
    enc = (mode >> 2) & 3
    if enc == 1:
        payload, encoding = gzip.compress(payload, mtime=0), "gzip"
    elif enc == 2:
        encoding = "gzip"
    elif enc == 3:
        payload, encoding = gzip.compress(payload, mtime=0), " GZIP "
    limit = 4096 if mode & 16 else 16 * 1024 * 1024
    try:
        request = decode_body(payload, content_type=_MEDIA[mode & 3], content_encoding=encoding, limit=limit)
    except PayloadError:
        return
    store = TraceStore(
        clock=_StepClock(),
        completion_timeout=30.0,
        limits=StoreLimits(max_open_traces=64, max_open_spans=512, max_spans_per_trace=32, max_versions=4),
        rules=(_rule(InvariantSignal),),
    )
    store.ingest(request)
    store.ingest(type(request)())  # an empty export sweeps: every trace of the first is judged
    store.stats()


def _rule(model):  # type: ignore[no-untyped-def]
    return model.model_validate(
        {"name": "partial-checkout", "kind": "invariant", "root": "checkout",
         "when": {"span": "payment.capture", "status": "ok"},
         "require": {"span": "order.create", "status": "ok"},
         "within": "30s"}
    )  # fmt: skip


# -- prometheus ---------------------------------------------------------------------------------------------
_STATUS = (200, 200, 200, 200, 200, 200, 400, 422, 503, 500, 429, 404, 204, 302, 401, 200)


class _Answer:
    """What the local HTTP server answers next (one fuzz input at a time, so no lock is needed)."""

    status = 200
    headers: tuple[tuple[str, str], ...] = ()
    body = b""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body leave in one segment (no 40 ms delayed-ACK stall per answer)
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(_Answer.status)
        for k, v in _Answer.headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(_Answer.body)))
        self.end_headers()
        if _Answer.status not in (204, 304):
            self.wfile.write(_Answer.body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


_server: http.server.ThreadingHTTPServer | None = None
_source = None


def _prometheus():  # type: ignore[no-untyped-def]
    global _server, _source
    if _source is None:
        from gatekeeper.sources.prometheus import PrometheusSource

        _server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        _server.daemon_threads = True
        threading.Thread(target=_server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{_server.server_address[1]}"
        _source = PrometheusSource(url, timeout=5.0, retries=0)
    return _source


def run_prometheus(data: bytes) -> None:
    """A Prometheus answer as PrometheusSource reads it, over real HTTP on 127.0.0.1.

    Mode byte: bits 0-3 the HTTP status; bit 4 range (else instant) query; bits 5-6 Content-Encoding
    (none, gzip of the body, the body labelled gzip as is, JSON content type dropped)."""
    from gatekeeper.sources import SourceError

    if not data:
        return
    mode, body = data[0], data[1:]
    headers = [("Content-Type", "application/json")]
    enc = (mode >> 5) & 3
    if enc == 1:
        body = gzip.compress(body, mtime=0)
        headers.append(("Content-Encoding", "gzip"))
    elif enc == 2:
        headers.append(("Content-Encoding", "gzip"))
    elif enc == 3:
        headers = [("Content-Type", "text/plain")]
    _Answer.status, _Answer.headers, _Answer.body = _STATUS[mode & 15], tuple(headers), body
    source = _prometheus()
    try:
        if mode & 16:
            result = source.range("up", start=1_700_000_000.0, end=1_700_000_600.0, step=60.0)
        else:
            result = source.instant("up", at=1_700_000_600.0)
    except SourceError:
        return
    for s in result.series:  # what the signals read from an answer
        assert len(s.timestamps) == len(s.values), "a series with unaligned arrays"
        s.newest  # noqa: B018
    result.scalar()


# -- importers ----------------------------------------------------------------------------------------------
_NAMES = {
    "argo": ("analysis-template.yaml", "rollout.yaml"),
    "flagger": ("canary.yaml", "metric-template.yaml"),
    "kayenta": ("canary-config.json", "more.json"),
    "keptn": ("slo.yaml", "sli.yaml", "analysis-definition.yaml"),
}


def import_runner(family: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        """Peer files as `gatekeeper import` reads them (split at FILE_SEPARATOR), then the gate it writes
        is loaded and linted as the command does."""
        from gatekeeper.importers import ImportInputError, import_texts, verify_gate

        parts = data.split(FILE_SEPARATOR)[:4]
        names = _NAMES[family]
        inputs = [(names[i] if i < len(names) else f"extra-{i}.yaml", p.decode("utf-8", "replace"))
                  for i, p in enumerate(parts)]  # fmt: skip
        try:
            result = import_texts(inputs, args={"namespace": "shop"})
        except ImportInputError:
            return
        result.report.lines()
        verify_gate(result.text)

    run.__name__ = f"run_import_{family}"
    return run


_GK = ("gatekeeper",)
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("spec", run_spec, (*_GK, "yaml"), "gate spec files (load_gate + check_queries)"),
        Target("gate-resource", run_gate_resource, _GK, "Gate objects (parse_gate, status_of, requests)"),
        Target("otlp", run_otlp, _GK, "OTLP/HTTP bodies: protobuf, JSON, gzip, into the trace store"),
        Target("prometheus", run_prometheus, (*_GK, "prometheus_api_client"), "Prometheus HTTP answers"),
        *(
            Target(
                f"import-{fam}",
                import_runner(fam),
                (*_GK, "yaml"),
                f"{fam} configurations (gatekeeper import)",
            )
            for fam in ("argo", "flagger", "kayenta", "keptn")
        ),
    )
}


def seeds(target: Target) -> list[Path]:
    return sorted(p for p in target.corpus.iterdir() if p.is_file()) if target.corpus.is_dir() else []


def worker_env() -> dict[str, str]:
    """Environment for a fuzzing subprocess: the repository importable, no stray proxies."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
