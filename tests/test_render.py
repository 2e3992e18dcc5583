"""Query rendering: canary and baseline queries differ only in scope; unknown variables are errors."""

from __future__ import annotations

import promql_parser
import pytest

from gatekeeper.signals.render import RenderError, fill, increase, matchers, scoped


def test_scope_matchers_support_prometheus_operators_and_escape_quotes():
    got = matchers({"track": "canary", "service": "=~check.*", "zone": "!=eu", "v": 'a"b'})
    assert got == 'track="canary",service=~"check.*",zone!="eu",v="a\\"b"'


def test_scope_is_added_to_a_selector_with_or_without_matchers():
    assert scoped("x_total", {"t": "c"}) == 'x_total{t="c"}'
    assert scoped('x_total{code=~"5.."}', {"t": "c"}) == 'x_total{code=~"5..",t="c"}'
    assert scoped('h{a="1"}', {"t": "c"}, suffix="_bucket") == 'h_bucket{a="1",t="c"}'


def test_canary_and_baseline_queries_differ_only_in_scope():
    c = increase('x_total{code="500"}', {"track": "canary"}, 60)
    b = increase('x_total{code="500"}', {"track": "baseline"}, 60)
    assert c.replace("canary", "baseline") == b
    promql_parser.parse(c)


def test_arbitrary_promql_in_a_ratio_selector_is_refused_with_the_fix():
    with pytest.raises(RenderError, match=r"\$\{selector\}"):
        scoped("sum(rate(x[5m]))", {"t": "c"})


def test_threshold_template_fills_reserved_variables_and_rejects_unknown_ones():
    q = fill("sum(rate(x{${selector}}[${window}]))", scope={"t": "c"}, arm="canary", window=300, step=60)
    assert q == 'sum(rate(x{t="c"}[5m]))'
    with pytest.raises(RenderError, match="unknown variable"):
        fill("x{${nope}}", scope={"t": "c"}, arm="canary", window=60, step=60)
