"""gatekeeper: an observability gate for progressive delivery.

Rooms, bottom to top (enforced by import-linter, see pyproject.toml; the map is docs/architecture.md):
spec -> sources | stats -> signals | judge -> evaluation | routing -> controller -> ops | importers -> web -> cli;
sim beside them, reachable only from the CLI.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
