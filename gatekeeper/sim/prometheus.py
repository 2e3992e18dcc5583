"""A throwaway real Prometheus (Debian's ``/usr/bin/prometheus``) for the demo, tests and benchmarks.

``PrometheusServer`` writes a config file and a data dir into a temporary directory, starts the binary on a
free ``127.0.0.1`` port with the remote-write receiver enabled, waits for ``/-/ready`` and stops the process
by its PID (SIGTERM, then SIGKILL). The directory is removed on stop.

    with PrometheusServer() as prom:
        RemoteWriteClient(prom.remote_write_url).write(series)
        httpx.get(f"{prom.url}/api/v1/query", params={"query": "up"})

Facts that shape its use (see ``docs/testing.md``): samples older than ~1 h before the newest
stored sample are rejected ("out of bounds") unless ``out_of_order_time_window`` is set, and a series that
stopped reporting vanishes from instant queries after the 5-minute lookback.

Errors: ``PrometheusNotInstalled`` (install the package) and ``PrometheusStartError`` (the log tail says
why) both derive from ``PrometheusServerError``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import yaml

__all__ = [
    "INSTALL_HINT",
    "PrometheusNotInstalled",
    "PrometheusServer",
    "PrometheusServerError",
    "PrometheusStartError",
    "free_port",
]

DEFAULT_BINARY = "/usr/bin/prometheus"
INSTALL_HINT = (
    "install it with `apt-get update && apt-get install -y --no-install-recommends prometheus` "
    "or run `scripts/setup.sh`"
)


class PrometheusServerError(RuntimeError):
    """The throwaway Prometheus could not be provided."""


class PrometheusNotInstalled(PrometheusServerError):
    """The ``prometheus`` binary is missing: install the Debian package."""


class PrometheusStartError(PrometheusServerError):
    """The binary ran but did not become ready; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _duration(seconds: float) -> str:
    """Prometheus duration syntax for a number of seconds (``15s``, ``500ms``)."""
    if seconds <= 0:
        raise ValueError(f"scrape_interval must be positive seconds, got {seconds!r}")
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _resolve_binary(binary: str | os.PathLike[str] | None) -> str:
    candidate = str(binary) if binary is not None else (shutil.which("prometheus") or DEFAULT_BINARY)
    if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
        raise PrometheusNotInstalled(f"Prometheus binary not found at {candidate!r}: {INSTALL_HINT}.")
    return candidate


class PrometheusServer:
    """One real Prometheus process on 127.0.0.1 with an empty TSDB in a temporary directory.

    Args:
        scrape_interval: seconds between scrapes (also the global evaluation interval).
        scrape_targets: ``{job_name: ["127.0.0.1:8000", ...]}`` to scrape ``/metrics`` from; empty by default,
            so the server only holds what is remote-written to it.
        out_of_order_time_window: e.g. ``"2h"`` to accept samples older than the newest stored one within that
            window (``storage.tsdb.out_of_order_time_window``); ``None`` keeps Prometheus' default (off).
        binary: path of the ``prometheus`` executable; default ``prometheus`` on PATH, else /usr/bin/prometheus.
        startup_timeout: seconds to wait for ``/-/ready``.
        extra_args: more command-line flags, appended as given.
    """

    def __init__(
        self,
        *,
        scrape_interval: float = 15.0,
        scrape_targets: Mapping[str, Sequence[str]] | None = None,
        out_of_order_time_window: str | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._binary = _resolve_binary(binary)
        self._scrape_interval = _duration(scrape_interval)
        self._scrape_targets = {job: list(targets) for job, targets in (scrape_targets or {}).items()}
        self._ooo_window = out_of_order_time_window
        self._startup_timeout = startup_timeout
        self._extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._port: int | None = None

    # -- public surface -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (only while running)."""
        if self._port is None or self._process is None:
            raise PrometheusServerError(
                "Prometheus is not running: call start() or use it as a context manager."
            )
        return f"http://127.0.0.1:{self._port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._workdir / "prometheus.log" if self._workdir is not None else None

    def config(self) -> dict[str, object]:
        """The configuration this server runs with (as written to its config file)."""
        cfg: dict[str, object] = {
            "global": {
                "scrape_interval": self._scrape_interval,
                "evaluation_interval": self._scrape_interval,
            },
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in self._scrape_targets.items()
            ],
        }
        if self._ooo_window is not None:
            cfg["storage"] = {"tsdb": {"out_of_order_time_window": self._ooo_window}}
        return cfg

    def start(self) -> Self:
        """Start the process and wait until it is ready. Retries once on a lost race for the port."""
        if self._process is not None:
            raise PrometheusServerError("Prometheus is already running; stop() it first.")
        self._workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-prometheus-"))
        (self._workdir / "prometheus.yml").write_text(yaml.safe_dump(self.config(), sort_keys=False))
        last_error: PrometheusStartError | None = None
        for _attempt in range(3):
            try:
                self._launch()
                return self
            except PrometheusStartError as exc:
                last_error = exc
                self._kill()
                if "address already in use" not in str(exc):
                    break
        self._cleanup_dir()
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        """SIGTERM the process by PID, SIGKILL after 10 s, then remove the temporary directory."""
        self._kill()
        self._cleanup_dir()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------------------------
    def _launch(self) -> None:
        assert self._workdir is not None
        self._port = free_port()
        args = [
            self._binary,
            f"--config.file={self._workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self._workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self._port}",
            "--web.enable-remote-write-receiver",
            *self._extra_args,
        ]
        with open(self._workdir / "prometheus.log", "wb") as log:
            self._process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise PrometheusStartError(
                        f"Prometheus exited with code {self._process.returncode} before it was ready; "
                        f"log tail:\n{self._log_tail()}"
                    )
                try:
                    if client.get(f"http://127.0.0.1:{self._port}/-/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise PrometheusStartError(
            f"Prometheus was not ready within {self._startup_timeout:g} s; log tail:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 15) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _kill(self) -> None:
        process, self._process = self._process, None
        self._port = None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _cleanup_dir(self) -> None:
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
