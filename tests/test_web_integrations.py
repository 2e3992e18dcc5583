"""Argo Rollouts and Flagger calling gatekeeper: the example manifests in gates/integrations/ are read and their
requests made exactly as those controllers make them, against the real app over real HTTP and a real
Prometheus holding canaries of known truth.

How each controller turns an answer into a decision, from its source (argoproj/argo-rollouts
metricproviders/webmetric/webmetric.go and utils/evaluate/evaluate.go; fluxcd/flagger pkg/controller/webhook.go):
* Argo: non-2xx -> measurement Error; JSON body -> `jsonPath` (default `{$}`) -> `result`; success and failure
  conditions both set: failure true -> Failed, success true -> Successful, neither -> Inconclusive.
* Flagger: POST {name, namespace, phase, checksum, metadata} as application/json; status > 202 (or a timeout)
  is an error: hold (confirm hooks) or no rollback (rollback hook); 200-202 proceeds / rolls back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from gatekeeper.ops.repository import load_gates_dir
from gatekeeper.sim.remote_write import RemoteWriteClient
from gatekeeper.sim.scenario import ArmProfile, canary_scenario
from gatekeeper.web.app import BackgroundServer, create_app
from tests.fixtures.prometheus import current_step_ms

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = yaml.safe_load((ROOT / "gates" / "integrations" / "argo-analysis-template.yaml").read_text())
CANARY = yaml.safe_load((ROOT / "gates" / "integrations" / "flagger-canary.yaml").read_text())
TOKEN = "integration-test-token-0123"
SECRETS = {("gatekeeper-token", "token"): TOKEN}  # the Kubernetes Secrets an AnalysisTemplate arg may read
BUSY = {"requests_per_second": 100.0}


# --- what Argo Rollouts does with a web metric -------------------------------------------------------------


def argo_measure(metric: dict[str, Any], *, args: dict[str, str], base_url: str) -> tuple[str, Any]:
    """(phase, result) of one measurement, following webmetric.go's Run/parseResponse and EvaluateResult."""
    web = metric["provider"]["web"]
    defaults = {a["name"]: _arg_value(a) for a in TEMPLATE["spec"]["args"]}
    values = {**defaults, **args}
    missing = [a for a, v in values.items() if v is None]
    assert not missing, f"the template needs args {missing}"

    def render(text: str) -> str:
        return re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", lambda m: str(values[m.group(1)]), text)

    url = urlsplit(render(web["url"]))
    method = web.get("method", "GET")
    body = web.get("body") or (json.dumps(web["jsonBody"]) if "jsonBody" in web else None)
    if body and method == "GET":
        return "Error", "Body/JSONBody can only be used with POST or PUT"
    headers = {h["key"]: render(h["value"]) for h in web.get("headers", [])}
    if "jsonBody" in web:
        headers["Content-Type"] = "application/json"
    target = f"{base_url}{url.path}" + (f"?{url.query}" if url.query else "")
    response = httpx.request(
        method, target, content=body, headers=headers, timeout=web.get("timeoutSeconds", 10)
    )
    if not 200 <= response.status_code < 300:
        return "Error", f"received non 2xx response code: {response.status_code}"
    try:
        data = response.json()
    except ValueError:
        return "Successful", response.text  # non-JSON bodies are returned as a string, Successful
    result = json_path(data, web.get("jsonPath") or "{$}")
    success = condition(metric.get("successCondition", ""), result)
    failure = condition(metric.get("failureCondition", ""), result)
    if not metric.get("successCondition") and not metric.get("failureCondition"):
        return "Successful", result
    if metric.get("successCondition") and not metric.get("failureCondition"):
        failure = not success
    if metric.get("failureCondition") and not metric.get("successCondition"):
        success = not failure
    if failure:
        return "Failed", result
    return ("Successful" if success else "Inconclusive"), result


def _arg_value(arg: dict[str, Any]) -> str | None:
    """An argument's value, or the Secret key its `valueFrom.secretKeyRef` names (Argo reads it at run time)."""
    ref = (arg.get("valueFrom") or {}).get("secretKeyRef")
    if ref:
        return SECRETS[(ref["name"], ref["key"])]
    return arg.get("value")


def json_path(data: Any, path: str) -> Any:
    """The subset of k8s jsonpath the manifests use: `{$}` and `{$.a.b}`."""
    m = re.fullmatch(r"\{\$((?:\.[\w-]+)*)\}", path)
    assert m, f"jsonPath {path!r} is outside what this test understands: extend json_path"
    for key in filter(None, m.group(1).split(".")):
        data = data[key]
    return data


def condition(expr: str, result: Any) -> bool:
    """The subset of expr-lang the manifests use: `result.a.b == "x"` joined by && or ||."""
    if not expr:
        return False
    if "||" in expr:
        return any(condition(part, result) for part in expr.split("||"))
    if "&&" in expr:
        return all(condition(part, result) for part in expr.split("&&"))
    m = re.fullmatch(r'\s*result((?:\.\w+)*)\s*==\s*"([^"]*)"\s*', expr)
    assert m, f"condition {expr!r} is outside what this test understands: extend condition()"
    value = result
    for key in filter(None, m.group(1).split(".")):
        value = value.get(key) if isinstance(value, dict) else None
    return value == m.group(2)


# --- what Flagger does with a webhook ----------------------------------------------------------------------


def flagger_call(
    hook_type: str, *, base_url: str, service: str, phase: str = "Progressing", token: str = TOKEN
) -> httpx.Response:
    hook = next(h for h in CANARY["spec"]["analysis"]["webhooks"] if h["type"] == hook_type)
    meta = {**hook.get("metadata", {}), "service": service}
    assert meta.get("token") == "REPLACE-WITH-GATEKEEPER-TOKEN", (
        "the example Canary must show where the token goes"
    )
    payload = {
        "name": CANARY["metadata"]["name"],
        "namespace": CANARY["metadata"]["namespace"],
        "phase": phase,
        "checksum": "7b5f4c9d8e",
        "metadata": {**meta, "token": token},
    }
    url = urlsplit(hook["url"])
    timeout = float(hook.get("timeout", "10s").rstrip("s"))
    return httpx.post(
        f"{base_url}{url.path}",
        content=json.dumps(payload),
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )


def proceeds(response: httpx.Response) -> bool:
    return response.status_code <= 202  # Flagger: `if r.StatusCode > 202` is a failed call


# --- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def canaries(prometheus) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Three canaries of known truth in the session Prometheus; returns name -> service label."""
    end = current_step_ms()
    specs = {
        "healthy": {"canary": ArmProfile(**BUSY), "baseline": ArmProfile(**BUSY), "seed": 11},
        "broken": {
            "canary": ArmProfile(**BUSY, error_ratio=0.05),
            "baseline": ArmProfile(**BUSY),
            "seed": 12,
        },
        "dark": {"canary_absent": True, "baseline": ArmProfile(**BUSY), "seed": 13},
    }
    client = RemoteWriteClient(prometheus.remote_write_url)
    out = {}
    for name, options in specs.items():
        scenario = canary_scenario(service=f"integrations-{name}", end_ms=end, **options)
        client.write(scenario.series)
        out[name] = scenario.service
    return out


@pytest.fixture(scope="module")
def server(prometheus, canaries):  # type: ignore[no-untyped-def]
    repo = load_gates_dir(ROOT / "gates")
    with BackgroundServer(create_app(repository=repo, prometheus=prometheus.url, token=TOKEN)) as s:
        yield s.url, repo


# --- Argo Rollouts -----------------------------------------------------------------------------------------


def test_argo_analysis_succeeds_for_a_healthy_canary(server, canaries) -> None:
    url, _ = server
    phase, result = argo_measure(
        TEMPLATE["spec"]["metrics"][0], args={"service": canaries["healthy"], "window": "30m"}, base_url=url
    )
    assert (phase, result["verdict"]) == ("Successful", "pass"), result["reason"]
    assert result["gate"] == "default/http-canary" and result["stage"] == 1


def test_argo_analysis_fails_for_a_canary_with_five_times_the_errors(server, canaries) -> None:
    url, _ = server
    phase, result = argo_measure(
        TEMPLATE["spec"]["metrics"][0], args={"service": canaries["broken"]}, base_url=url
    )
    assert phase == "Failed" and result["verdict"] == "fail"
    assert result["signals"]["error-rate"] == "fail" and result["critical_failure"] is True


def test_argo_analysis_is_inconclusive_not_successful_when_the_canary_has_no_data(server, canaries) -> None:
    url, _ = server
    phase, result = argo_measure(
        TEMPLATE["spec"]["metrics"][0], args={"service": canaries["dark"]}, base_url=url
    )
    assert phase == "Inconclusive" and result["verdict"] == "nodata"


def test_argo_analysis_is_inconclusive_not_an_error_when_prometheus_is_down(dead_prometheus_url) -> None:
    repo = load_gates_dir(ROOT / "gates")
    with BackgroundServer(create_app(repository=repo, prometheus=dead_prometheus_url)) as s:
        phase, result = argo_measure(TEMPLATE["spec"]["metrics"][0], args={"service": "any"}, base_url=s.url)
    # an Error would count toward consecutiveErrorLimit and abort the rollout because of an outage
    assert phase == "Inconclusive" and result["verdict"] == "error"


def test_argo_template_errors_are_measurement_errors_with_the_reason(server, canaries) -> None:
    url, _ = server
    metric = TEMPLATE["spec"]["metrics"][0]
    phase, why = argo_measure(
        metric, args={"service": canaries["healthy"], "gate": "no-such-gate"}, base_url=url
    )
    assert phase == "Error" and "404" in why
    phase, why = argo_measure(metric, args={"service": canaries["healthy"], "stage": "9"}, base_url=url)
    assert phase == "Error" and "400" in why


def test_argo_post_with_a_json_body_gives_the_same_answer_as_get(server, canaries) -> None:
    url, _ = server
    metric = json.loads(json.dumps(TEMPLATE["spec"]["metrics"][0]))
    web = metric["provider"]["web"]
    web["method"] = "POST"
    web["url"] = web["url"].split("?")[0]
    web["jsonBody"] = {"args": {"service": canaries["broken"]}, "window": "5m", "stage": 1}
    phase, result = argo_measure(metric, args={"service": "unused"}, base_url=url)
    assert phase == "Failed" and result["verdict"] == "fail"


# --- Flagger -----------------------------------------------------------------------------------------------


def test_flagger_hooks_for_a_healthy_canary_confirm_and_do_not_roll_back(server, canaries) -> None:
    url, _ = server
    service = canaries["healthy"]
    assert proceeds(flagger_call("confirm-rollout", base_url=url, service=service))
    promotion = flagger_call("confirm-promotion", base_url=url, service=service)
    assert proceeds(promotion), promotion.json()
    assert promotion.json()["stage"] == 4  # judged by the last stage's minimums
    rollback = flagger_call("rollback", base_url=url, service=service)
    assert not proceeds(rollback) and rollback.status_code == 403 and rollback.json()["verdict"] == "pass"


def test_flagger_rolls_back_a_failing_canary_and_never_promotes_it(server, canaries) -> None:
    url, _ = server
    service = canaries["broken"]
    assert proceeds(flagger_call("rollback", base_url=url, service=service))
    promotion = flagger_call("confirm-promotion", base_url=url, service=service)
    assert not proceeds(promotion) and promotion.json()["verdict"] == "fail"


def test_flagger_holds_without_rolling_back_when_evidence_is_missing(
    server, canaries, dead_prometheus_url
) -> None:
    url, _ = server
    for hook in ("confirm-promotion", "rollback"):
        answer = flagger_call(hook, base_url=url, service=canaries["dark"])
        assert not proceeds(answer) and answer.json()["verdict"] == "nodata"
    repo = load_gates_dir(ROOT / "gates")
    with BackgroundServer(create_app(repository=repo, prometheus=dead_prometheus_url)) as s:
        for hook in ("confirm-promotion", "rollback"):
            answer = flagger_call(hook, base_url=s.url, service="any")
            assert not proceeds(answer) and answer.json()["verdict"] == "error"


def test_an_operator_abort_on_the_dashboard_makes_flagger_roll_back_and_stop(server, canaries) -> None:
    url, repo = server
    done = httpx.post(
        f"{url}/gates/default/http-canary/abort", data={"by": "erin", "reason": "pager", "token": TOKEN}
    )
    assert done.status_code == 303
    try:
        service = canaries["healthy"]
        rollback = flagger_call("rollback", base_url=url, service=service)
        assert proceeds(rollback) and "operator abort" in rollback.json()["reason"]
        assert not proceeds(flagger_call("confirm-rollout", base_url=url, service=service))
        assert not proceeds(flagger_call("confirm-promotion", base_url=url, service=service))
    finally:  # leave the module's repository as other tests expect it
        fresh = load_gates_dir(ROOT / "gates").get_gate(namespace="default", name="http-canary")
        repo.put(fresh)


def test_flagger_bad_requests_are_refused_with_the_field_named(server) -> None:
    url, _ = server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    no_name = httpx.post(f"{url}/integrations/flagger/rollback", json={"namespace": "default"}, headers=auth)
    assert no_name.status_code == 400 and "name" in no_name.json()["error"]
    unknown = httpx.post(
        f"{url}/integrations/flagger/pre-rollout", json={"name": "a", "namespace": "b"}, headers=auth
    )
    assert unknown.status_code == 404 and "confirm-rollout" in unknown.json()["error"]
    missing_arg = httpx.post(
        f"{url}/integrations/flagger/confirm-promotion",
        json={"name": "x", "namespace": "default", "metadata": {"gate": "http-canary"}},
        headers=auth,
    )
    assert missing_arg.status_code == 400 and "service" in missing_arg.json()["error"]


# --- authentication ----------------------------------------------------------------------------------------


def test_argo_measurements_without_the_secret_token_are_errors_not_verdicts(server, canaries) -> None:
    url, _ = server
    metric = TEMPLATE["spec"]["metrics"][0]
    args = {"service": canaries["healthy"], "window": "30m"}
    assert argo_measure(metric, args=args, base_url=url)[0] == "Successful"
    wrong = argo_measure(metric, args={**args, "token": "not-the-token-000000"}, base_url=url)
    assert wrong == ("Error", "received non 2xx response code: 403")
    no_headers = {
        **metric,
        "provider": {"web": {k: v for k, v in metric["provider"]["web"].items() if k != "headers"}},
    }
    assert argo_measure(no_headers, args=args, base_url=url) == (
        "Error",
        "received non 2xx response code: 401",
    )


def test_flagger_hooks_carry_the_token_in_metadata_or_a_header(server, canaries) -> None:
    url, _ = server
    service = canaries["healthy"]
    assert proceeds(flagger_call("confirm-rollout", base_url=url, service=service))
    wrong = flagger_call("confirm-rollout", base_url=url, service=service, token="not-the-token-000000")
    assert wrong.status_code == 403 and "not valid" in wrong.json()["error"]
    bare = httpx.post(
        f"{url}/integrations/flagger/confirm-rollout", json={"name": "checkout", "namespace": "default"}
    )
    assert bare.status_code == 401 and bare.headers["www-authenticate"].startswith("Bearer")
    header = httpx.post(
        f"{url}/integrations/flagger/confirm-rollout",
        json={
            "name": "checkout",
            "namespace": "default",
            "metadata": {"gate": "http-canary", "service": service},
        },
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert proceeds(header), header.text
