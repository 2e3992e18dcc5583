"""ops: operations and view models shared by the CLI and the dashboard (evaluate, replay, approve, abort…).

Shells stay thin: they parse input, call an operation here, and render its result. Exit codes live here too,
so every shell maps a verdict to the same code.

Must not: print, parse command lines, or speak HTTP.
"""

from gatekeeper.ops.evaluate import EXIT_CODES, exit_code_for, parse_time, resolve_window

__all__ = ["EXIT_CODES", "exit_code_for", "parse_time", "resolve_window"]
