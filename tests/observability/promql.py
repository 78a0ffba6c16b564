"""Just enough PromQL reading for the tests: the metric names an expression selects, and the
expression without its `or vector(0)` fallbacks.

Not a parser: the dashboards and rules are ours and use a small part of the language
(selectors, aggregations with by/without, binary operators with on/ignoring/group_*,
functions, ranges). test_promql.py pins the cases they use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

# `or vector(0)`, `or on () vector(0)`, `or on(job) vector(1)`: a constant that answers when
# the left side has no series, so a query with it "returns data" whatever was scraped.
FALLBACK = re.compile(r"\s+or\s+(?:on\s*\([\w\s,]*\)\s*)?vector\(\s*[-+]?[\d.]+\s*\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
# An identifier that is not part of a number (1e3, 0x1f) and not a function call.
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


def without_fallbacks(expr: str) -> str:
    """`expr` with every `or [on ()] vector(<number>)` removed: what is left answers only
    when the metrics it selects have samples."""
    return FALLBACK.sub("", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (recorded series included, label names and functions
    not)."""
    text = _STRING.sub('""', expr)
    # A {...} after a name is its matchers; a bare {__name__=...} selector does not occur here.
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _LABEL_LISTS.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def rules(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every rule (alerting and recording) of the rule files, in file order."""
    found: list[dict[str, Any]] = []
    for path in paths:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            found += group["rules"]
    return found
