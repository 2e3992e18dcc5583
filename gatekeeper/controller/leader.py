"""Leader election on a ``coordination.k8s.io/v1`` Lease, client-go style, with fencing.

The algorithm is client-go's ``leaderelection``: a candidate takes the Lease when it is free or when its record
has not changed for ``lease_duration`` seconds *as observed locally* (no clock comparison across machines);
the leader renews every ``retry_period`` and gives up when no renewal succeeded for ``renew_deadline``.
Defaults 15 s / 10 s / 2 s as in client-go, controller-runtime and kube-controller-manager.

client-go does not fence a deposed leader, and neither does the Python client's ``leaderelection`` (it keeps
working after losing the Lease). Here:

* ``fence()`` runs before every write: it raises ``NotLeader`` unless this replica leads and its last
  successful renewal was *sent* less than ``renew_deadline`` ago. A rival can take over no earlier than
  ``lease_duration`` after it observed that renewal, which is later than its sending, so a replica that passes
  the fence is still the only leader. A paused process (SIGSTOP, a long GC) wakes up failing the fence.
* ``confirm()`` additionally reads the Lease (one GET) before routing writes.
* When renewal fails past the deadline, ``on_lost`` is called once: the runtime stops every writer at once.

Time here is real time (``monotonic`` for durations, ``wall`` for the Lease's timestamps), both injectable.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Leader", "LeaseSettings", "NotLeader"]

log = logging.getLogger("gatekeeper.controller")


class NotLeader(RuntimeError):
    """This replica does not (or no longer provably) hold the Lease: the write was not made."""


@dataclass(frozen=True)
class LeaseSettings:
    name: str = "gatekeeper-controller"
    namespace: str = "default"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "lease settings need 0 < retryPeriod < renewDeadline < leaseDuration, got "
                f"{self.retry_period:g} / {self.renew_deadline:g} / {self.lease_duration:g}"
            )


def _micro(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Leader:
    """One replica's view of the Lease."""

    def __init__(
        self,
        api_client: Any,
        *,
        identity: str,
        settings: LeaseSettings = LeaseSettings(),
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        from kubernetes import client

        self._api = client.CoordinationV1Api(api_client)
        self.identity = identity
        self.settings = settings
        self._mono, self._wall = monotonic, wall
        self._observed: tuple[Any, ...] | None = None  # the last Lease record seen
        self._observed_at = 0.0
        self._renewed_sent: float | None = None  # when the last successful acquire/renew request was sent
        self.leading = False
        self.lost = False
        self.transitions: list[tuple[str, float]] = []  # ("acquired" | "lost" | "released", monotonic time)

    # -- fencing --------------------------------------------------------------------------------------------
    def fence(self) -> None:
        sent = self._renewed_sent
        if not self.leading or self.lost or sent is None:
            raise NotLeader(f"{self.identity} does not hold Lease {self.settings.name}")
        age = self._mono() - sent
        if age >= self.settings.renew_deadline:
            raise NotLeader(
                f"{self.identity}: last Lease renewal was {age:.1f}s ago (deadline {self.settings.renew_deadline:g}s)"
            )

    def confirm(self) -> None:
        """Fence, then read the Lease: it must still name this replica."""
        self.fence()
        lease = self._read()
        holder = lease.spec.holder_identity if lease is not None and lease.spec is not None else None
        if holder != self.identity:
            self._lose(f"the Lease names {holder!r}")
            raise NotLeader(f"{self.identity}: Lease {self.settings.name} is held by {holder!r}")

    # -- one attempt ----------------------------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """One client-go ``tryAcquireOrRenew``; True when this replica holds the Lease afterwards."""
        from kubernetes.client.exceptions import ApiException

        s = self.settings
        sent = self._mono()
        try:
            lease = self._read()
            if lease is None:
                self._api.create_namespaced_lease(
                    s.namespace, self._body(None), _request_timeout=s.retry_period
                )
                return self._won(sent)
            spec = lease.spec
            record = (
                spec.holder_identity,
                spec.renew_time,
                spec.lease_transitions,
                spec.lease_duration_seconds,
            )
            if record != self._observed:
                self._observed, self._observed_at = record, self._mono()
            holder = spec.holder_identity or ""
            duration = spec.lease_duration_seconds or s.lease_duration
            if holder not in ("", self.identity) and self._observed_at + duration > self._mono():
                return False  # held by a live rival
            self._api.replace_namespaced_lease(
                s.name, s.namespace, self._body(lease), _request_timeout=s.retry_period
            )
            return self._won(sent)
        except ApiException as e:
            if e.status not in (409, 404):
                log.warning("Lease %s: %s %s", s.name, e.status, e.reason)
            return False
        except Exception as e:  # unreachable API server: not renewed this time
            log.warning("Lease %s: %s", s.name, e)
            return False

    def _read(self) -> Any:
        from kubernetes.client.exceptions import ApiException

        s = self.settings
        try:
            return self._api.read_namespaced_lease(s.name, s.namespace, _request_timeout=s.retry_period)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def _body(self, lease: Any) -> dict[str, Any]:
        s, now = self.settings, _micro(self._wall())
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(round(s.lease_duration), 1),
            "renewTime": now,
            "acquireTime": now,
            "leaseTransitions": 0,
        }
        meta: dict[str, Any] = {"name": s.name, "namespace": s.namespace}
        if lease is not None:
            meta["resourceVersion"] = lease.metadata.resource_version
            old = lease.spec
            transitions = old.lease_transitions or 0
            if old.holder_identity == self.identity and old.acquire_time is not None:
                spec["acquireTime"] = _micro(old.acquire_time.timestamp())
                spec["leaseTransitions"] = transitions
            else:
                spec["leaseTransitions"] = transitions + 1
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _won(self, sent: float) -> bool:
        self._renewed_sent = sent
        if not self.leading:
            self.leading, self.lost = True, False
            self.transitions.append(("acquired", self._mono()))
            log.info("%s acquired Lease %s/%s", self.identity, self.settings.namespace, self.settings.name)
        return True

    def _lose(self, why: str) -> None:
        if self.leading and not self.lost:
            log.error("%s lost Lease %s: %s; stopping every writer", self.identity, self.settings.name, why)
            self.transitions.append(("lost", self._mono()))
        self.leading, self.lost = False, True

    # -- loops ----------------------------------------------------------------------------------------------
    async def acquire(self, stop: asyncio.Event) -> bool:
        """Try every ``retry_period`` until this replica leads (True) or ``stop`` is set (False)."""
        self.lost = False
        while not stop.is_set():
            if await asyncio.to_thread(self.try_acquire_or_renew):
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.retry_period)
        return False

    async def keep(self, stop: asyncio.Event, on_lost: Callable[[], None]) -> None:
        """Renew until ``stop`` is set or renewal fails for ``renew_deadline``; then call ``on_lost`` once."""
        s = self.settings
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), s.retry_period)
                return
            except TimeoutError:
                pass
            ok = await asyncio.to_thread(self.try_acquire_or_renew)
            sent = self._renewed_sent or 0.0
            if not ok and self._mono() - sent >= s.renew_deadline:
                self._lose(f"no renewal for {self._mono() - sent:.1f}s")
                on_lost()
                return
            if self.lost:  # confirm() saw a rival
                on_lost()
                return

    def release(self) -> None:
        """On a graceful stop: hand the Lease back (empty holder, 1 s duration) so a standby takes over at once."""
        if not self.leading:
            return
        s = self.settings
        self.leading = False  # first: from here on the fence fails, so no write can follow the release
        try:
            lease = self._read()
            if lease is not None and lease.spec.holder_identity == self.identity:
                body = self._body(lease)
                body["spec"].update({"holderIdentity": "", "leaseDurationSeconds": 1})
                self._api.replace_namespaced_lease(s.name, s.namespace, body, _request_timeout=s.retry_period)
        except Exception as e:
            log.warning("Lease %s not released: %s", s.name, e)
        self.transitions.append(("released", self._mono()))
