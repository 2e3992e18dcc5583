"""Authentication of the intake and the judge endpoints: bearer tokens from a file (rotated without a restart),
401 without and 403 with wrong credentials, the OpenTelemetry SDK exporter's own `headers` and client
certificates (mutual TLS with certificates made by openssl), the loopback rule of the commands, and a
flooding writer told to back off with 429 / 503."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from gatekeeper.sim.shop import SimClock
from gatekeeper.sources.traces import StoreLimits, TraceStore
from gatekeeper.web.auth import Auth, InsecureExposure, TLSConfig, check_exposure, is_loopback
from gatekeeper.web.otlp import IntakeServer, create_otlp_app
from tests.test_otlp_store import RULE, T0, checkout, request

TOKEN = "intake-token-0123456789abcdef"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
ROOT = Path(__file__).resolve().parents[1]


def sdk_export(url: str, *, headers: dict[str, str] | None = None, **tls: str) -> SpanExportResult:
    """One checkout span through the real SDK exporter; the exporter's own result."""
    results: list[SpanExportResult] = []

    class Recording(OTLPSpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            results.append(super().export(spans))
            return results[-1]

    exporter = Recording(endpoint=url, headers=headers, timeout=5, **tls)
    provider = TracerProvider(resource=Resource({"service.name": "shop", "service.version": "canary"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("test").start_span("checkout").end()
    provider.shutdown()
    assert results, "the exporter was never called"
    return results[-1]


@pytest.fixture
def guarded() -> Iterator[tuple[str, TraceStore]]:
    store = TraceStore(clock=SimClock(T0), rules=[RULE])
    with IntakeServer(create_otlp_app(store, auth=Auth.from_token(TOKEN))) as server:
        yield f"{server.url}/v1/traces", store


def test_the_sdk_exporter_delivers_with_its_headers_option_and_is_refused_without(guarded) -> None:
    url, store = guarded
    assert sdk_export(url, headers={"Authorization": f"Bearer {TOKEN}"}) == SpanExportResult.SUCCESS
    assert store.stats().spans_received == {"canary": 1}
    assert sdk_export(url) == SpanExportResult.FAILURE
    assert sdk_export(url, headers={"Authorization": "Bearer not-the-token-0000"}) == SpanExportResult.FAILURE
    assert store.stats().spans_received == {"canary": 1}  # nothing refused reached the store


def test_no_credentials_is_401_and_wrong_ones_403_with_a_bearer_challenge(guarded) -> None:
    url, _ = guarded
    body = request(checkout(1, t=T0)).SerializeToString()
    none = httpx.post(url, content=body, headers=PROTOBUF)
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    basic = httpx.post(url, content=body, headers={**PROTOBUF, "Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    wrong = httpx.post(url, content=body, headers={**PROTOBUF, "Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 403 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    ok = httpx.post(url, content=body, headers={**PROTOBUF, "Authorization": f"bearer {TOKEN}"})
    assert ok.status_code == 200


def test_a_token_file_is_reread_when_it_changes_so_tokens_rotate_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old-token-0123456789\n")
    auth = Auth.from_file(path)
    assert auth.valid("old-token-0123456789") and not auth.valid("new-token-0123456789")
    path.write_text("old-token-0123456789\nnew-token-0123456789\n")  # both during the roll
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert auth.valid("old-token-0123456789") and auth.valid("new-token-0123456789")
    path.write_text("new-token-0123456789\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    assert not auth.valid("old-token-0123456789") and auth.valid("new-token-0123456789")
    assert not auth.valid("") and not auth.valid(None)


@pytest.mark.parametrize(
    ("text", "fragment"), [("", "is empty"), ("short\n", "at least 16 characters")], ids=["empty", "short"]
)
def test_a_bad_token_file_fails_at_start_naming_the_fix(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "token"
    path.write_text(text)
    with pytest.raises(ValueError, match=fragment):
        Auth.from_file(path)
    with pytest.raises(ValueError, match=r"(?i)no such file"):
        Auth.from_file(tmp_path / "missing")


def test_only_loopback_may_listen_without_authentication() -> None:
    for host in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
        assert check_exposure(host=host, auth=Auth.none(), insecure_no_auth=False, what="x") is None
    for host in ("0.0.0.0", "::", "10.1.2.3", "gatekeeper.example"):
        assert not is_loopback(host), host
        with pytest.raises(InsecureExposure, match=r"--token-file FILE.*--insecure-no-auth"):
            check_exposure(host=host, auth=Auth.none(), insecure_no_auth=False, what="the intake")
        warning = check_exposure(host=host, auth=Auth.none(), insecure_no_auth=True, what="the intake")
        assert warning is not None and "INSECURE" in warning and host in warning
        assert (
            check_exposure(host=host, auth=Auth.from_token(TOKEN), insecure_no_auth=False, what="x") is None
        )


def test_serve_refuses_a_public_address_without_auth_and_says_so_when_told_to_anyway(tmp_path: Path) -> None:
    gk = [sys.executable, "-m", "gatekeeper.cli.main"]
    refused = subprocess.run(
        [*gk, "serve", "--gates-dir", str(ROOT / "gates"), "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (
        refused.returncode == 2
        and "refusing to serve" in refused.stderr
        and "--insecure-no-auth" in refused.stderr
    )
    # told to, each command says so in its log before anything else; a missing gates directory then stops it
    # before it listens (tests never listen beyond loopback)
    missing = str(tmp_path / "no-such-dir")
    for command in (["serve", "--gates-dir", missing], ["intake", "--gates-dir", missing, "--port", "0"]):
        told = subprocess.run(
            [*gk, *command, "--host", "0.0.0.0", "--insecure-no-auth"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert told.returncode == 2, told.stderr
        text = " ".join(told.stderr.split())
        assert "INSECURE" in text and "without authentication" in text and "--insecure-no-auth" in text, text
        assert "not a directory" in text


# -- mutual TLS --------------------------------------------------------------------------------------------------
def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made by the openssl command."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=gatekeeper-test-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ext in (("server", "san.ext"), ("client", "client.ext")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", ext, cwd=d)  # fmt: skip
    return d


def test_mutual_tls_admits_the_sdk_with_a_client_certificate_and_nobody_without(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    # requests (under the SDK exporter) lets these variables override the exporter's own CA file
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    tls = TLSConfig(
        certfile=str(pki / "server.pem"), keyfile=str(pki / "server.key"), client_ca=str(pki / "ca.pem")
    )
    auth = Auth.from_token(TOKEN, tls=tls)
    assert auth.enabled and auth.describe() == "bearer token + mutual TLS"
    store = TraceStore(clock=SimClock(T0), rules=[RULE])
    with IntakeServer(create_otlp_app(store, auth=auth), tls=tls.uvicorn_options()) as server:
        url = f"{server.url}/v1/traces"
        assert url.startswith("https://")
        good = sdk_export(
            url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            certificate_file=str(pki / "ca.pem"),
            client_certificate_file=str(pki / "client.pem"),
            client_key_file=str(pki / "client.key"),
        )
        assert good == SpanExportResult.SUCCESS and store.stats().spans_received == {"canary": 1}
        body = request(checkout(1, t=T0)).SerializeToString()
        anonymous = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with pytest.raises(httpx.HTTPError):  # no client certificate: the handshake fails, no HTTP answer
            httpx.post(url, content=body, headers=PROTOBUF, verify=anonymous)
        ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
        no_token = httpx.post(url, content=body, headers=PROTOBUF, verify=ctx)
        assert no_token.status_code == 401  # the certificate admits the connection; the token is still asked
    assert store.stats().spans_received == {"canary": 1}


# -- flooding -------------------------------------------------------------------------------------------------
def test_a_writer_beyond_the_in_flight_limit_gets_429_with_retry_after() -> None:
    store = TraceStore(clock=SimClock(T0), rules=[RULE])
    body = request(checkout(1, t=T0)).SerializeToString()
    sent, release = threading.Event(), threading.Event()

    def slow_body() -> Iterator[
        bytes
    ]:  # holds the only slot: headers and 5 bytes, then nothing until released
        yield body[:5]
        sent.set()
        release.wait(20)
        yield body[5:]

    with IntakeServer(create_otlp_app(store, max_inflight=1, queue_seconds=0.3)) as server:
        url = f"{server.url}/v1/traces"
        results: list[object] = []

        def first() -> None:
            try:
                results.append(httpx.post(url, content=slow_body(), headers=PROTOBUF, timeout=30).status_code)
            except Exception as e:
                results.append(e)

        thread = threading.Thread(target=first)
        thread.start()
        try:
            assert sent.wait(10)
            time.sleep(0.3)  # the server has the headers and waits for the rest of the body
            second = httpx.post(url, content=body, headers=PROTOBUF)
            assert second.status_code == 429 and second.headers["retry-after"] == "1"
        finally:
            release.set()
            thread.join(30)
        assert results == [200]
        assert httpx.post(url, content=body, headers=PROTOBUF).status_code == 200  # the slot is free again


def test_a_full_store_answers_503_until_the_clock_completes_its_traces() -> None:
    clock = SimClock(T0)
    store = TraceStore(clock=clock, rules=[RULE], limits=StoreLimits(max_open_traces=2, max_open_spans=100))
    with IntakeServer(create_otlp_app(store)) as server:
        url = f"{server.url}/v1/traces"

        def post(n: int) -> httpx.Response:
            return httpx.post(url, content=request(checkout(n, t=T0)).SerializeToString(), headers=PROTOBUF)

        assert post(1).status_code == 200 and post(2).status_code == 200
        full = post(3)
        assert full.status_code == 503 and full.headers["retry-after"] == "1"
        clock.advance(31)  # the open traces complete: room again
        assert post(3).status_code == 200
    spans = len(checkout(1, t=T0))
    assert sum(store.stats().spans_received.values()) == 3 * spans  # the refused export never reached it


def test_the_controller_and_the_intake_refuse_a_public_address_without_auth(tmp_path: Path) -> None:
    gk = [sys.executable, "-m", "gatekeeper.cli.main"]
    controller = subprocess.run(
        [*gk, "controller", "run", "--dashboard-port", "0", "--dashboard-host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert controller.returncode == 2 and "refusing to serve the dashboard" in controller.stderr
    intake = subprocess.run(
        [*gk, "intake", "--host", "0.0.0.0", "--gates-dir", str(ROOT / "gates")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert intake.returncode == 2 and "refusing to serve the intake" in intake.stderr


def test_serve_with_traces_exports_the_intake_counters_on_its_metrics() -> None:
    from gatekeeper.ops.repository import InMemoryGateRepository
    from gatekeeper.sources.traces import Rule
    from gatekeeper.web.app import create_app

    clock = SimClock(T0)
    store = TraceStore(clock=clock, rules=[RULE])
    app = create_app(repository=InMemoryGateRepository(), token=TOKEN, span_sink=store)
    with IntakeServer(app) as server:
        body = request(checkout(1, t=T0, order=None)).SerializeToString()
        headers = {**PROTOBUF, "Authorization": f"Bearer {TOKEN}"}
        assert httpx.post(f"{server.url}/v1/traces", content=body, headers=headers).status_code == 200
        clock.advance(31)
        store.sweep()
        text = httpx.get(f"{server.url}/metrics").text
    key = Rule.of(RULE).key
    assert f'gatekeeper_otlp_invariant_violations_total{{rule="{key}",version="canary"}} 1.0' in text


def test_a_read_only_dashboard_with_a_token_guards_the_judge_endpoints_and_offers_no_actions() -> None:
    """The controller's dashboard: its token guards /integrations/*, approve/abort stay off."""
    from gatekeeper.ops.repository import load_gates_dir
    from gatekeeper.web.app import create_app

    repo = load_gates_dir(ROOT / "gates")
    app = create_app(repository=repo, token=TOKEN, read_only=True)
    with IntakeServer(app) as server:
        judge = f"{server.url}/integrations/argo/default/http-canary?service=checkout"
        assert httpx.get(judge).status_code == 401
        assert httpx.get(judge, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 403
        assert httpx.get(judge, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        page = httpx.get(f"{server.url}/gates/default/http-canary")
        assert page.status_code == 200 and "<form" not in page.text
        refused = httpx.post(
            f"{server.url}/gates/default/http-canary/abort", data={"by": "x", "reason": "y", "token": TOKEN}
        )
        assert refused.status_code == 403 and "read-only" in refused.text
