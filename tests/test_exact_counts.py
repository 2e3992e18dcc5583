"""Exact counts from a real Prometheus: the count tests see the counters' true increments.

Ground truth is an event timeline, independent of the code under test: each event is observed by the first
scrape at or after it, unless the process restarts before that scrape (then nobody can ever count it). Known
counters are loaded into the real Prometheus at 15-s, 30-s and 60-s sample spacing, each with a counter reset
(a process restart), a missed scrape, and a series that is created by its first event inside the window (as
client libraries do for a labelled counter). `fetch.counters` must return exactly the observed events per step.
`sum(increase(x[step]))` must not (Prometheus extrapolates each window to its full length), which is why it
is no longer used.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gatekeeper.signals import EvalContext
from gatekeeper.signals.fetch import Counter, counters
from gatekeeper.sim.remote_write import RemoteWriteClient, Series
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.spec import load_gate_text
from gatekeeper.spec.window import Window
from tests.fixtures.prometheus import current_step_ms, instant_query

STEP = 60.0
PHASE = 7.3  # seconds between a step boundary and the next scrape, as Prometheus offsets each target
WINDOW = 1800.0

GATE = """
name: exact
scopes:
  canary: {{service: "{svc}", track: canary}}
  baseline: {{service: "{svc}", track: baseline}}
stages: [{{weight: 50}}]
signals:
  - {{name: errors, kind: ratio, bad: 'requests_total{{code="500"}}', total: requests_total}}
"""


class Process:
    """One counter series of one process: event times, scrape times, and a restart."""

    def __init__(self, *, rng: np.random.Generator, start: float, end: float, spacing: float, rate: float,
                 restart_at: float | None, missed: float | None, born_by_first_event: bool) -> None:  # fmt: skip
        self.events = np.sort(rng.uniform(start, end, rng.poisson(rate * (end - start))))
        scrapes = np.arange(start + PHASE, end, spacing)  # scrape times are not aligned with the steps
        if missed is not None:  # the scrape nearest to this time never happened
            scrapes = np.delete(scrapes, int(np.argmin(np.abs(scrapes - missed))))
        self.scrapes = scrapes
        self.restart_at = restart_at
        self.born = born_by_first_event

    def samples(self) -> list[tuple[int, float]]:
        """What the exporter reports at each scrape (counter since the last (re)start)."""
        out = []
        for t in self.scrapes:
            life_start = (
                self.restart_at if self.restart_at is not None and t >= self.restart_at else -math.inf
            )
            value = float(np.sum((self.events > life_start) & (self.events <= t)))
            if self.born and not np.any(self.events <= t):
                continue  # the series does not exist before its first event
            out.append((round(t * 1000), value))
        return out

    def observed_per_step(self, points: np.ndarray) -> np.ndarray:
        """Truth: each event at the first scrape at or after it, unless a restart comes in between."""
        counts = np.zeros(len(points))
        for e in self.events:
            after = self.scrapes[self.scrapes >= e]
            if not len(after):
                continue
            seen_at = after[0]
            if self.restart_at is not None and e < self.restart_at <= seen_at:
                continue  # lost with the process
            k = math.ceil((seen_at - (points[0] - STEP)) / STEP - 1e-9) - 1
            if 0 <= k < len(points):
                counts[k] += 1
        return counts


@pytest.mark.parametrize("spacing", [15.0, 30.0, 60.0])
def test_counts_are_the_true_increments_at_any_scrape_spacing_with_a_reset_a_missed_scrape_and_a_new_series(
    prometheus, spacing
):
    rng = np.random.default_rng(int(spacing))
    end = current_step_ms(60) / 1000
    window_start = end - WINDOW
    start = window_start - 600  # the processes ran before the window: their base samples are outside it
    svc = f"exact-{int(spacing)}"
    procs = {
        ("canary", "200"): Process(rng=rng, start=start, end=end, spacing=spacing, rate=3.0,
                                   restart_at=window_start + 700.3, missed=window_start + 1000, born_by_first_event=False),
        ("canary", "500"): Process(rng=rng, start=window_start + 400, end=end, spacing=spacing, rate=0.05,
                                   restart_at=window_start + 700.3, missed=window_start + 1000, born_by_first_event=True),
        ("baseline", "200"): Process(rng=rng, start=start, end=end, spacing=spacing, rate=3.0,
                                     restart_at=None, missed=None, born_by_first_event=False),
        ("baseline", "500"): Process(rng=rng, start=start, end=end, spacing=spacing, rate=0.03,
                                     restart_at=None, missed=window_start + 300, born_by_first_event=False),
    }  # fmt: skip
    # the two canary series share one process: the same scrapes and the same restart
    procs[("canary", "500")].scrapes = procs[("canary", "200")].scrapes
    series = [
        Series(
            labels={"__name__": "requests_total", "service": svc, "track": track, "code": code},
            samples=p.samples(),
        )
        for (track, code), p in procs.items()
    ]
    RemoteWriteClient(prometheus.remote_write_url).write(series)

    gate = load_gate_text(GATE.format(svc=svc))
    window = Window(start=window_start, end=end, step=STEP)
    source = PrometheusSource(prometheus.url)
    ctx = EvalContext(gate=gate, metrics=source, window=window, stage=gate.stages[0], alpha=0.01)
    got = counters(ctx, {"bad": Counter('requests_total{code="500"}'), "all": Counter("requests_total")})
    points = end - STEP * np.arange(round(WINDOW / STEP) - 1, -1, -1)
    for arm in ("canary", "baseline"):
        truth_bad = procs[(arm, "500")].observed_per_step(points)
        truth_all = truth_bad + procs[(arm, "200")].observed_per_step(points)
        bad = sum(s.values for s in got["bad"][arm].series)
        total = sum(s.values for s in got["all"][arm].series)
        assert np.array_equal(bad, truth_bad), arm
        assert np.array_equal(total, truth_all), arm
        assert got["all"][arm].newest == pytest.approx(procs[(arm, "200")].scrapes[-1])
    assert any("reset" in n for n in got["all"]["canary"].notes)
    assert any("started inside the window" in n for n in got["bad"]["canary"].notes)
    source.close()

    # What `sum(increase(x[step]))` gave per step: each step's increase between its first and last sample,
    # extrapolated to the step's full length (x4/3 with four 15-s samples, x2 with two 30-s samples, nothing
    # with one 60-s sample): not the events of the step.
    truth = sum(procs[("baseline", code)].observed_per_step(points) for code in ("200", "500"))
    old = np.zeros(len(points))
    for k, t in enumerate(points):
        answer = instant_query(
            prometheus.url,
            f'sum(increase(requests_total{{service="{svc}",track="baseline"}}[{int(STEP)}s]))',
            at_ms=round(t * 1000),
        )
        old[k] = float(answer[0]["value"][1]) if answer else 0.0
    assert np.mean(np.abs(old - truth) < 0.5) < 0.5
