"""What the shop is made of: service names, traffic shape, per-version behaviour (and its faults), ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

__all__ = ["TRACKS", "Behavior", "ShopNames", "Traffic", "Truth"]

TRACKS = ("baseline", "canary")


@dataclass(frozen=True)
class ShopNames:
    """Service names (the `service` label and the traces' `service.name`) and the scrape job."""

    storefront: str = "storefront"
    payment: str = "payment"
    orders: str = "orders"
    inventory: str = "inventory"
    job: str = "shop"

    @classmethod
    def prefixed(cls, prefix: str) -> ShopNames:
        """Names with a prefix, so several shops can share one Prometheus without clashing series."""
        return cls(**{f.name: f"{prefix}{getattr(cls(), f.name)}" for f in fields(cls)})

    def args(self) -> dict[str, str]:
        """Gate arguments for `gates/checkout.yaml`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def services(self) -> tuple[str, str, str, str]:
        return (self.storefront, self.payment, self.orders, self.inventory)


@dataclass(frozen=True)
class Traffic:
    """Requests per simulated second at the daily mean, shaped by a daily cosine peaking at `peak_hour` (UTC)."""

    requests_per_second: float = 40.0
    checkout_share: float = 0.25
    diurnal_amplitude: float = 0.5  # 0 = flat; 0.5 = peak 1.5x the mean, trough 0.5x
    peak_hour: float = 20.0

    def __post_init__(self) -> None:
        _check(
            self,
            requests_per_second=self.requests_per_second >= 0,
            checkout_share=0 <= self.checkout_share <= 1,
            diurnal_amplitude=0 <= self.diurnal_amplitude < 1,
            peak_hour=0 <= self.peak_hour < 24,
        )

    def rate(self, t: float) -> float:
        """Expected requests per second at unix time `t`."""
        hour = (t % 86400.0) / 3600.0
        return self.requests_per_second * (
            1 + self.diurnal_amplitude * math.cos(2 * math.pi * (hour - self.peak_hour) / 24)
        )


@dataclass(frozen=True)
class Behavior:
    """How one version behaves. The defaults are a healthy shop's background noise; faults raise one rate.

    Probabilities are per request (`error_rate`) or per successful checkout (the commerce ones).
    `partial_checkout`: payment captured, order never created, checkout still answers 200.
    `drift_rate`: the storefront counts an order placed that the OMS never records; with `drift_above`, only
    while this version takes more than that many checkouts per second (a fault under load: a connection pool
    sized for the old traffic), so small exposures cannot show it.
    `inventory_drift_rate`: a reservation the inventory system never decrements.
    `duplicate_rate`: the same idempotency key charged twice.
    `retries_per_checkout`: mean downstream retries per checkout (multiply it for a retry storm).
    `latency_shift`: seconds added to every storefront response.
    `metrics_dark_from` / `spans_dark_from`: sim time from which the version's scrapes fail (up == 0, series go
    stale) / it stops sending spans, while it keeps serving traffic.
    """

    error_rate: float = 0.005
    latency_median: float = 0.08
    checkout_latency_median: float = 0.35
    latency_sigma: float = 0.6
    latency_shift: float = 0.0
    partial_checkout: float = 0.005
    drift_rate: float = 0.005
    drift_above: float | None = None
    inventory_drift_rate: float = 0.005
    duplicate_rate: float = 0.005
    retries_per_checkout: float = 0.05
    webhooks_per_order: float = 1.0
    metrics_dark_from: float | None = None
    spans_dark_from: float | None = None

    def __post_init__(self) -> None:
        probs = ("error_rate", "partial_checkout", "drift_rate", "inventory_drift_rate", "duplicate_rate")
        _check(self, **{p: 0 <= getattr(self, p) <= 1 for p in probs})
        _check(
            self,
            latency_median=self.latency_median > 0,
            checkout_latency_median=self.checkout_latency_median > 0,
            latency_sigma=self.latency_sigma >= 0,
            latency_shift=self.latency_shift >= 0,
            retries_per_checkout=self.retries_per_checkout >= 0,
            webhooks_per_order=self.webhooks_per_order >= 0,
        )

    def with_faults(self, **changes: float | None) -> Behavior:
        return replace(self, **changes)

    def dark_metrics(self, t: float) -> bool:
        return self.metrics_dark_from is not None and t >= self.metrics_dark_from

    def dark_spans(self, t: float) -> bool:
        return self.spans_dark_from is not None and t >= self.spans_dark_from


@dataclass
class Truth:
    """What one version really did (exact counts, whether reported or not)."""

    requests: int = 0
    errors: int = 0
    checkouts: int = 0
    partial_checkouts: int = 0
    orders_placed: int = 0
    orders_recorded: int = 0
    reserved: int = 0
    decremented: int = 0
    captures: int = 0
    processed: int = 0
    duplicates: int = 0
    retries: int = 0
    webhooks: int = 0
    traces: int = 0  # checkout traces emitted
    traced_violations: int = 0  # emitted traces with payment captured and no successful order.create
    spans: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _check(obj: object, **ok: bool) -> None:
    for name, good in ok.items():
        if not good:
            raise ValueError(f"{type(obj).__name__}.{name}={getattr(obj, name)!r} is out of range")
