"""`gatekeeper import`: an Argo Rollouts, Flagger, Kayenta or Keptn configuration -> a gate spec.

Exit codes: 0 written; 2 unparsable input, an error, or an unresolved reference (unless --allow-partial), or a
result that `gatekeeper lint` would reject. The import report goes to stderr, one line per item, and into the
gate file as a comment header.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from gatekeeper.cli.render import err, fail


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)


def import_command(
    files: list[str] = typer.Argument(
        ..., help="Peer configuration files ('-' for stdin); parts that live apart may be given together."
    ),
    output: str = typer.Option(None, "--output", "-o", help="Write the gate here (default: stdout)."),
    allow_partial: bool = typer.Option(
        False, "--allow-partial", help="Write the gate even when references do not resolve (they are listed)."
    ),
    arg: list[str] = typer.Option(
        [],
        "--arg",
        "-a",
        help="Value for a source argument or template variable: --arg service-name=checkout.",
    ),
    name: str = typer.Option(None, "--name", help="Name of the gate (default: from the source)."),
) -> None:
    """Convert an Argo Rollouts, Flagger, Kayenta or Keptn configuration into a gate spec.

    Inputs: AnalysisTemplates (+ Rollout), a Flagger Canary (+ MetricTemplates), a Kayenta canary config, a
    Keptn slo.yaml + sli.yaml or AnalysisDefinition (+ templates). The report lists every field not carried
    over with its file and line. Exit 0 written, 2 bad input or unresolved references.
    """
    from gatekeeper.importers import ImportInputError, import_texts, verify_gate
    from gatekeeper.spec import SpecError, parse_args

    try:
        given = parse_args(arg)
    except SpecError as e:
        fail(str(e))
    inputs = [_read(f) for f in files]
    try:
        result = import_texts(inputs, args=given, name=name)
    except ImportInputError as e:
        fail(str(e))
    for line in result.report.lines():
        err.print(line, highlight=False, soft_wrap=True, markup=False)
    blocking = result.report.of("error") + (() if allow_partial else result.report.of("unresolved"))
    if blocking:
        hint = "" if result.report.of("error") else " (or pass --allow-partial to write it without them)"
        fail(f"{len(blocking)} problem(s) block the import; fix them{hint}")
    problems = verify_gate(result.text)
    if problems:
        fail("the imported gate does not pass `gatekeeper lint`:\n" + "\n".join(problems))
    if output:
        Path(output).write_text(result.text)
        err.print(f"wrote {output} ({result.family}: {len(result.gate['signals'])} signals)", highlight=False)
    else:
        sys.stdout.write(result.text)
    raise typer.Exit(0)


def _read(path: str) -> tuple[str, str]:
    if path == "-":
        return "<stdin>", sys.stdin.read()
    try:
        return path, Path(path).read_text()
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
        raise  # unreachable: fail exits
    except UnicodeDecodeError as e:
        line = Path(path).read_bytes()[: e.start].count(b"\n") + 1
        fail(f"{path}:{line}: not UTF-8 text; save the file as UTF-8")
        raise  # unreachable: fail exits
