"""``gatekeeper route show|set|revert`` against the real API server through a real kubeconfig."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from gatekeeper.cli.commands import route
from gatekeeper.sim.kube import KubeCluster
from tests.test_routing_kube import CANARY, GATE, STABLE, Kube, raw_weights, sample

pytestmark = pytest.mark.k8s


def cli(*args: str) -> Any:
    app = typer.Typer()
    route.register(app)

    @app.callback()
    def _root() -> None:  # keep `route` a sub-command even when it is the only one
        pass

    return CliRunner().invoke(app, ["route", *args])


@pytest.fixture
def ref(kube_admin: Any, kube_namespace: str, kube_cluster: KubeCluster) -> list[str]:
    Kube(kube_admin, "gateway-api", kube_namespace).create(sample("gateway-api"))
    return [
        "httproute/web",
        "-n",
        kube_namespace,
        "--canary",
        CANARY,
        "--stable",
        STABLE,
        "--kubeconfig",
        str(kube_cluster.kubeconfig),
    ]


def test_show_set_revert_round_trip_in_json(ref: list[str], kube_admin: Any, kube_namespace: str) -> None:
    shown = cli("show", *ref, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["canary_weight"] == 0 and json.loads(shown.stdout)["owner"] == GATE
    dry = cli("set", *ref, "--owner", GATE, "--weight", "30", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["dry_run"] and json.loads(dry.stdout)["after"]["canary_weight"] == 30
    kube = Kube(kube_admin, "gateway-api", kube_namespace)
    assert raw_weights("gateway-api", kube.get()) == (0, 100)
    done = cli("set", *ref, "--owner", GATE, "--weight", "30", "--json")
    assert done.exit_code == 0 and json.loads(done.stdout)["written"]
    assert raw_weights("gateway-api", kube.get()) == (30, 70)
    back = cli("revert", *ref, "--owner", GATE)
    assert back.exit_code == 0 and "written" in back.stdout
    assert raw_weights("gateway-api", kube.get()) == (0, 100)


def test_the_table_shows_both_backends(ref: list[str]) -> None:
    out = cli("show", *ref)
    assert out.exit_code == 0 and CANARY in out.stdout and STABLE in out.stdout and GATE in out.stdout


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--owner", "other-gate", "--weight", "10"], "owned by gate"),
        (["--owner", GATE, "--weight", "150"], "out of range"),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(ref: list[str], extra: list[str], needle: str) -> None:
    out = cli("set", *ref, *extra)
    assert out.exit_code == 2 and needle in out.stderr


@pytest.mark.parametrize(("bad_ref", "needle"), [("web", "KIND/NAME"), ("linkerd/web", "unknown")])
def test_a_malformed_resource_reference_exits_2(ref: list[str], bad_ref: str, needle: str) -> None:
    out = cli("show", bad_ref, *ref[1:])
    assert out.exit_code == 2 and needle in out.stderr


def test_an_unreachable_cluster_exits_3(ref: list[str], kube_cluster: KubeCluster, tmp_path: Any) -> None:
    from gatekeeper.sim.kube import _free_port

    cfg = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{_free_port()}"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(cfg))
    out = cli("show", *ref[:-1], str(dead))
    assert out.exit_code == 3 and "cannot reach" in out.stderr


def test_the_nop_router_says_it_moved_no_traffic() -> None:
    out = cli("set", "nop/web", "--canary", "a", "--stable", "b", "--owner", "g", "--weight", "20")
    assert out.exit_code == 0 and "no traffic moved" in out.stdout


def test_a_fractional_weight_is_a_usage_error() -> None:
    out = cli("set", "nop/web", "--canary", "a", "--stable", "b", "--owner", "g", "--weight", "12.5")
    assert out.exit_code == 2


def test_an_ab_match_is_set_shown_and_removed_from_the_command_line(
    ref: list[str], kube_admin: Any, kube_namespace: str
) -> None:
    ab = ["--header", "X-Canary=always", "--cookie", "canary=always"]
    done = cli("set", *ref, "--owner", GATE, *ab, "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["after"]["match"] == {
        "headers": {"x-canary": "always"},
        "cookie": {"name": "canary", "value": "always"},
    }
    rules = Kube(kube_admin, "gateway-api", kube_namespace).get()["spec"]["rules"]
    assert rules[0]["name"] == f"gatekeeper-ab-{GATE}" and rules[0]["backendRefs"][0]["name"] == CANARY
    shown = cli("show", *ref)
    assert shown.exit_code == 0 and "x-canary=always and cookie canary=always" in shown.stdout
    gone = cli("set", *ref, "--owner", GATE, "--no-match", "--json")
    assert gone.exit_code == 0 and json.loads(gone.stdout)["after"]["match"] is None
    assert len(Kube(kube_admin, "gateway-api", kube_namespace).get()["spec"]["rules"]) == 1


def test_a_shadow_stage_then_a_capped_weight_from_the_command_line(
    ref: list[str], kube_admin: Any, kube_namespace: str
) -> None:
    shadow = cli("set", *ref, "--owner", GATE, "--weight", "0", "--mirror", "10", "--json")
    assert shadow.exit_code == 0, shadow.output
    lines = [json.loads(line) for line in shadow.stdout.splitlines()]
    assert [c["action"] for c in lines] == ["set", "mirror"] and lines[1]["after"]["mirror_percent"] == 10
    capped = cli("set", *ref, "--owner", GATE, "--mirror", "0", "--weight", "60", "--max-weight", "50")
    assert capped.exit_code == 2 and "maxWeight 50" in capped.stderr
    live = cli(
        "set", *ref, "--owner", GATE, "--mirror", "0", "--weight", "20", "--max-weight", "50", "--json"
    )
    assert live.exit_code == 0, live.output
    assert [json.loads(line)["action"] for line in live.stdout.splitlines()] == ["mirror", "set"]
    assert raw_weights("gateway-api", Kube(kube_admin, "gateway-api", kube_namespace).get()) == (20, 80)
    # weight first, then the match, then the mirror: each step is allowed
    again = cli("set", *ref, "--owner", GATE, "--weight", "0", "--mirror", "5", "--header", "x=1")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "nothing to set"),
        (["--header", "x-canary"], "--header"),
        (["--header", "x=1", "--no-match"], "--no-match"),
        (["--host", "web", "--weight", "1"], "istio only"),
    ],
)
def test_bad_match_and_mirror_options_exit_2(ref: list[str], args: list[str], needle: str) -> None:
    out = cli("set", *ref, "--owner", GATE, *args)
    assert out.exit_code == 2 and needle in out.stderr, out.output


def test_a_kind_without_the_capability_says_which_kinds_have_it(ref: list[str]) -> None:
    ts = ["ts/web", *ref[1:], "--owner", GATE]
    assert "cannot route by header" in cli("set", *ts, "--header", "x=1").stderr
    out = cli("set", *ts, "--mirror", "10")
    assert out.exit_code == 2 and "gateway-api or istio" in out.stderr
