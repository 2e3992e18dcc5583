"""A/B match conditions: which requests a gate-owned rule sends to the canary (headers and a cookie)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gatekeeper.routing.base import RoutingError

__all__ = ["Match"]

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")  # RFC 9110 token: header and cookie names
_COOKIE_VALUE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$")  # RFC 6265 cookie-octet
_COOKIE_RE = ("^(.*?;\\s*)?(", ")(;.*)?$")  # around re.escape(name=value): the cookie anywhere in the header


@dataclass(frozen=True)
class Match:
    """Requests that go to the canary in an A/B stage: every header equals its value and the cookie is set.

    Header names are lower-cased (HTTP header names are case-insensitive; Istio requires lower case). The
    cookie becomes a regular-expression match on the ``cookie`` header, ``cookie_regex()``.
    """

    headers: tuple[tuple[str, str], ...] = ()
    cookie: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.headers and self.cookie is None:
            raise RoutingError("a match needs at least one header (NAME=VALUE) or a cookie (NAME=VALUE)")
        names: list[str] = []
        for pair in self.headers:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise RoutingError(f"match header {pair!r} must be a (name, value) pair")
            name, value = pair
            if not isinstance(name, str) or not _TOKEN.match(name) or len(name) > 256:
                raise RoutingError(
                    f"match header name {name!r} is not a valid HTTP header name (letters, digits and "
                    "!#$%&'*+-.^_`|~ only); fix --header NAME=VALUE"
                )
            if name != name.lower():
                raise RoutingError(f"match header name {name!r} must be lower case: use {name.lower()!r}")
            if name == "cookie":
                raise RoutingError("match header 'cookie' is reserved: use --cookie NAME=VALUE for a cookie")
            if not isinstance(value, str) or not value or value != value.strip() or len(value) > 4096:
                raise RoutingError(
                    f"match header {name!r} needs a non-empty value without surrounding spaces, got {value!r}"
                )
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
                raise RoutingError(f"match header {name!r} value has a control character; remove it")
            names.append(name)
        object.__setattr__(
            self, "headers", tuple(sorted(self.headers))
        )  # one order: equal matches compare equal
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise RoutingError(
                f"match header {', '.join(dup)} is given more than once; give each header once"
            )
        if self.cookie is not None:
            if not isinstance(self.cookie, tuple) or len(self.cookie) != 2:
                raise RoutingError(f"match cookie {self.cookie!r} must be a (name, value) pair")
            name, value = self.cookie
            if not isinstance(name, str) or not _TOKEN.match(name):
                raise RoutingError(
                    f"match cookie name {name!r} is not a valid cookie name; fix --cookie NAME=VALUE"
                )
            if not isinstance(value, str) or not _COOKIE_VALUE.match(value):
                raise RoutingError(
                    f"match cookie {name!r} value {value!r} is empty or has characters a cookie value cannot have "
                    "(spaces, quotes, commas, semicolons, backslashes)"
                )

    @classmethod
    def parse(cls, *, headers: Sequence[str] = (), cookie: str | None = None) -> Match:
        """From ``NAME=VALUE`` (or ``NAME: VALUE``) texts; ``RoutingError`` naming the bad one."""

        def pair(text: str, what: str) -> tuple[str, str]:
            m = re.match(r"^\s*([^=:\s]+)\s*[=:]\s*(.*?)\s*$", text)
            if not m or not m.group(2):
                raise RoutingError(f"{what} {text!r} must be NAME=VALUE, for example x-canary=always")
            return m.group(1), m.group(2)

        hs = tuple((n.lower(), v) for n, v in (pair(h, "--header") for h in headers))
        return cls(hs, pair(cookie, "--cookie") if cookie is not None else None)

    def cookie_regex(self) -> str | None:
        """The ``cookie`` header pattern (RE2 and Python ``re``): the cookie first, in the middle or last."""
        if self.cookie is None:
            return None
        return _COOKIE_RE[0] + re.escape(f"{self.cookie[0]}={self.cookie[1]}") + _COOKIE_RE[1]

    @classmethod
    def from_headers(cls, exact: dict[str, str], regex: dict[str, str]) -> Match | None:
        """Back from header conditions as routers store them (``None`` if they are not a gatekeeper match)."""
        cookie = None
        pattern = regex.get("cookie")
        if pattern is not None:
            head, tail = _COOKIE_RE
            if not (pattern.startswith(head) and pattern.endswith(tail)):
                return None
            name, _, value = re.sub(r"\\(.)", r"\1", pattern[len(head) : -len(tail)]).partition("=")
            cookie = (name, value)
        if set(regex) - {"cookie"}:
            return None
        try:
            return cls(tuple(sorted(exact.items())), cookie)
        except RoutingError:
            return None

    def describe(self) -> str:
        parts = [f"{n}={v}" for n, v in self.headers]
        if self.cookie is not None:
            parts.append(f"cookie {self.cookie[0]}={self.cookie[1]}")
        return " and ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "headers": dict(self.headers),
            "cookie": None if self.cookie is None else {"name": self.cookie[0], "value": self.cookie[1]},
        }
