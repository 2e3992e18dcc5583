"""Flagger's builtin checks as its observers render them per mesh provider (`pkg/metrics/observers`: istio,
kubernetes, linkerd), each with gatekeeper's comparative companion signal."""

from __future__ import annotations

from typing import Any

from gatekeeper.importers.common import Doc, number

PROVIDERS: dict[str, dict[str, Any]] = {
    "istio": {
        "canary": lambda ns, t: {"destination_workload_namespace": ns, "destination_workload": t},
        "baseline": lambda ns, t: {
            "destination_workload_namespace": ns,
            "destination_workload": f"{t}-primary",
        },
        "success": 'sum(rate(istio_requests_total{{reporter="destination",response_code!~"5.*",${{selector}}}}[{i}]))'
        ' / sum(rate(istio_requests_total{{reporter="destination",${{selector}}}}[{i}])) * 100',
        "duration": "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket"
        '{{reporter="destination",${{selector}}}}[{i}])) by (le))',
        "bad": 'istio_requests_total{reporter="destination",response_code=~"5.*"}',
        "total": 'istio_requests_total{reporter="destination"}',
        "histogram": 'istio_request_duration_milliseconds{reporter="destination"}',
    },
    "kubernetes": {
        "canary": lambda ns, t: {
            "kubernetes_namespace": ns,
            "kubernetes_pod_name": f"=~{t}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",
        },
        "baseline": lambda ns, t: {
            "kubernetes_namespace": ns,
            "kubernetes_pod_name": f"=~{t}-primary-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",
        },
        "success": 'sum(rate(http_request_duration_seconds_count{{status!~"5.*",${{selector}}}}[{i}]))'
        " / sum(rate(http_request_duration_seconds_count{{${{selector}}}}[{i}])) * 100",
        "duration": "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{{${{selector}}}}[{i}]))"
        " by (le)) * 1000",
        "bad": 'http_request_duration_seconds_count{status=~"5.*"}',
        "total": "http_request_duration_seconds_count",
        "histogram": "http_request_duration_seconds",
    },
    "linkerd": {
        "canary": lambda ns, t: {"namespace": ns, "deployment": t},
        "baseline": lambda ns, t: {"namespace": ns, "deployment": f"{t}-primary"},
        "success": 'sum(rate(response_total{{classification!="failure",direction="inbound",${{selector}}}}[{i}]))'
        ' / sum(rate(response_total{{direction="inbound",${{selector}}}}[{i}])) * 100',
        "duration": 'histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{{direction="inbound",'
        "${{selector}}}}[{i}])) by (le))",
        "bad": 'response_total{classification="failure",direction="inbound"}',
        "total": 'response_total{direction="inbound"}',
        "histogram": 'response_latency_ms{direction="inbound"}',
    },
}


DEFAULT_PROVIDER = "istio"  # Flagger's -mesh-provider default and the observer factory's fallback


def builtin(
    c: Doc, path: tuple, m: dict, name: str, *, obs, provider, lo, hi, window, base, report
) -> list[dict]:
    if obs is None:
        report.unresolved(
            c,
            path,
            f"builtin '{name}' for provider '{provider}': gatekeeper renders it for "
            f"{', '.join(PROVIDERS)}; write it as a MetricTemplate",
        )
        return []
    legacy = number(m.get("threshold"))
    if name == "request-success-rate":
        if lo is None and hi is None:
            lo = legacy if legacy is not None else 99.0
        query = obs["success"].format(i=window)
        companion = {
            "name": "request-error-ratio",
            "kind": "ratio",
            "bad": obs["bad"],
            "total": obs["total"],
            "tolerance": 0.2,
            "description": "5xx share, canary vs primary (gatekeeper's comparative check)",
        }
        unit = "percent of non-5xx responses"
    else:
        if lo is None and hi is None:
            hi = legacy if legacy is not None else 500.0
        query = obs["duration"].format(i=window)
        companion = {
            "name": "request-duration-p99",
            "kind": "latency",
            "histogram": obs["histogram"],
            "quantile": 0.99,
            "tolerance": 0.5,
            "description": "p99 latency, canary vs primary (gatekeeper's comparative check)",
        }
        unit = "p99 in milliseconds"
    b = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
    report.assume(
        c,
        path,
        f"builtin '{name}' ({unit}) rendered as Flagger's {provider} observer does, plus the "
        f"comparative signal '{companion['name']}'",
    )
    return [{**base, "description": f"Flagger builtin {name} ({unit})", "query": query, **b}, companion]
