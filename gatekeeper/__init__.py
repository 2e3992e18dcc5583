"""gatekeeper: an observability gate for progressive delivery.

Rooms, bottom to top (enforced by import-linter, see pyproject.toml):
spec -> sources -> stats -> signals -> judge / routing -> controller -> ops -> cli / web; sim beside them.
"""

__version__ = "0.1.0"
