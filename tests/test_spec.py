"""The gate language: loading, arguments, every error with its line, field and fix; the JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper.spec import SpecError, load_gate, load_gate_text, parse_args, parse_duration

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
name: g
scopes:
  canary: {track: canary}
  baseline: {track: baseline}
signals:
  - name: errors
    kind: ratio
    bad: x_total{code="500"}
    total: x_total
"""


def test_example_gate_loads_with_its_argument_filled():
    gate = load_gate(ROOT / "gates" / "http-canary.yaml", args={"service": "checkout"})
    assert gate.scopes.canary == {"service": "checkout", "track": "canary"}
    assert [s.weight for s in gate.stages] == [1, 5, 25, 50]
    assert gate.signal("error-rate").critical is True
    assert gate.stages[0].min_duration == 120.0


def test_missing_argument_value_names_the_flag_to_pass():
    with pytest.raises(SpecError) as e:
        load_gate(ROOT / "gates" / "http-canary.yaml")
    assert "--arg service=VALUE" in str(e.value)


def test_unknown_variable_is_an_error_not_left_in_the_query():
    text = MINIMAL.replace('x_total{code="500"}', 'x_total{code="500",svc="${sevice}"}')
    with pytest.raises(SpecError) as e:
        load_gate_text(text, source="g.yaml")
    issue = e.value.issues[0]
    assert "sevice" in issue.message and issue.line == 9 and issue.field == "signals[0].bad"


def test_reserved_variables_are_left_for_rendering():
    text = MINIMAL + "  - {name: t, kind: threshold, query: 'sum(rate(y{${selector}}[${window}]))', max: 1}\n"
    gate = load_gate_text(text)
    assert "${selector}" in gate.signal("t").query


def test_every_error_is_reported_with_line_field_and_fix():
    text = (
        MINIMAL
        + """    tolerence: 0.1
  - name: lat
    kind: latency
    histogram: h
stages:
  - weight: 50
  - weight: 5
"""
    )
    with pytest.raises(SpecError) as e:
        load_gate_text(text, source="g.yaml")
    issues = {i.field: i for i in e.value.issues}
    assert issues["signals[0].tolerence"].line == 11
    assert "tolerance" in issues["signals[0].tolerence"].fix  # did you mean
    assert "quantile" in issues["signals[1]"].message and issues["signals[1]"].line == 12
    assert all(i.fix for i in e.value.issues)


def test_unknown_signal_kind_lists_the_kinds():
    with pytest.raises(SpecError) as e:
        load_gate_text(MINIMAL.replace("kind: ratio", "kind: ratioo"))
    assert "latency" in e.value.issues[0].fix and e.value.issues[0].line == 7


def test_decreasing_stage_weights_are_rejected():
    with pytest.raises(SpecError, match="must not decrease"):
        load_gate_text(MINIMAL + "stages:\n  - weight: 50\n  - weight: 5\n")


def test_identical_scopes_are_rejected():
    with pytest.raises(SpecError, match="identical"):
        load_gate_text(MINIMAL.replace("{track: baseline}", "{track: canary}"))


def test_gate_custom_resource_form_is_accepted():
    body = "\n".join("  " + line for line in MINIMAL.strip().splitlines() if not line.startswith("name:"))
    text = f"apiVersion: gatekeeper.dev/v1alpha1\nkind: Gate\nmetadata:\n  name: from-cr\nspec:\n{body}\n"
    assert load_gate_text(text).name == "from-cr"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), (12, 12)]
)
def test_durations_parse_like_prometheus(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "m5", "", "-3s", True])
def test_bad_durations_say_how_to_write_one(text):
    with pytest.raises(ValueError, match=r"30s|negative"):
        parse_duration(text)


def test_bad_arg_syntax_is_reported():
    with pytest.raises(SpecError, match="key=value"):
        parse_args(["service"])


def test_schema_command_prints_the_json_schema_with_camel_case_fields():
    proc = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli.main", "schema"], capture_output=True, text=True, check=True
    )
    schema = json.loads(proc.stdout)
    assert "scopes" in schema["properties"] and "minDuration" in json.dumps(schema)


def test_lint_reports_a_promql_syntax_error_with_the_signal(tmp_path):
    bad = tmp_path / "g.yaml"
    bad.write_text(
        MINIMAL + "  - {name: t, kind: threshold, query: 'sum(rate(y{${selector}}[5m])', max: 1}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli.main", "lint", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "signals[1] (t)" in proc.stderr and "does not parse" in proc.stderr


def test_a_gate_file_that_is_not_utf8_is_an_error_naming_the_line(tmp_path):
    bad = tmp_path / "g.yaml"  # found by the fuzzer (tests/fuzz, target spec): a UnicodeDecodeError traceback
    bad.write_bytes(MINIMAL.encode() + b"  - {name: t, kind: threshold, query: 'caf\xe9', max: 1}\n")
    with pytest.raises(SpecError) as e:
        load_gate(bad)
    (issue,) = e.value.issues
    assert issue.line == 11 and "not UTF-8" in issue.message and "UTF-8" in issue.fix
    proc = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli.main", "lint", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "g.yaml:11" in proc.stderr and "Traceback" not in proc.stderr


def test_lint_accepts_the_example_gates():
    gates = sorted(str(p) for p in (ROOT / "gates").glob("*.yaml"))
    proc = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli.main", "lint", *gates], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_libyaml_and_pure_python_parsers_read_every_shipped_gate_and_spec_seed_alike():
    """The loader parses with libyaml when PyYAML has it (30x faster); PyYAML's own parser is the reference: the
    same data and the same line for every key, on every shipped gate and every spec seed of the fuzz corpus."""
    import yaml

    from gatekeeper.spec.load import compose_documents, line_map

    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("this PyYAML was built without libyaml")
    files = sorted((ROOT / "gates").glob("*.yaml")) + sorted((ROOT / "tests/fuzz/corpus/spec").iterdir())
    compared = 0
    for f in files:
        text = f.read_bytes().decode("utf-8", errors="replace")
        try:
            ref = compose_documents(text, loader=yaml.SafeLoader)
        except yaml.YAMLError:
            continue
        fast = compose_documents(text, loader=yaml.CSafeLoader)
        assert [d for _, d in fast] == [d for _, d in ref], f.name
        assert [line_map(n) for n, _ in fast] == [line_map(n) for n, _ in ref], f.name
        compared += 1
    assert compared >= len(list((ROOT / "gates").glob("*.yaml")))
