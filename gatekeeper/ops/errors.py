"""The errors of operator commands and views, grouped by what the caller should do.

    OperatorError                   an operator command or a view could not be served
    ├── InvalidAction               the command does not fit the gate now (finished, no such stage, nothing
    │   │                           to approve): change the command         CLI exit 2, HTTP 409
    │   └── GateNotFound            no gate by that namespace and name      CLI exit 2, HTTP 404
    ├── Refused                     who you are may not do this (RBAC, the admission policy, the stage's
    │                               approving group): ask for the role or group the message names
    │                                                                       CLI exit 1, HTTP 409
    └── Unreachable                 the API server could not be reached or failed; nothing was written:
                                    retry, check the kubeconfig and the network   CLI exit 3, HTTP 503

The CLI maps them with `EXIT_CODES`, the web app with `HTTP_STATUS` (the most specific class first).
"""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "HTTP_STATUS",
    "GateNotFound",
    "InvalidAction",
    "OperatorError",
    "Refused",
    "Unreachable",
]


class OperatorError(Exception):
    """Base of the errors operator commands and views raise."""


class InvalidAction(OperatorError, ValueError):
    """The command does not fit the gate in its current phase; the message says what to change."""


class GateNotFound(InvalidAction, LookupError):
    """No gate with that namespace and name."""


class Refused(OperatorError):
    """Who you are is not allowed to do this; the message names the role or group needed."""


class Unreachable(OperatorError):
    """The API server (or the store behind a view) could not be reached or failed; nothing was written."""


#: error class -> CLI exit code, most specific first
EXIT_CODES: dict[type[OperatorError], int] = {GateNotFound: 2, InvalidAction: 2, Refused: 1, Unreachable: 3}

#: error class -> HTTP status of the web app, most specific first
HTTP_STATUS: dict[type[OperatorError], int] = {
    GateNotFound: 404,
    InvalidAction: 409,
    Refused: 409,
    Unreachable: 503,
}
