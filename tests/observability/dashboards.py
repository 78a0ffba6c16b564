"""The committed dashboards and their panel queries, made concrete for a plain Prometheus."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tests.observability.prometheus_server import DEPLOY

DASHBOARDS = DEPLOY / "grafana" / "dashboards"


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"


def load_dashboards() -> dict[str, dict[str, Any]]:
    boards = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARDS.glob("*.json")}
    assert boards, f"no dashboards under {DASHBOARDS}"
    return boards


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _load_preview() -> ModuleType:
    """deploy/grafana/preview.py owns the macro replacement; the tests use the same code."""
    spec = importlib.util.spec_from_file_location("grafana_preview", DEPLOY / "grafana/preview.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("grafana_preview", module)
    spec.loader.exec_module(module)
    return module


_preview = _load_preview()


def concrete(expr: str, board: dict[str, Any], rate_interval: str, range_: str) -> str:
    """Grafana's macros and the board's "All" variables, replaced as Grafana would."""
    expr = str(_preview.concrete(expr, board, rate_interval, range_))
    assert "$" not in expr, f"unresolved variable in {expr!r}"
    return expr


def panel_queries(rate_interval: str = "1m", range_: str = "1h") -> list[PanelQuery]:
    found = []
    for name, board in sorted(load_dashboards().items()):
        for panel in panels(board):
            for tgt in panel.get("targets", []):
                expr = concrete(tgt["expr"], board, rate_interval, range_)
                found.append(PanelQuery(name, panel["title"], tgt["refId"], expr))
    assert found, "the dashboards have no panel queries"
    return found
