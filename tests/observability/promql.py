"""Just enough PromQL reading to list the series selectors of an expression.

Used to check that the dashboard and the alert rules only reference metrics
(and label names and values) that the daemon really exposes. Not a parser:
a tokenizer that knows which identifiers are functions, keywords, label
lists (`by (...)`, `on (...)`) and label matchers (`{...}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ("Matcher", "Selector", "grafana_to_promql", "selectors")

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-z]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>])
  | (?P<punct>[(){},])
  | (?P<space>\s+)
    """,
    re.VERBOSE,
)
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", *_LABEL_LISTS}


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True, slots=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = field(default=())


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables so the expression is plain PromQL."""
    for name, value in (("$__rate_interval", "1m"), ("$__interval", "1m"), ("$__range", "1h")):
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            out.append((kind, match.group()))
    return out


def selectors(expr: str) -> list[Selector]:
    """Every `metric{matchers}` of the expression (a bare `{...}` without a name is an error)."""
    tokens = _tokens(expr)
    found: list[Selector] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and text in _LABEL_LISTS and following == "(":
            i = tokens.index(("punct", ")"), i)  # skip the label list
        elif kind == "ident" and (following == "(" or following in ("by", "without")):
            pass  # a function, or an aggregation (`sum by (x) (...)`)
        elif kind == "ident" and text not in _KEYWORDS:
            matchers: tuple[Matcher, ...] = ()
            if following == "{":
                end = tokens.index(("punct", "}"), i)
                matchers = _matchers(tokens[i + 2 : end])
                i = end
            found.append(Selector(text, matchers))
        elif kind == "punct" and text == "{":
            raise ValueError("a selector without a metric name")
        i += 1
    return found


def _matchers(tokens: list[tuple[str, str]]) -> tuple[Matcher, ...]:
    out = []
    parts = [t for t in tokens if t != ("punct", ",")]
    for j in range(0, len(parts), 3):
        (_, label), (_, op), (_, quoted) = parts[j : j + 3]
        out.append(Matcher(label, op, quoted[1:-1]))
    return tuple(out)
