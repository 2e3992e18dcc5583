"""Argo Rollouts `successCondition` / `failureCondition` (expr-lang) -> where they hold, for threshold bounds.

Only the forms a Prometheus metric needs are understood: comparisons of `result`, `result[0]`,
`asFloat(result[0])` or `default(result[0], N)` with a number (either side), `len(result) <op> k`,
`isNaN(...)`, `isInf(...)`, `!`, `not`, `&&`/`and`, `||`/`or` and parentheses. Anything else raises
`Unsupported` with the reason, so the importer can list it instead of guessing.

A condition is summarised as a `Pred`: the set of finite values where it is true (a union of intervals) and
its truth on an empty result and on NaN: True, False or "E" (expr-lang raises, e.g. `result[0]` of an empty
array, and Argo records an Error measurement). `&&` and `||` short-circuit as in expr-lang, so
`len(result) == 0 || result[0] < 1` is True on an empty result.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Interval", "Pred", "Unsupported", "complement", "parse_condition", "union"]

Tri = bool | str  # True, False or "E" (error)


class Unsupported(ValueError):
    """A condition outside the understood forms; the message says which part."""


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool

    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))


def _norm(parts: list[Interval]) -> tuple[Interval, ...]:
    items = sorted((p for p in parts if not p.empty()), key=lambda p: (p.lo, not p.lo_closed))
    out: list[Interval] = []
    for p in items:
        if out:
            q = out[-1]
            touches = p.lo < q.hi or (p.lo == q.hi and (p.lo_closed or q.hi_closed))
            if touches:
                hi, hc = (
                    (p.hi, p.hi_closed) if (p.hi, p.hi_closed) > (q.hi, q.hi_closed) else (q.hi, q.hi_closed)
                )
                out[-1] = Interval(q.lo, hi, q.lo_closed, hc)
                continue
        out.append(p)
    return tuple(out)


ALL = (Interval(-math.inf, math.inf, False, False),)
NONE: tuple[Interval, ...] = ()


def complement(s: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out, lo, lo_closed = [], -math.inf, False
    for p in s:
        out.append(Interval(lo, p.lo, lo_closed, not p.lo_closed))
        lo, lo_closed = p.hi, not p.hi_closed
    out.append(Interval(lo, math.inf, lo_closed, False))
    return _norm(out)


def _intersect(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out = []
    for p in a:
        for q in b:
            lo, lc = max((p.lo, not p.lo_closed), (q.lo, not q.lo_closed))
            hi, hc = min((p.hi, p.hi_closed), (q.hi, q.hi_closed))
            out.append(Interval(lo, hi, not lc, hc))
    return _norm(out)


def union(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> tuple[Interval, ...]:
    return _norm([*a, *b])


def _not(t: Tri) -> Tri:
    return t if t == "E" else not t


@dataclass(frozen=True)
class Pred:
    region: tuple[Interval, ...]
    empty: Tri
    nan: Tri

    def __and__(self, o: Pred) -> Pred:
        def tri(a: Tri, b: Tri) -> Tri:
            return False if a is False else ("E" if a == "E" else b)

        return Pred(_intersect(self.region, o.region), tri(self.empty, o.empty), tri(self.nan, o.nan))

    def __or__(self, o: Pred) -> Pred:
        def tri(a: Tri, b: Tri) -> Tri:
            return True if a is True else ("E" if a == "E" else b)

        return Pred(union(self.region, o.region), tri(self.empty, o.empty), tri(self.nan, o.nan))

    def __invert__(self) -> Pred:
        return Pred(complement(self.region), _not(self.empty), _not(self.nan))

    def interval(self) -> Interval | None:
        """The region as one interval (None when it is empty or several pieces)."""
        return self.region[0] if len(self.region) == 1 else None


def _cmp(op: str, c: float, *, value_left: bool) -> tuple[Interval, ...]:
    if not value_left:  # c op v  ==  v op' c
        op = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[op]
    inf = math.inf
    table = {
        ">": Interval(c, inf, False, False),
        ">=": Interval(c, inf, True, False),
        "<": Interval(-inf, c, False, False),
        "<=": Interval(-inf, c, False, True),
        "==": Interval(c, c, True, True),
    }
    if op == "!=":
        return complement((table["=="],))
    return _norm([table[op]])


def _truth(op: str, a: float, b: float) -> bool:
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]


_TOKEN = re.compile(
    r"\s*(?:(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<op>&&|\|\||>=|<=|==|!=|[<>!()\[\],])"
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))"
)


@dataclass(frozen=True)
class _Value:
    """A reference to the measured value; `default` is what it is on an empty result (None: error)."""

    default: float | None


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        for m in _TOKEN.finditer(text):
            if m.group("bad"):
                raise Unsupported(f"unexpected '{m.group('bad')}'")
            kind = next(k for k in ("num", "op", "id") if m.group(k) is not None)
            tok = m.group(kind)
            if kind == "id" and tok in ("and", "or", "not"):
                kind, tok = "op", {"and": "&&", "or": "||", "not": "!"}[tok]
            self.tokens.append((kind, tok))
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, tok: str | None = None) -> tuple[str, str]:
        t = self.peek()
        if t is None or (tok is not None and t[1] != tok):
            raise Unsupported(f"expected '{tok}'" if tok else "unexpected end")
        self.i += 1
        return t

    def parse(self) -> Pred:
        p = self.or_()
        if self.peek() is not None:
            raise Unsupported(f"unexpected '{self.peek()[1]}'")  # type: ignore[index]
        return p

    def or_(self) -> Pred:
        p = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            p = p | self.and_()
        return p

    def and_(self) -> Pred:
        p = self.unary()
        while self.peek() == ("op", "&&"):
            self.take()
            p = p & self.unary()
        return p

    def unary(self) -> Pred:
        if self.peek() == ("op", "!"):
            self.take()
            return ~self.unary()
        if self.peek() == ("op", "("):
            self.take()
            p = self.or_()
            self.take(")")
            return p
        return self.comparison()

    def operand(self) -> float | _Value | str:
        kind, tok = self.take()
        if kind == "num":
            return float(tok)
        if kind != "id":
            raise Unsupported(f"unexpected '{tok}'")
        if tok == "result":
            return self.index(_Value(None))
        if tok in ("asFloat", "float"):
            self.take("(")
            inner = self.operand()
            self.take(")")
            if not isinstance(inner, _Value):
                raise Unsupported(f"{tok}() of something other than result")
            return inner
        if tok == "default":
            self.take("(")
            inner = self.operand()
            self.take(",")
            fallback = self.operand()
            self.take(")")
            if not isinstance(inner, _Value) or not isinstance(fallback, float):
                raise Unsupported("default() needs result and a number")
            return _Value(fallback)
        if tok == "len":
            self.take("(")
            _kind2, tok2 = self.take()
            if tok2 != "result":
                raise Unsupported("len() of something other than result")
            self.take(")")
            return "len"
        if tok in ("isNaN", "isInf"):
            self.take("(")
            inner = self.operand()
            self.take(")")
            if not isinstance(inner, _Value):
                raise Unsupported(f"{tok}() of something other than result")
            return tok
        raise Unsupported(f"'{tok}' is not understood (only result, len, isNaN, isInf, asFloat, default)")

    def index(self, v: _Value) -> _Value:
        if self.peek() == ("op", "["):
            self.take()
            kind, tok = self.take()
            if kind != "num" or float(tok) != 0:
                raise Unsupported(f"result[{tok}]: only the first value (result[0]) maps to one series")
            self.take("]")
        return v

    def comparison(self) -> Pred:
        left = self.operand()
        if left in ("isNaN", "isInf"):
            return Pred(NONE, "E", left == "isNaN")
        t = self.peek()
        if t is None or t[1] not in ("<", "<=", ">", ">=", "==", "!="):
            raise Unsupported("a comparison (<, <=, >, >=, ==, !=) was expected")
        op = self.take()[1]
        right = self.operand()
        if left == "len" or right == "len":
            k = right if left == "len" else left
            if not isinstance(k, float):
                raise Unsupported("len(result) must be compared with a number")
            one = _truth(op, 1.0, k) if left == "len" else _truth(op, k, 1.0)
            zero = _truth(op, 0.0, k) if left == "len" else _truth(op, k, 0.0)
            return Pred(ALL if one else NONE, zero, one)
        if isinstance(left, _Value) and isinstance(right, float):
            v, c, value_left = left, right, True
        elif isinstance(right, _Value) and isinstance(left, float):
            v, c, value_left = right, left, False
        else:
            raise Unsupported("compare result with a number")
        on_empty: Tri = (
            "E"
            if v.default is None
            else (_truth(op, v.default, c) if value_left else _truth(op, c, v.default))
        )
        return Pred(_cmp(op, c, value_left=value_left), on_empty, op == "!=")


def parse_condition(text: str) -> Pred:
    """Summarise an Argo condition; `Unsupported` when it is outside the understood forms."""
    if not str(text).strip():
        raise Unsupported("empty condition")
    return _Parser(str(text)).parse()
