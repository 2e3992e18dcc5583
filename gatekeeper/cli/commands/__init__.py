"""Each module here defines `register(app)` and adds its commands to the `gatekeeper` typer app."""

__all__: list[str] = []
