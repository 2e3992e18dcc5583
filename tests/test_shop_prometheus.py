"""The shop's metrics in a real Prometheus (remote write, explicit timestamps): what PromQL sees is the truth."""

from __future__ import annotations

import math
import time

import pytest

from gatekeeper.sim.prometheus import PrometheusServer
from gatekeeper.sim.remote_write import RemoteWriteClient
from gatekeeper.sim.shop import Behavior, Shop, ShopNames
from tests.fixtures.prometheus import instant_query


def window(minutes: int) -> tuple[float, float]:
    """A window of whole minutes that ends a minute before now (remote write never gets future samples)."""
    end = math.floor(time.time() / 60) * 60 - 60
    return end - 60 * minutes, end


def value(url: str, promql: str, at: float) -> float | None:
    result = instant_query(url, promql, at_ms=int(at * 1000))
    return float(result[0]["value"][1]) if result else None


@pytest.fixture
def names(request: pytest.FixtureRequest) -> ShopNames:
    return ShopNames.prefixed(request.node.name[-40:].replace("_", "-") + "-")


def test_counters_in_prometheus_equal_what_the_shop_did(prometheus: PrometheusServer, names: ShopNames):
    start, end = window(10)
    shop = Shop(
        start=start,
        seed=21,
        names=names,
        metrics=RemoteWriteClient(prometheus.remote_write_url),
        canary=Behavior(drift_rate=0.1, duplicate_rate=0.05),
    )
    shop.run_until(end)
    shop.flush()
    for track in ("canary", "baseline"):
        t = shop.truth[track]
        scope = f'track="{track}",job="{names.job}"'
        raw = {
            "shop_orders_placed_total": t.orders_placed,
            "oms_orders_recorded_total": t.orders_recorded,
            "payment_duplicate_total": t.duplicates,
            "shop_checkouts_total": t.checkouts,
            "inventory_decrements_total": t.decremented,
        }
        for metric, truth in raw.items():
            assert value(prometheus.url, f"sum({metric}{{{scope}}})", end) == truth, (track, metric)
            # a zero sample at the start and one at the end: increase() over the window is exact, no extrapolation
            got = value(prometheus.url, f"sum(increase({metric}{{{scope}}}[10m]))", end)
            assert got == pytest.approx(truth), (track, metric)
        storefront = f'service="{names.storefront}",{scope}'
        assert value(prometheus.url, f"sum(http_requests_total{{{storefront}}})", end) == t.requests
        assert (
            value(prometheus.url, f"sum(http_request_duration_seconds_count{{{storefront}}})", end)
            == t.requests
        )
        assert value(prometheus.url, f'sum(http_requests_total{{code="500",{storefront}}})', end) == t.errors


def test_a_dark_canary_is_down_and_its_series_vanish_while_the_baseline_reports(
    prometheus: PrometheusServer, names: ShopNames
):
    start, end = window(6)
    shop = Shop(
        start=start,
        seed=22,
        names=names,
        metrics=RemoteWriteClient(prometheus.remote_write_url),
        canary=Behavior(metrics_dark_from=end - 120),
    )
    shop.run_until(end)
    shop.flush()
    up = f'up{{job="{names.job}",service="{names.storefront}"'
    assert value(prometheus.url, f'{up},track="canary"}}', end) == 0.0
    assert value(prometheus.url, f'{up},track="baseline"}}', end) == 1.0
    checkouts = f'shop_checkouts_total{{service="{names.storefront}"'
    assert value(prometheus.url, f'{checkouts},track="canary"}}', end) is None  # stale marker: gone at once
    assert value(prometheus.url, f'{checkouts},track="canary"}}', end - 180) is not None
    assert value(prometheus.url, f'{checkouts},track="baseline"}}', end) == shop.truth["baseline"].checkouts
