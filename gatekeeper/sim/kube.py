"""A throwaway real Kubernetes control plane: Debian's ``etcd`` plus a ``kube-apiserver`` built from source.

``scripts/kube-apiserver.sh`` builds the API server once into a cache directory
(``${GATEKEEPER_CACHE:-~/.cache/gatekeeper}``) and fetches the pinned upstream CRDs next to it. This module
starts both processes on free ``127.0.0.1`` ports with a self-made CA and serving certificate (``openssl``),
static tokens (an admin in ``system:masters`` and a plain ``gatekeeper`` user that RBAC governs), a
service-account key pair, ``--authorization-mode=RBAC`` and ``--feature-gates=WatchList=false`` (etcd 3.4
lacks ``RequestWatchProgress``), and writes a kubeconfig. It stops both by PID, API server first.

    cluster = KubeCluster.start(tmp_path)
    try:
        cluster.install_crds()
        core = kubernetes.client.CoreV1Api(cluster.api_client())
    finally:
        cluster.stop()

There is no controller-manager: no garbage collection, namespaces never finish deleting, no ``default``
ServiceAccount (see ``docs/testing.md``). Errors: ``KubeNotBuilt`` (run the script) and
``KubeStartError`` (the log tail says why) derive from ``KubeClusterError``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

__all__ = [
    "BUILD_HINT",
    "KUBE_VERSION",
    "ROUTING_CRDS",
    "KubeCluster",
    "KubeClusterError",
    "KubeNotBuilt",
    "KubeStartError",
    "cache_dir",
    "crd_documents",
]

KUBE_VERSION = "v1.35.4"
BUILD_HINT = "build it once with `scripts/kube-apiserver.sh` (~4-10 min cold, cached afterwards)"
GATEKEEPER_USER = "gatekeeper"
GATEKEEPER_GROUP = "gatekeeper:controllers"

# The pinned upstream CRDs: file in the cache -> CRD names kept from it (None: every document of the file).
_CRDS: dict[str, tuple[str, ...] | None] = {
    "gateway-api/gateway.networking.k8s.io_gatewayclasses.yaml": None,
    "gateway-api/gateway.networking.k8s.io_gateways.yaml": None,
    "gateway-api/gateway.networking.k8s.io_httproutes.yaml": None,
    "gateway-api/gateway.networking.k8s.io_referencegrants.yaml": None,
    "istio/customresourcedefinitions.gen.yaml": (
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
    ),
    "smi/smi_traffic_split.yaml": None,
}
# The kinds gatekeeper routes with; the rest of _CRDS is installed on request (each CRD costs ~1-2 s).
ROUTING_CRDS = (
    "httproutes.gateway.networking.k8s.io",
    "virtualservices.networking.istio.io",
    "trafficsplits.split.smi-spec.io",
)


class KubeClusterError(RuntimeError):
    """The throwaway control plane could not be provided."""


class KubeNotBuilt(KubeClusterError):
    """The kube-apiserver binary or the CRD files are not in the cache: run the build script."""


class KubeStartError(KubeClusterError):
    """A process ran but did not become ready; the message carries the tail of its log."""


def cache_dir() -> Path:
    """Where ``scripts/kube-apiserver.sh`` puts the binary, the CRDs and the Go caches."""
    env = os.environ.get("GATEKEEPER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "gatekeeper"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise KubeStartError(f"`{' '.join(args)}` failed: {done.stderr.strip()[-800:]}")


def _make_pki(d: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1 signed by it, and a service-account key pair."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(["openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
          "-subj", "/CN=gatekeeper-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)  # fmt: skip
    _run(["openssl", "req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=kube-apiserver"], d)
    (d / "srv.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _run(["openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
          "-CAcreateserial", "-out", "srv.crt", "-days", "7", "-extfile", "srv.ext"], d)  # fmt: skip
    _run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key"], d
    )
    _run(["openssl", "pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], d)


def _wait(probe: Any, *, what: str, log: Path, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KubeStartError(f"{what} exited with {proc.returncode}; log tail:\n{_tail(log)}")
        try:
            if probe():
                return
        except OSError as exc:  # not listening yet, TLS not up yet
            last = str(exc)
        time.sleep(0.1)
    raise KubeStartError(f"{what} not ready after {timeout:.0f} s ({last}); log tail:\n{_tail(log)}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _spawn(args: list[str], *, log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes] | None, grace: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@dataclass
class KubeCluster:
    """A running etcd + kube-apiserver pair; build with :meth:`start`, end with :meth:`stop`."""

    workdir: Path
    server: str
    ca_file: Path
    kubeconfig: Path
    admin_token: str
    gatekeeper_token: str
    startup_seconds: float
    _etcd: subprocess.Popen[bytes] | None = field(repr=False, default=None)
    _apiserver: subprocess.Popen[bytes] | None = field(repr=False, default=None)

    # -- discovery -----------------------------------------------------------------------------------------
    @staticmethod
    def binary() -> Path:
        """The cached kube-apiserver path (``GATEKEEPER_KUBE_APISERVER`` overrides)."""
        env = os.environ.get("GATEKEEPER_KUBE_APISERVER")
        return Path(env) if env else cache_dir() / f"kube-apiserver-{KUBE_VERSION}" / "kube-apiserver"

    @staticmethod
    def crd_dir() -> Path:
        return cache_dir() / "crds"

    @classmethod
    def available(cls) -> bool:
        """True when the API server is built, the CRDs are fetched and Debian's etcd is installed."""
        return (
            os.access(cls.binary(), os.X_OK)
            and all((cls.crd_dir() / f).is_file() for f in _CRDS)
            and shutil.which("etcd") is not None
            and shutil.which("openssl") is not None
        )

    @classmethod
    def missing(cls) -> str:
        """A one-line reason why :meth:`available` is false ("" when it is true)."""
        if not os.access(cls.binary(), os.X_OK):
            return f"kube-apiserver is not built at {cls.binary()}: {BUILD_HINT}"
        lost = [f for f in _CRDS if not (cls.crd_dir() / f).is_file()]
        if lost:
            return f"routing CRDs missing under {cls.crd_dir()} ({lost[0]}…): {BUILD_HINT}"
        for tool, pkg in (("etcd", "etcd-server"), ("openssl", "openssl")):
            if shutil.which(tool) is None:
                return f"`{tool}` is not installed: apt-get install -y {pkg} (or scripts/setup.sh)"
        return ""

    # -- lifecycle -----------------------------------------------------------------------------------------
    @classmethod
    def start(
        cls, workdir: str | os.PathLike[str], *, timeout: float = 120.0, extra_args: Iterable[str] = ()
    ) -> KubeCluster:
        """Start etcd and the API server under ``workdir``; return once ``/readyz`` answers ok.
        ``extra_args``: more kube-apiserver flags (an audit log, say), appended as given."""
        if reason := cls.missing():
            raise KubeNotBuilt(reason)
        t0 = time.monotonic()
        d = Path(workdir)
        d.mkdir(parents=True, exist_ok=True)
        _make_pki(d)
        admin, gk = secrets.token_hex(16), secrets.token_hex(16)
        (d / "tokens.csv").write_text(
            f'{admin},admin,uid-admin,"system:masters"\n{gk},{GATEKEEPER_USER},uid-gatekeeper,"{GATEKEEPER_GROUP}"\n'
        )
        ec, ep, ap = _free_port(), _free_port(), _free_port()
        etcd_log = d / "etcd.log"
        etcd = _spawn(
            ["etcd", "--name", "t", "--data-dir", str(d / "etcd"), "--unsafe-no-fsync",
             "--logger=zap", "--log-level=warn",
             "--listen-client-urls", f"http://127.0.0.1:{ec}", "--advertise-client-urls", f"http://127.0.0.1:{ec}",
             "--listen-peer-urls", f"http://127.0.0.1:{ep}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{ep}",
             "--initial-cluster", f"t=http://127.0.0.1:{ep}"],
            log=etcd_log, cwd=d,
        )  # fmt: skip
        cluster = cls(
            workdir=d,
            server=f"https://127.0.0.1:{ap}",
            ca_file=d / "ca.crt",
            kubeconfig=d / "kubeconfig",
            admin_token=admin,
            gatekeeper_token=gk,
            startup_seconds=0.0,
            _etcd=etcd,
        )
        try:

            def etcd_ok() -> bool:
                with urllib.request.urlopen(f"http://127.0.0.1:{ec}/health", timeout=1) as r:
                    return bool(json.load(r).get("health") == "true")

            _wait(etcd_ok, what="etcd", log=etcd_log, timeout=timeout, proc=etcd)
            api_log = d / "kube-apiserver.log"
            cluster._apiserver = _spawn(
                [str(cls.binary()), f"--etcd-servers=http://127.0.0.1:{ec}", "--bind-address=127.0.0.1",
                 f"--secure-port={ap}", "--tls-cert-file=srv.crt", "--tls-private-key-file=srv.key",
                 "--client-ca-file=ca.crt", "--token-auth-file=tokens.csv",
                 "--service-account-key-file=sa.pub", "--service-account-signing-key-file=sa.key",
                 "--service-account-issuer=https://kubernetes.default.svc", "--authorization-mode=RBAC",
                 "--endpoint-reconciler-type=none", "--enable-priority-and-fairness=false",
                 "--feature-gates=WatchList=false", "--service-cluster-ip-range=10.96.0.0/16", *extra_args],
                log=api_log, cwd=d,
            )  # fmt: skip
            ctx = ssl.create_default_context(cafile=str(cluster.ca_file))

            def api_ok() -> bool:
                req = urllib.request.Request(
                    f"{cluster.server}/readyz", headers={"Authorization": f"Bearer {admin}"}
                )
                try:
                    with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
                        return r.status == 200
                except urllib.error.HTTPError:  # 500 while post-start hooks run
                    return False

            _wait(api_ok, what="kube-apiserver", log=api_log, timeout=timeout, proc=cluster._apiserver)
        except BaseException:
            cluster.stop()
            raise
        cluster._write_kubeconfig()
        cluster.startup_seconds = time.monotonic() - t0
        return cluster

    def stop(self, *, grace: float = 5.0) -> None:
        """Stop by PID: the API server first (it lingers if etcd goes first), then etcd; SIGKILL after grace."""
        _stop(self._apiserver, grace)
        _stop(self._etcd, grace)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in (self._apiserver, self._etcd) if p is not None and p.poll() is None)

    # -- clients -------------------------------------------------------------------------------------------
    def _write_kubeconfig(self) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [
                {"name": "admin", "user": {"token": self.admin_token}},
                {"name": GATEKEEPER_USER, "user": {"token": self.gatekeeper_token}},
            ],
            "contexts": [
                {"name": "admin", "context": {"cluster": "test", "user": "admin"}},
                {"name": GATEKEEPER_USER, "context": {"cluster": "test", "user": GATEKEEPER_USER}},
            ],
            "current-context": "admin",
        }
        self.kubeconfig.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def api_client(self, token: str | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` for ``token`` (default: the admin)."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.server
        cfg.ssl_ca_cert = str(self.ca_file)
        cfg.api_key = {"authorization": token or self.admin_token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(cfg)

    # -- CRDs ----------------------------------------------------------------------------------------------
    def install_crds(self, *, related: bool = False, timeout: float = 90.0) -> list[str]:
        """Create the pinned upstream routing CRDs (already present is fine); wait until they serve.

        ``related=True`` adds GatewayClass, Gateway, ReferenceGrant and DestinationRule.
        """
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = self.api_client()
        ext = client.ApiextensionsV1Api(api)
        docs = [
            d
            for d in _crd_documents(self.crd_dir(), _CRDS.items())
            if related or d["metadata"]["name"] in ROUTING_CRDS
        ]
        for doc in docs:
            try:
                ext.create_custom_resource_definition(doc)
            except ApiException as exc:
                if exc.status != 409:
                    raise KubeStartError(
                        f"CRD {doc['metadata']['name']} refused: {exc.status} {exc.body}"
                    ) from exc
        deadline = time.monotonic() + timeout
        custom = client.CustomObjectsApi(api)
        for doc in docs:
            spec = doc["spec"]
            served = [v["name"] for v in spec["versions"] if v.get("served")]
            while True:  # Established, then the endpoint answers (it can 404 for ~2 s after Established)
                try:
                    crd = ext.read_custom_resource_definition(doc["metadata"]["name"])
                    conds = {c.type: c.status for c in (crd.status.conditions or [])}
                    if conds.get("Established") == "True":
                        custom.list_cluster_custom_object(
                            spec["group"], served[0], spec["names"]["plural"], limit=1
                        )
                        break
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                if time.monotonic() > deadline:
                    raise KubeStartError(f"CRD {doc['metadata']['name']} not serving after {timeout:.0f} s")
                time.sleep(0.1)
        return [d["metadata"]["name"] for d in docs]


def crd_documents(*, related: bool = False) -> list[dict[str, Any]]:
    """The pinned upstream CRD documents from the cache: the routing ones, plus the related ones if asked."""
    docs = _crd_documents(KubeCluster.crd_dir(), _CRDS.items())
    return [d for d in docs if related or d["metadata"]["name"] in ROUTING_CRDS]


def _crd_documents(
    root: Path, wanted: Iterable[tuple[str, tuple[str, ...] | None]]
) -> Iterable[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the Istio file is ~870 KB
    for rel, names in wanted:
        chunks = re.split(r"^---\s*$", (root / rel).read_text(), flags=re.MULTILINE)
        if names is not None:  # parse only the documents that can be the wanted ones
            chunks = [c for c in chunks if any(f"name: {n}" in c for n in names)]
        for doc in (yaml.load(c, Loader=loader) for c in chunks):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            if names is None or doc["metadata"]["name"] in names:
                yield doc
