"""`gatekeeper report GATE`: the HTML evidence report of a recorded decision, from its record alone.

    gatekeeper report web -n shop                  # the newest decision -> ./shop-web-decision-7.html
    gatekeeper report web -n shop --list           # every decision kept: number, time, action, stage, verdict
    gatekeeper report web -n shop --decision 3 --out /tmp/r.html
    gatekeeper report web -n shop --decision 3 -o json

The controller records every look that acts (advance, promote, revert, halt, approval wait, abort, a hold for a
human) beside the Gate; the report draws the numbers that look saw, so it never queries Prometheus and reads
the same tomorrow as today. Exit codes: 0 written (or listed), 2 no such gate or decision, 1 refused (RBAC:
reading the records needs `get` on ConfigMaps, which the chart's viewer and operator roles grant), 3 the API
server could not be reached.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from gatekeeper.cli.render import err, fail, out

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    gate: Annotated[str, typer.Argument(help="Name of the Gate resource.")],
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", "-n", help="Namespace (default: the kubeconfig context's, else 'default')."
        ),
    ] = None,
    decision: Annotated[
        int | None,
        typer.Option("--decision", "-d", help="Decision number (see --list; default: the newest)."),
    ] = None,
    listing: Annotated[bool, typer.Option("--list", "-l", help="List the recorded decisions.")] = False,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the HTML (default: ./NS-GATE-decision-N.html)."),
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="html (a file) or json (the record).")
    ] = "html",
    kubeconfig: Annotated[str | None, typer.Option("--kubeconfig", help="Kubeconfig path.")] = None,
    context: Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")] = None,
) -> None:
    """Write the evidence report of a recorded decision (no query to Prometheus: the look's own numbers)."""
    from gatekeeper.cli.commands.gates import _connect
    from gatekeeper.controller.decision_store import DecisionStore
    from gatekeeper.ops import decisions as ops
    from gatekeeper.ops.errors import EXIT_CODES, OperatorError

    if output not in ("html", "json"):
        fail(f"--output must be 'html' or 'json', not '{output}'")
    api, ns = _connect(kubeconfig, context, namespace)
    uid = _gate_uid(api, ns, gate)
    store = DecisionStore(api)
    try:
        if listing:
            _list(ops.list_decisions(store, namespace=ns, name=gate, uid=uid), ns=ns, gate=gate)
            return
        found = ops.read_decision(store, namespace=ns, name=gate, seq=decision, uid=uid)
    except OperatorError as e:
        fail(str(e), code=next(c for kind, c in EXIT_CODES.items() if isinstance(e, kind)))
    if output == "json":
        typer.echo(ops.dumps(found))
        return
    from gatekeeper.web.decision_report import write_decision_report

    target = out_file or Path(f"{ns}-{gate}-decision-{found.seq}.html")
    write_decision_report(target, found)
    err.print(f"{ops.describe(found)}", highlight=False)
    out.print(str(target), highlight=False, soft_wrap=True)


def _gate_uid(api: object, ns: str, gate: str) -> str:
    """The Gate's UID (records of an earlier Gate of the same name are not its own); exits when it is missing."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from gatekeeper.spec.crd import GROUP, PLURAL, VERSION

    try:
        obj: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, gate, _request_timeout=10
        )
    except ApiException as e:
        if e.status == 404:
            fail(f"Gate {ns}/{gate} not found; list gates with: gatekeeper get gates -n {ns}", code=2)
        fail(f"reading Gate {ns}/{gate}: {e.status} {e.reason}", code=1 if e.status == 403 else 3)
    except Exception as e:  # urllib3 / socket errors
        fail(f"cannot reach the API server: {e}", code=3)
    return str(obj["metadata"].get("uid") or "")


def _list(entries: list[Any], *, ns: str, gate: str) -> None:
    from rich.table import Table

    from gatekeeper.cli.humanize import when
    from gatekeeper.cli.render import verdict_text

    if not entries:
        out.print(f"Gate {ns}/{gate} has no recorded decision yet.", highlight=False)
        return
    now = time.time()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("#", "TIME", "ACTION", "STAGE", "WEIGHT", "VERDICT", "PHASE AFTER"):
        table.add_column(col, no_wrap=True)
    for s in entries:
        action = "hold for a human" if s.human_hold else s.action
        table.add_row(str(s.seq), when(s.time, now=now), action, str(s.stage + 1), f"{s.weight:g}%",
                      verdict_text(s.verdict) if s.verdict else "-", s.phase)  # fmt: skip
    out.print(table, highlight=False)
    out.print(f"[dim]gatekeeper report {gate} -n {ns} --decision N writes one as HTML[/]", highlight=False)
