"""ops: what the CLI and the dashboard share: operator actions, the view model of a gate, dry runs.

- `gate`: `GateView`, the one view model of a Gate (from a resource or a gate file), and its `StageView`s;
- `actions`: approve, abort, pause, resume, status, list, made through the Kubernetes API server;
- `repository`: `GateRepository`, where the dashboard reads gates (Kubernetes, or gate files in memory);
- `pages`: the dashboard's rows and gate detail, built from `GateView`s;
- `errors`: the one error tree, grouped by what the caller should do (CLI exit codes, HTTP statuses);
- `dry_run` and `replay`: `evaluate` and `replay` (windows from options, exit codes, the walk of a past window).

Shells stay thin: they parse input, call an operation here, and render its result. Exit codes live here too,
so every shell maps a verdict or an error to the same code.

Must not: print, parse command lines, or speak HTTP.
"""

from gatekeeper.ops.dry_run import EXIT_CODES, exit_code_for, parse_time, resolve_window

__all__ = ["EXIT_CODES", "exit_code_for", "parse_time", "resolve_window"]
