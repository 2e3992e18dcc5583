"""The demo/test stack itself: a real Prometheus loaded by remote write holds exactly the scenario's ground truth."""

from __future__ import annotations

import math
import os
import time

import httpx
import pytest

from gatekeeper.sim.prometheus import PrometheusNotInstalled, PrometheusServer
from gatekeeper.sim.remote_write import (
    InvalidSeries,
    RemoteWriteClient,
    RemoteWriteFailed,
    RemoteWriteRejected,
    Series,
)
from gatekeeper.sim.scenario import ArmProfile, canary_scenario
from tests.fixtures.prometheus import current_step_ms, instant_query


def by_track(result: list[dict]) -> dict[str, float]:
    return {r["metric"]["track"]: float(r["value"][1]) for r in result}


# -- scenario generator alone -------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_series_and_the_canary_never_changes_the_baselines_draws() -> None:
    one = canary_scenario(service="s", end_ms=3_600_000, seed=7, canary=ArmProfile(error_ratio=0.2))
    two = canary_scenario(service="s", end_ms=3_600_000, seed=7, canary=ArmProfile(error_ratio=0.2))
    other_canary = canary_scenario(service="s", end_ms=3_600_000, seed=7, canary_absent=True)
    assert one.series == two.series
    assert other_canary.truth["baseline"] == one.truth["baseline"]
    assert "canary" not in other_canary.truth
    assert one.truth["canary"].latency_buckets["+Inf"] == one.truth["canary"].requests


def test_an_arm_that_never_failed_has_no_error_series_at_all() -> None:
    scenario = canary_scenario(service="s", end_ms=3_600_000, canary=ArmProfile(error_ratio=0.0))
    codes = {
        (s.labels["track"], s.labels.get("code")) for s in scenario.series if s.name == "http_requests_total"
    }
    assert codes == {("canary", "200"), ("baseline", "200"), ("baseline", "500")}
    assert scenario.truth["canary"].errors == 0


# -- loaded into a real Prometheus --------------------------------------------------------------------------
def test_raw_counters_at_the_last_scrape_equal_the_true_counts_per_arm(prometheus, load_scenario) -> None:
    scenario = load_scenario(
        canary=ArmProfile(error_ratio=0.05, latency_median_seconds=0.2, replicas=2),
        baseline=ArmProfile(error_ratio=0.01, replicas=2),
    )
    sel, at = f'service="{scenario.service}"', scenario.end_ms
    requests = by_track(
        instant_query(prometheus.url, f"sum by (track) (http_requests_total{{{sel}}})", at_ms=at)
    )
    errors = by_track(
        instant_query(prometheus.url, f'sum by (track) (http_requests_total{{{sel}, code="500"}})', at_ms=at)
    )
    fast = by_track(
        instant_query(
            prometheus.url,
            f'sum by (track) (http_request_duration_seconds_bucket{{{sel}, le="0.1"}})',
            at_ms=at,
        )
    )
    latency_sum = by_track(
        instant_query(
            prometheus.url, f"sum by (track) (http_request_duration_seconds_sum{{{sel}}})", at_ms=at
        )
    )
    for track, truth in scenario.truth.items():
        assert requests[track] == truth.requests
        assert errors[track] == truth.errors
        assert fast[track] == truth.latency_buckets["0.1"]
        assert math.isclose(latency_sum[track], truth.latency_sum, rel_tol=1e-9)
    assert errors["canary"] / requests["canary"] > errors["baseline"] / requests["baseline"]


def test_increase_over_the_exact_sample_span_matches_ground_truth_through_a_counter_reset(
    prometheus, load_scenario
) -> None:
    end = current_step_ms()
    scenario = load_scenario(
        end_ms=end, duration_seconds=900, reset_at_ms=end - 300_000, reset_track="canary"
    )
    truth = scenario.truth["canary"]
    span_s = (truth.last_sample_ms - truth.first_sample_ms) // 1000
    sel = f'service="{scenario.service}", track="canary"'
    increase = instant_query(
        prometheus.url, f"sum(increase(http_request_duration_seconds_count{{{sel}}}[{span_s}s]))", at_ms=end
    )
    raw = instant_query(prometheus.url, f"sum(http_request_duration_seconds_count{{{sel}}})", at_ms=end)
    resets = instant_query(
        prometheus.url, f"sum(resets(http_request_duration_seconds_count{{{sel}}}[{span_s}s]))", at_ms=end
    )
    assert truth.restarts == 1
    assert float(increase[0]["value"][1]) == truth.requests_after_first_sample
    assert float(raw[0]["value"][1]) < truth.requests  # the raw counter lost the pre-restart count
    assert float(resets[0]["value"][1]) == 1


def test_a_dark_canary_vanishes_from_instant_queries_after_the_lookback_but_its_age_stays_visible(
    prometheus, load_scenario
) -> None:
    end = current_step_ms()
    scenario = load_scenario(end_ms=end, canary_stops_at_ms=end - 6 * 60_000)
    sel = f'http_requests_total{{service="{scenario.service}", code="200"}}'
    now = by_track(instant_query(prometheus.url, sel, at_ms=end))
    newest = by_track(
        instant_query(prometheus.url, f"max by (track) (max_over_time(timestamp({sel})[15m:15s]))", at_ms=end)
    )
    in_range = by_track(instant_query(prometheus.url, f"sum by (track) (increase({sel}[10m]))", at_ms=end))
    assert set(now) == {"baseline"}
    assert newest["canary"] * 1000 == scenario.truth["canary"].last_sample_ms
    assert end - newest["canary"] * 1000 >= 6 * 60_000
    assert newest["baseline"] * 1000 == end
    assert in_range["canary"] > 0


def test_staleness_markers_end_a_canary_series_at_once(prometheus, load_scenario) -> None:
    end = current_step_ms()
    scenario = load_scenario(end_ms=end, canary_stops_at_ms=end - 60_000, stale_markers=True)
    sel = f'http_requests_total{{service="{scenario.service}", code="200"}}'
    last = scenario.truth["canary"].last_sample_ms
    assert set(by_track(instant_query(prometheus.url, sel, at_ms=last))) == {"baseline", "canary"}
    assert set(by_track(instant_query(prometheus.url, sel, at_ms=last + scenario.step_ms))) == {"baseline"}


def test_an_absent_canary_leaves_no_series_while_the_baseline_reports(prometheus, load_scenario) -> None:
    scenario = load_scenario(canary_absent=True)
    result = instant_query(
        prometheus.url,
        f'count by (track) (http_requests_total{{service="{scenario.service}"}})',
        at_ms=scenario.end_ms,
    )
    assert set(by_track(result)) == {"baseline"}


# -- errors -------------------------------------------------------------------------------------------------
def test_a_series_without_a_metric_name_is_refused_before_anything_is_sent(dead_prometheus_url) -> None:
    client = RemoteWriteClient(f"{dead_prometheus_url}/api/v1/write")
    bad = Series(labels={"service": "x"}, samples=[(1_000, 1.0)])
    with pytest.raises(InvalidSeries, match=r"__name__.*metric name"):
        client.write([bad])


def test_a_label_with_an_empty_value_is_refused_naming_the_label(dead_prometheus_url) -> None:
    client = RemoteWriteClient(f"{dead_prometheus_url}/api/v1/write")
    bad = Series(labels={"__name__": "x_total", "track": ""}, samples=[(1_000, 1.0)])
    with pytest.raises(InvalidSeries, match="'track'"):
        client.write([bad])


def test_a_sample_older_than_the_head_allows_is_rejected_with_the_servers_reason(fresh_prometheus) -> None:
    client = RemoteWriteClient(fresh_prometheus.remote_write_url)
    now = current_step_ms()
    client.write([Series(labels={"__name__": "x_total"}, samples=[(now, 1.0)])])
    with pytest.raises(RemoteWriteRejected, match="out of bounds") as caught:
        client.write([Series(labels={"__name__": "x_total", "a": "b"}, samples=[(now - 3 * 3_600_000, 1.0)])])
    assert caught.value.status == 400
    assert "time order" in str(caught.value)


def test_writing_to_a_dead_prometheus_fails_naming_the_url(dead_prometheus_url) -> None:
    client = RemoteWriteClient(f"{dead_prometheus_url}/api/v1/write", timeout=2)
    with pytest.raises(RemoteWriteFailed, match=dead_prometheus_url) as caught:
        client.write([Series(labels={"__name__": "x_total"}, samples=[(1_000, 1.0)])])
    assert caught.value.status is None


def test_a_missing_binary_names_the_install_command(tmp_path) -> None:
    with pytest.raises(PrometheusNotInstalled, match="apt-get install -y --no-install-recommends prometheus"):
        PrometheusServer(binary=tmp_path / "prometheus")


# -- the server process -------------------------------------------------------------------------------------
def test_a_server_scrapes_its_targets_and_stops_by_pid(prometheus) -> None:
    target = prometheus.url.removeprefix("http://")
    server = PrometheusServer(scrape_interval=0.5, scrape_targets={"peer": [target]}).start()
    pid = server.pid
    try:
        up: list[dict] = []
        for _ in range(100):
            up = httpx.get(f"{server.url}/api/v1/query", params={"query": 'up{job="peer"}'}).json()["data"][
                "result"
            ]
            if up:
                break
            time.sleep(0.1)
        assert up and up[0]["value"][1] == "1"
    finally:
        server.stop()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_different_value_at_a_stored_timestamp_is_rejected_as_a_duplicate(prometheus) -> None:
    client = RemoteWriteClient(prometheus.remote_write_url)
    at, labels = current_step_ms(), {"__name__": "dup_total", "service": "duplicate-check"}
    client.write([Series(labels=labels, samples=[(at, 1.0)])])
    with pytest.raises(RemoteWriteRejected, match=r"duplicate sample.*distinct service"):
        client.write([Series(labels=labels, samples=[(at, 2.0)])])
