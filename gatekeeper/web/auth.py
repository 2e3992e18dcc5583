"""Who may write: bearer tokens (compared in constant time) and optional mutual TLS for the endpoints that change
or judge something: the OTLP intake (`/v1/traces`), the judge endpoints (`/integrations/*`) and the dashboard's
approve/abort.

    auth = Auth.from_file("/etc/gatekeeper/token/token")     # or Auth.from_token("…"), Auth.none()
    app = RequireAuth(app, auth=auth)                          # a whole app (the intake)
    denied = auth.deny(request)                                # or one route opts in: a 401/403 Response or None

Answers: 401 with `WWW-Authenticate: Bearer` when no credentials came, 403 when a token came and is wrong.

Tokens come from a string or a file (a mounted Secret). A file is re-read when it changes, and each non-empty
line is a valid token, so a token is rotated by writing the new one beside the old, rolling the senders, then
removing the old. Tokens are at least 16 characters.

Mutual TLS (`TLSConfig(client_ca=…)`) is enforced by the TLS layer: a client without a certificate signed by
that CA never completes the handshake, so it gets no HTTP answer at all. Bearer tokens still apply on top
when both are configured.

`check_exposure` is the rule the commands apply before listening: beyond loopback, authentication (a token or
mutual TLS) is required unless the operator says `--insecure-no-auth`, and then it is said in the log.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "MIN_TOKEN_LENGTH",
    "Auth",
    "InsecureExposure",
    "RequireAuth",
    "TLSConfig",
    "check_exposure",
    "is_loopback",
]

MIN_TOKEN_LENGTH = 16


class InsecureExposure(ValueError):
    """Refused to listen beyond loopback without authentication; the message names the flags that fix it."""


@dataclass(frozen=True)
class TLSConfig:
    """Serve HTTPS with `certfile`/`keyfile`; with `client_ca`, require client certificates it signed (mTLS)."""

    certfile: str
    keyfile: str
    client_ca: str | None = None

    def __post_init__(self) -> None:
        for name in ("certfile", "keyfile", "client_ca"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"TLS {name} {path}: no such file")

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def uvicorn_options(self) -> dict[str, Any]:
        import ssl

        options: dict[str, Any] = {"ssl_certfile": self.certfile, "ssl_keyfile": self.keyfile}
        if self.client_ca is not None:
            options |= {"ssl_ca_certs": self.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        return options


class _Tokens:
    """The accepted tokens: fixed, or the lines of a file re-read whenever it changes (stat per check)."""

    def __init__(self, *, tokens: tuple[bytes, ...] = (), path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._tokens = tokens
        if path is not None:
            self.current()  # a missing or bad file fails at start, not at the first request

    def current(self) -> tuple[bytes, ...]:
        if self._path is None:
            return self._tokens
        try:
            st = os.stat(self._path)
        except OSError as e:
            if self._key is None:
                raise ValueError(f"token file {self._path}: {e.strerror}") from None
            return self._tokens  # a Secret being swapped: keep the last good tokens
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            with self._lock:
                tokens = _parse(self._path.read_text(encoding="utf-8"), where=f"token file {self._path}")
                self._tokens, self._key = tokens, key
        return self._tokens


def _parse(text: str, *, where: str) -> tuple[bytes, ...]:
    tokens = tuple(line.strip().encode() for line in text.splitlines() if line.strip())
    if not tokens:
        raise ValueError(f"{where} is empty: write a token of at least {MIN_TOKEN_LENGTH} characters")
    short = [t for t in tokens if len(t) < MIN_TOKEN_LENGTH]
    if short:
        raise ValueError(
            f"{where}: a token must be at least {MIN_TOKEN_LENGTH} characters (e.g. `openssl rand -hex 16`)"
        )
    return tokens


class Auth:
    """The credentials an endpoint accepts. `Auth.none()` accepts everyone (loopback and tests only)."""

    def __init__(self, *, tokens: _Tokens | None = None, tls: TLSConfig | None = None) -> None:
        self._tokens = tokens
        self.tls = tls

    @classmethod
    def none(cls, *, tls: TLSConfig | None = None) -> Auth:
        return cls(tls=tls)

    @classmethod
    def from_token(cls, token: str, *, tls: TLSConfig | None = None) -> Auth:
        return cls(tokens=_Tokens(tokens=_parse(token, where="the token")), tls=tls)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, tls: TLSConfig | None = None) -> Auth:
        return cls(tokens=_Tokens(path=Path(path)), tls=tls)

    @classmethod
    def configure(
        cls,
        *,
        token: str | None = None,
        token_file: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        client_ca: str | None = None,
    ) -> Auth:
        """From the commands' flags (--token, --token-file, --tls-cert, --tls-key, --client-ca); ValueError
        naming the flag when they do not fit together."""
        if token and token_file:
            raise ValueError("give --token or --token-file, not both")
        if bool(tls_cert) != bool(tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        if client_ca and not tls_cert:
            raise ValueError("--client-ca (mutual TLS) needs --tls-cert and --tls-key")
        try:
            tls = (
                TLSConfig(certfile=tls_cert, keyfile=tls_key, client_ca=client_ca)
                if tls_cert and tls_key
                else None
            )
        except ValueError as e:
            raise ValueError(f"--tls-cert/--tls-key/--client-ca: {e}") from None
        try:
            if token_file:
                return cls.from_file(token_file, tls=tls)
            if token:
                return cls.from_token(token, tls=tls)
        except ValueError as e:
            raise ValueError(f"{'--token-file' if token_file else '--token'}: {e}") from None
        return cls.none(tls=tls)

    @property
    def has_token(self) -> bool:
        return self._tokens is not None

    @property
    def enabled(self) -> bool:
        """Whether anything is required of a client (a token, or a client certificate)."""
        return self.has_token or (self.tls is not None and self.tls.mutual)

    def describe(self) -> str:
        parts = (["bearer token"] if self.has_token else []) + (
            ["mutual TLS"] if self.tls is not None and self.tls.mutual else []
        )
        return " + ".join(parts) or "no authentication"

    def bearer(self) -> str | None:
        """The first accepted token, for this process's own calls to its peers (None without tokens)."""
        if self._tokens is None:
            return None
        return self._tokens.current()[0].decode()

    def valid(self, given: str | bytes | None) -> bool:
        """True when `given` is an accepted token (constant time over every accepted token)."""
        if self._tokens is None:
            return True
        raw = given.encode() if isinstance(given, str) else (given or b"")
        ok = False
        for token in self._tokens.current():
            ok |= hmac.compare_digest(raw, token)
        return ok and bool(raw)

    def status(self, authorization: str | None, *, fallback: str | None = None) -> int:
        """200, 401 (no credentials) or 403 (wrong credentials) for an Authorization header value; `fallback`
        is a token given another way (a form field) when the header has none."""
        if self._tokens is None:
            return 200
        scheme, _, value = (authorization or "").strip().partition(" ")
        given = value.strip() if scheme.lower() == "bearer" else ""
        given = given or (fallback or "").strip()
        if not given:
            return 401
        return 200 if self.valid(given) else 403

    def deny(self, request: Request, *, fallback: str | None = None) -> Response | None:
        """None when the request may proceed, else the 401/403 answer (a route opts in by calling this)."""
        code = self.status(request.headers.get("authorization"), fallback=fallback)
        return None if code == 200 else denial(code)


def denial(code: int) -> Response:
    if code == 401:
        return JSONResponse(
            {"error": "authentication required: send Authorization: Bearer <token>"},
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="gatekeeper"'},
        )
    return JSONResponse(
        {"error": "the bearer token is not valid"},
        status_code=403,
        headers={"www-authenticate": 'Bearer realm="gatekeeper", error="invalid_token"'},
    )


class RequireAuth:
    """Pure ASGI middleware: every HTTP request under one of `prefixes` (default: all) needs a valid token.

    Paths outside the prefixes pass untouched (probes, `/metrics`)."""

    def __init__(self, app: Any, *, auth: Auth, prefixes: tuple[str, ...] = ("/",)) -> None:
        self.app, self.auth, self.prefixes = app, auth, prefixes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.auth.has_token and scope["path"].startswith(self.prefixes):
            header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
            code = self.auth.status(header.decode("latin-1"))
            if code != 200:
                await denial(code)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; everything else (0.0.0.0, ::, a pod IP) is exposed."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(*, host: str, auth: Auth, insecure_no_auth: bool, what: str) -> str | None:
    """Raise `InsecureExposure` for an unauthenticated listener beyond loopback; with `insecure_no_auth`, return
    the warning to log instead. None when nothing needs saying."""
    if auth.enabled or is_loopback(host):
        return None
    if not insecure_no_auth:
        raise InsecureExposure(
            f"refusing to serve {what} on {host} without authentication: give --token-file FILE (a bearer "
            "token, e.g. a mounted Secret) or a client CA for mutual TLS, listen on 127.0.0.1, or pass "
            "--insecure-no-auth to accept writes from anyone who can reach it"
        )
    return (
        f"INSECURE: serving {what} on {host} without authentication (--insecure-no-auth): anyone who can reach "
        "it can send spans and ask for verdicts"
    )
