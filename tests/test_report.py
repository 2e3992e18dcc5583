"""The evidence report: one self-contained HTML file, checked by reading its figures back and by opening it
in real chromium with every network request refused."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.evaluation import open_prometheus
from gatekeeper.judge import aggregate
from gatekeeper.ops.replay import replay
from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.spec import load_gate, load_gate_text
from gatekeeper.spec.outcome import SignalOutcome, Verdict
from gatekeeper.web.report import write_report
from tests.test_dashboard_browser import ARTIFACTS, browser  # noqa: F401  (the module-scoped fixture)

ROOT = Path(__file__).resolve().parents[1]
GATE = ROOT / "gates" / "http-canary.yaml"


def figures(text: str) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Every `Plotly.newPlot(id, data, layout, config)` call in the page, decoded."""
    out = {}
    decoder = json.JSONDecoder()
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', text):
        data, end = decoder.raw_decode(text, m.end())
        rest = re.match(r"\s*,\s*", text[end:])
        assert rest is not None
        layout, _ = decoder.raw_decode(text, end + rest.end())
        out[m.group(1)] = (data, layout)
    return out


@pytest.fixture(scope="module")
def failing_replay(prometheus, tmp_path_factory):  # type: ignore[no-untyped-def]
    from gatekeeper.sim.remote_write import RemoteWriteClient
    from gatekeeper.sim.scenario import canary_scenario
    from tests.fixtures.prometheus import current_step_ms

    scenario = canary_scenario(
        service="report-tests",
        end_ms=current_step_ms(),
        canary=ArmProfile(requests_per_second=100, error_ratio=0.018),
        baseline=ArmProfile(requests_per_second=100, error_ratio=0.01),
        seed=3,
    )
    RemoteWriteClient(prometheus.remote_write_url).write(scenario.series)
    gate = load_gate(GATE, args={"service": scenario.service})
    source = open_prometheus(gate, url=prometheus.url)
    try:
        result = replay(
            gate, metrics=source, start=scenario.start_ms / 1000, end=scenario.end_ms / 1000, step=60
        )
    finally:
        source.close()
    directory = tmp_path_factory.mktemp("report")
    one_shot = write_report(directory / "evaluate.html", gate=gate, judgement=result.last)
    timeline = write_report(directory / "replay.html", gate=gate, judgement=result.last, timeline=result)
    return gate, result, one_shot, timeline


def test_report_carries_every_signal_its_queries_and_the_e_value_path_against_its_threshold(
    failing_replay,
) -> None:
    _, result, path, _ = failing_replay
    text = path.read_text()
    judgement = result.last
    assert judgement.verdict == Verdict.FAIL
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", text, flags=re.S)
    assert len([s for s in scripts if len(s) > 3_000_000]) == 1  # plotly.js inlined once: opens offline
    assert sum("Plotly.newPlot" in s for s in scripts) == len(figures(text))
    assert not re.search(r"<script[^>]+src=", text) and not re.search(r"<link[^>]+href=\"?http", text)
    for s in judgement.signals:
        assert html.escape(s.name) in text and html.escape(s.reason) in text
        for q in s.queries.values():
            assert html.escape(q) in text, q
        for q in set(
            s.queries.values()
        ):  # a combined query behind several numbers is shown once, keys together
            keys = ", ".join(k for k, v in s.queries.items() if v == q)
            assert f"<span class='qkey'>{html.escape(keys)}</span><pre><code>{html.escape(q)}</code>" in text
    figs = figures(text)
    err = next(s for s in judgement.signals if s.name == "error-rate")
    index = [s.name for s in judgement.signals].index("error-rate")
    data, layout = figs[f"fig-{index}-evalue"]
    assert layout["yaxis"]["type"] == "log"
    path_trace = next(t for t in data if t["name"].startswith("e-value per step"))
    assert path_trace["y"] == pytest.approx(list(err.evidence.sequential.path))
    threshold = next(t for t in data if t["name"].startswith("threshold"))
    assert threshold["y"] == [err.evidence.threshold] * 2
    _, effect_layout = figs[f"fig-{index}-effect"]
    assert any(s.get("y0") == pytest.approx(err.effect.limit) for s in effect_layout["shapes"])


def test_replay_report_draws_the_confidence_sequence_and_the_timeline_look_by_look(failing_replay) -> None:
    _, result, _, path = failing_replay
    text = path.read_text()
    figs = figures(text)
    data, _ = figs["fig-timeline"]
    assert sum(len(t["x"]) for t in data if t.get("mode") == "markers") == len(result.looks)
    index = [s.name for s in result.last.signals].index("error-rate")
    effect, _ = figs[f"fig-{index}-effect"]
    upper = next(t for t in effect if t["name"] == "upper bound")["y"]
    expected = [
        next(s for s in lk.judgement.signals if s.name == "error-rate").effect.upper for lk in result.looks
    ]
    assert upper == pytest.approx(expected)
    arms, _ = figs[f"fig-{index}-arms"]
    canary = next(t for t in arms if t["name"] == "canary")["y"]
    assert (
        len(canary) == len(result.looks)
        and canary[-1] > next(t for t in arms if t["name"] == "baseline")["y"][-1]
    )
    assert "revert" in text and "Every look" in text


def test_report_escapes_text_that_comes_from_the_spec(tmp_path) -> None:
    spec = re.sub(
        r"(?m)^description: .*$", 'description: "<script>alert(1)</script> and more"', GATE.read_text()
    )
    gate = load_gate_text(spec, args={"service": "x"})
    outcome = SignalOutcome(
        name="error-rate",
        kind="ratio",
        verdict=Verdict.NODATA,
        reason="no canary <requests> & nothing",
        queries={"canary_bad": 'sum(increase(http_requests_total{code=~"5.."}[1m]))'},
    )
    j = aggregate([outcome], gate=gate.name, window={"start": 0.0, "end": 600.0, "step": 60.0})
    text = write_report(tmp_path / "r.html", gate=gate, judgement=j).read_text()
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text
    assert "no canary &lt;requests&gt; &amp; nothing" in text
    assert "code=~&quot;5..&quot;" in text


@pytest.mark.browser
def test_report_opens_offline_in_chromium_with_every_figure_drawn(failing_replay, browser) -> None:  # noqa: F811
    _, _, _, path = failing_replay
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    refused: list[str] = []

    def only_the_file(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_file)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    expected = len(figures(path.read_text()))
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {expected}")
    assert page.locator(".js-plotly-plot").count() == expected
    assert refused == [] and errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-replay.png"))
    page.close()


def test_evaluate_cli_writes_the_report_for_its_judgement(prometheus, failing_replay, tmp_path) -> None:
    import subprocess
    import sys

    _, result, _, _ = failing_replay
    end = result.looks[-1].time
    report = tmp_path / "evaluate.html"
    proc = subprocess.run(
        [
            sys.executable, "-m", "gatekeeper.cli.main", "evaluate", str(GATE), "--prometheus", prometheus.url,
            "--arg", "service=report-tests", "--start", str(result.start), "--end", str(end),
            "--output", "json", "--report", str(report),
        ],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    text = report.read_text()
    assert json.loads(proc.stdout)["verdict"] == "fail" and "FAIL" in text
    assert {f for f in figures(text)} >= {"fig-0-arms", "fig-0-evalue", "fig-0-effect"}
