"""`gatekeeper import`, what every peer shares: input handling, exit codes, the report, and helpers the
peer-specific tests use (the real CLI app in-process, a real Prometheus loaded with relabelled scenarios)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import yaml
from typer.testing import CliRunner

from gatekeeper.cli.main import app
from gatekeeper.evaluation import safe_judgement
from gatekeeper.importers import import_texts
from gatekeeper.sim.remote_write import RemoteWriteClient, Series
from gatekeeper.sim.scenario import ArmProfile, Scenario, canary_scenario
from gatekeeper.spec import load_gate_text
from gatekeeper.spec.window import Window
from tests.fixtures.prometheus import current_step_ms

PEERS = Path(__file__).parent / "data" / "peers"
BUSY = {"requests_per_second": 100.0, "error_ratio": 0.005}


def cli(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    """Run the real typer app in-process (stdout and stderr apart)."""
    return CliRunner().invoke(app, list(args), input=stdin)


def import_to(tmp_path: Path, *files: str, extra: tuple[str, ...] = ()) -> tuple[Path, str]:
    """`gatekeeper import FILES -o gate.yaml`, asserting success; returns the gate path and stderr."""
    out = tmp_path / "gate.yaml"
    result = cli("import", *[str(PEERS / f) for f in files], "-o", str(out), *extra)
    assert result.exit_code == 0, result.stderr
    return out, result.stderr


def lint_ok(path: Path) -> None:
    result = cli("lint", str(path))
    assert result.exit_code == 0, result.stderr + result.stdout


def load_relabelled(
    prometheus,  # type: ignore[no-untyped-def]
    *,
    service: str,
    relabel: Callable[[dict[str, str]], dict[str, str] | None],
    canary: ArmProfile | None = None,
    baseline: ArmProfile | None = None,
    seed: int = 0,
    canary_absent: bool = False,
) -> Scenario:
    """Generate a scenario and remote-write it with every series' labels passed through `relabel`."""
    scenario = canary_scenario(
        service=service,
        end_ms=current_step_ms(15),
        canary=canary,
        baseline=baseline,
        seed=seed,
        canary_absent=canary_absent,
    )
    series = []
    for s in scenario.series:
        labels = relabel(dict(s.labels))
        if labels is not None:
            series.append(Series(labels=labels, samples=s.samples))
    RemoteWriteClient(prometheus.remote_write_url).write(series)
    return scenario


def window_of(scenario: Scenario, *, minutes: int = 30, step: float = 60.0) -> Window:
    end = scenario.end_ms / 1000
    return Window(start=end - minutes * 60, end=end, step=step)


def evaluate_file(path: Path, url: str, scenario: Scenario, **args: str):  # type: ignore[no-untyped-def]
    gate = load_gate_text(path.read_text(), args=args or None)
    return safe_judgement(
        gate, window=window_of(scenario, step=gate.source.prometheus.step), prometheus_url=url
    )


def unique_service(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50]


# --- tests ----------------------------------------------------------------------------------------------


def test_unparsable_yaml_exits_2_naming_the_file_and_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nspec:\n  metrics: [\n    - name: x\n"
    )
    result = cli("import", str(bad))
    assert result.exit_code == 2
    assert re.search(r"broken\.yaml:\d+", result.stderr), result.stderr


def test_an_input_that_is_not_utf8_exits_2_naming_the_file_and_line(tmp_path):
    bad = tmp_path / "latin1.yaml"  # a UnicodeDecodeError traceback before
    bad.write_bytes(b"apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: caf\xe9}\n")
    result = cli("import", str(bad))
    assert result.exit_code == 2
    assert "latin1.yaml:3: not UTF-8" in result.stderr, result.stderr


def test_a_field_name_from_the_input_cannot_break_or_write_into_the_imported_gate():
    # found by the fuzzer (tests/fuzz, import-kayenta): a BEL in an unknown key's name went raw into the report
    # comment and the gate file did not load (ReaderError); a line break would have written YAML into the gate
    doc = json.loads((PEERS / "kayenta" / "checkout-canary.json").read_text())
    doc["bell\u0007"] = 1
    doc["x\nname: injected\u2028y: 1\x85z"] = 2
    result = import_texts([("config.json", json.dumps(doc))])
    gate = yaml.safe_load(result.text)
    assert gate["name"] == "checkout-golden-signals" and "y" not in gate and "z" not in gate
    assert "bell\\x07: no gatekeeper equivalent" in result.text
    assert all(line.startswith("#") for line in result.text.split("apiVersion:")[0].splitlines())


def test_unparsable_json_exits_2_with_the_json_line(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{\n\t"name": "x",\n\t"metrics": [\n\t\t{"name": "a",}\n\t]\n}\n')
    result = cli("import", str(bad))
    assert result.exit_code == 2
    assert "config.json:4" in result.stderr, result.stderr


def test_stdin_multi_document_input_is_imported():
    text = (PEERS / "argo" / "success-rate.yaml").read_text()
    result = cli("import", "-", stdin=text)
    assert result.exit_code == 0, result.stderr
    gate = yaml.safe_load(result.stdout)
    assert [s["name"] for s in gate["signals"]] == ["success-rate", "total-errors", "total-4xx-errors"]
    assert "<stdin>" in result.stdout.splitlines()[0]


def test_mixing_two_peers_in_one_import_is_refused():
    result = cli("import", str(PEERS / "argo" / "success-rate.yaml"), str(PEERS / "flagger" / "podinfo.yaml"))
    assert result.exit_code == 2
    assert "argo and flagger" in result.stderr


def test_a_document_of_no_known_kind_is_listed_not_dropped_silently():
    text = (PEERS / "argo" / "success-rate.yaml").read_text() + "\n---\napiVersion: v1\nkind: ConfigMap\n"
    result = import_texts([("mixed.yaml", text)])
    notes = [n for n in result.report.of("unexpressed") if "ConfigMap" in n.reason]
    assert notes and notes[0].line is not None and notes[0].file == "mixed.yaml"


def test_every_report_line_is_also_in_the_gate_file_header(tmp_path):
    out, stderr = import_to(tmp_path, "flagger/fail-open.yaml")
    header = [ln[4:] for ln in out.read_text().splitlines() if ln.startswith("#   ")]
    printed = [
        ln for ln in stderr.splitlines() if ln.split(":")[0] in ("warning", "unexpressed", "assumption")
    ]
    assert printed and set(printed) <= set(header)


def test_a_field_of_the_wrong_shape_is_an_error_naming_it_not_a_crash():
    cases = {
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: x}\nspec: hello\n": "spec",
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: x}\nspec:\n  analysis: [1]\n": (
            "spec.analysis"
        ),
        '{"name": "x", "metrics": [{"name": "m", "query": "q"}], "classifier": {}}': "metrics[0].query",
        "spec_version: '1.0'\nobjectives:\n  - sli: a\n    pass: 3\n---\nspec_version: '1.0'\nindicators:\n  a: up\n": (
            "objectives[0].pass"
        ),
    }
    for text, field in cases.items():
        result = cli("import", "-", stdin=text)
        assert result.exit_code == 2, result.stdout
        assert "<stdin>:" in result.stderr and f": {field}: expected a" in result.stderr, result.stderr
