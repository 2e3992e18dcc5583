"""A query deep enough to overflow the native PromQL parser's stack is refused with an error, not a crash.

Found by fuzzing the Argo importer (`bench/fuzz.py`): `promql_parser.parse` recurses on the native stack, so
a long enough operator chain ends the whole process with SIGSEGV. Each case runs in a subprocess so that a
regression shows up as a crashed child, not a crashed test session.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gatekeeper.signals import promql

ROOT = Path(__file__).resolve().parents[1]
DEEP = {
    "binary chain": "a" + "+a" * 20_000,
    "power chain": "a" + "^a" * 20_000,
    "nested calls": "abs(" * 12_000 + "up" + ")" * 12_000,
    "nested brackets": "(" * 12_000 + "up" + ")" * 12_000,
    "set operators": "a" + " or a" * 12_000,
}


def _child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)  # fmt: skip


def test_the_unguarded_parser_crashes_on_a_deep_chain() -> None:
    """The hazard itself (if a later promql-parser stops crashing, the guard is merely cautious)."""
    proc = _child(f"import promql_parser, threading\nq = {DEEP['binary chain']!r}\n"
                  "t = threading.Thread(target=promql_parser.parse, args=(q,)); t.start(); t.join()")  # fmt: skip
    if proc.returncode == 0:
        pytest.skip("this promql-parser build survives the deep chain")
    assert proc.returncode < 0, proc.stderr[-500:]


@pytest.mark.parametrize("name", list(DEEP))
def test_a_deep_query_is_a_value_error_in_every_caller(name: str) -> None:
    code = f"""
        import threading
        from gatekeeper.signals import promql
        from gatekeeper.importers.common import promql_problem
        q = {DEEP[name]!r}
        out = []
        def run():
            try:
                promql.parse(q)
                out.append("parsed")
            except ValueError as e:
                out.append("refused: " + str(e)[:80])
            out.append("importer: " + str(promql_problem(q))[:80])
        t = threading.Thread(target=run); t.start(); t.join()
        print("|".join(out))
    """
    proc = _child(code)
    assert proc.returncode == 0, f"child died with {proc.returncode}: {proc.stderr[-500:]}"
    assert "refused: the query nests about" in proc.stdout
    assert "importer: the query nests about" in proc.stdout


def test_gatekeeper_lint_names_the_signal_of_a_too_deep_query(tmp_path: Path) -> None:
    deep = "sum(rate(http_requests_total[1m]))" + " + 1" * 5_000
    path = tmp_path / "gate.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: deep
        scopes:
          canary: {{service: web, track: canary}}
          baseline: {{service: web, track: baseline}}
        stages: [{{weight: 10, minDuration: 1m}}]
        signals:
          - {{name: errors, kind: ratio, bad: 'http_requests_total{{code=~"5.."}}', total: http_requests_total}}
          - {{name: too-deep, kind: threshold, query: '{deep}', max: 1}}
    """)
    )
    proc = subprocess.run([sys.executable, "-m", "gatekeeper.cli.main", "lint", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode > 0, out[-500:]  # an error, not a signal
    assert "too-deep" in out and "nests about" in out, out[-500:]


@pytest.mark.parametrize(
    ("query", "lowest", "highest"),
    [
        ("up", 0, 0),
        ('http_requests_total{code=~"5..",job="shop"}', 2, 3),  # two matchers
        ('sum(rate(x{a="(((("}[5m]))', 3, 4),  # brackets inside a string do not count
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", 4, 6),
        ("a + b * c - d", 3, 3),
    ],
)
def test_nesting_counts_brackets_and_operators_outside_strings(query: str, lowest: int, highest: int) -> None:
    assert lowest <= promql.nesting(query) <= highest
    promql.parse(query)  # every real-looking query still parses


def test_the_shipped_gates_are_far_below_the_bound() -> None:
    from gatekeeper.signals.lint import check_queries
    from gatekeeper.spec import SpecError, load_gate

    for path in sorted((ROOT / "gates").glob("*.yaml")):
        try:
            gate = load_gate(path)
        except SpecError:  # a gate with a required argument
            gate = load_gate(path, args={"service": "web"})
        assert check_queries(gate) == [], path
