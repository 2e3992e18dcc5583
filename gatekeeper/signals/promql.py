"""PromQL parsing that cannot take the process down.

``promql_parser`` (a Rust parser) recurses on the native stack: a query nested a few thousand levels deep (a
long chain of binary operators, nested calls or brackets) overflows the stack and kills the whole process
with a segmentation fault instead of raising, and a gate is text anyone with write access to a Gate can
send to the controller. ``parse`` measures how deep the query can nest before handing it over and refuses a
query deeper than ``MAX_DEPTH`` with a ``ValueError`` like any other syntax error. Real queries stay far
below it (a long alerting expression has a few dozen operators); the parser survives about 4,000 levels on
an 8 MiB thread stack, so the bound leaves a wide margin for smaller stacks.
"""

from __future__ import annotations

import re
from typing import Any

import promql_parser

__all__ = ["MAX_DEPTH", "nesting", "parse"]

MAX_DEPTH = 400
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', re.S)
_OPERATOR = re.compile(r"[-+*/%^]|[=!<>]=?|=~|!~|\b(?:and|or|unless|atan2|by|without|on|ignoring)\b", re.I)


def nesting(query: str) -> int:
    """An upper bound on how deep the query's syntax tree can be: the deepest bracket nesting plus every
    operator (a chain of N binary operators is a tree N deep), string literals left out."""
    bare = _STRING.sub('""', query)
    depth = deepest = 0
    for ch in bare:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth = max(0, depth - 1)
    return deepest + len(_OPERATOR.findall(bare))


def parse(query: str) -> Any:
    """``promql_parser.parse(query)``, or ``ValueError`` for a query too deep to parse safely."""
    depth = nesting(query)
    if depth > MAX_DEPTH:
        raise ValueError(
            f"the query nests about {depth} levels deep (brackets and operators; at most {MAX_DEPTH}): "
            "split it into recording rules"
        )
    return promql_parser.parse(query)
