"""Entry point: build the typer app from `gatekeeper.cli.commands.*` and turn known errors into one paragraph."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from gatekeeper import __version__

app = typer.Typer(
    name="gatekeeper",
    help="An observability gate for progressive delivery: is this canary safe to advance?",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gatekeeper {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """gatekeeper evaluates canary vs baseline with anytime-valid statistics and acts on routing."""


def _register_all() -> None:
    from gatekeeper.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def run() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    run()
