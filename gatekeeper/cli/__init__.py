"""cli: the `gatekeeper` command. A thin typer/rich shell over `gatekeeper.ops`.

Every module in `gatekeeper.cli.commands` registers its own commands. Exit codes: 0 pass, 1 fail, 2 bad input
or usage, 3 not decided (inconclusive, nodata, error).

Must not: hold decision logic; it parses, calls an operation, renders.
"""

__all__: list[str] = []
