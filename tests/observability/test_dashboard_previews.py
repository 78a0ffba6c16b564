"""The SVG dashboard previews (deploy/grafana/preview.py), drawn from synthetic query results.

The renderer is pure logic, so a fake `fetch` stands in for Prometheus here; the previews from
a real Prometheus are checked in test_dashboards_live.py.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import xml.etree.ElementTree as ET
from functools import cache
from types import ModuleType
from typing import Any

from tests.observability.dashboards import DASHBOARDS, panels
from tests.observability.prometheus_server import DEPLOY, REPO

SVG = "{http://www.w3.org/2000/svg}"
START, END = 1_700_000_000.0, 1_700_000_600.0


@cache
def load_preview() -> ModuleType:
    path = DEPLOY / "grafana" / "preview.py"
    spec = importlib.util.spec_from_file_location("grafana_preview", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def panel_groups(svg: str) -> dict[str, ET.Element]:
    """Each panel's `<g>` keyed by its id attribute (`panel-<id>`)."""
    root = ET.fromstring(svg)
    return {
        g.attrib["id"]: g for g in root.iter(f"{SVG}g") if "panel" in g.get("class", "").split()
    }


def texts(group: ET.Element) -> list[str]:
    return [t.text or "" for t in group.iter(f"{SVG}text")]


def polylines(group: ET.Element) -> list[ET.Element]:
    return list(group.iter(f"{SVG}polyline"))


def series(labels: dict[str, str], values: list[float], start: float = START) -> dict[str, Any]:
    step = (END - start) / max(1, len(values) - 1)
    return {
        "metric": labels,
        "values": [
            [start + i * step, "NaN" if math.isnan(v) else str(v)] for i, v in enumerate(values)
        ],
    }


def fake_fetch(expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """Data for most panels; nothing for the in-progress ones; NaN for the 4xx ratio."""
    assert "$" not in expr, f"unresolved Grafana macro in {expr!r}"
    assert start == START and end == END and step >= 1
    if "in_progress" in expr:
        return []
    if 'status=~"4.."' in expr:
        return [series({}, [math.nan, math.nan])]
    if "histogram_quantile" in expr:
        routes = ("/orders", "/order", "/orders/{order_id}")
        return [series({"route": r}, [0.01 * (i + 1), 0.02, 0.03]) for i, r in enumerate(routes)]
    return [series({"method": "POST", "route": "/orders", "status": "201"}, [1.0, 2.5, 0.25])]


def red_board() -> dict[str, Any]:
    board: dict[str, Any] = json.loads((DASHBOARDS / "order-service-red.json").read_text())
    return board


def test_every_panel_is_a_group_titled_like_the_panel_in_well_formed_svg() -> None:
    board = red_board()
    svg = load_preview().render_dashboard(board, fake_fetch, START, END, "10s")
    groups = panel_groups(svg)
    assert set(groups) == {f"panel-{p['id']}" for p in panels(board)}
    for panel in panels(board):
        group = groups[f"panel-{panel['id']}"]
        assert panel["title"] in texts(group), panel["title"]
        assert group.get("class") == f"panel {panel['type']}"
    assert ET.fromstring(svg).find(f"{SVG}title") is not None


def test_timeseries_with_data_are_polylines_and_empty_ones_say_no_data() -> None:
    board = red_board()
    groups = panel_groups(load_preview().render_dashboard(board, fake_fetch, START, END, "10s"))
    by_title = {p["title"]: groups[f"panel-{p['id']}"] for p in panels(board)}
    latency = by_title["Latency p50 / p90 / p99 by route"]
    assert len(polylines(latency)) == 9  # three quantiles of three routes
    assert "+ 4 more series" in texts(latency)  # the legend keeps five names
    assert polylines(by_title["Request rate by route and status"])
    assert "POST /orders 201" in texts(by_title["Request rate by route and status"])
    empty = by_title["Requests in progress"]
    assert not polylines(empty)
    assert "no data" in texts(empty)


def test_stat_panels_show_the_last_value_with_its_unit_or_no_data() -> None:
    board = red_board()
    groups = panel_groups(load_preview().render_dashboard(board, fake_fetch, START, END, "10s"))
    by_title = {p["title"]: groups[f"panel-{p['id']}"] for p in panels(board)}
    assert "0.25 req/s" in texts(by_title["Requests / s"])
    assert "30 ms" in texts(by_title["p99 latency (5m)"])
    assert "no data" in texts(by_title["In progress"])


def test_nan_samples_break_the_line_and_an_all_nan_series_is_not_no_data() -> None:
    preview = load_preview()
    board = red_board()
    panel = next(p for p in board["panels"] if p["title"] == "Error ratio")

    def gappy(expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        if 'status=~"4.."' in expr:
            return [series({}, [math.nan] * 3)]
        return [series({}, [0.1, 0.2, math.nan, 0.3, 0.4])]

    single = {**board, "panels": [panel]}
    group = panel_groups(preview.render_dashboard(single, gappy, START, END))[
        f"panel-{panel['id']}"
    ]
    assert len(polylines(group)) == 2
    assert "no data" not in texts(group)

    only_nan = preview.render_dashboard(single, lambda *_: [series({}, [math.nan])], START, END)
    assert "NaN" in texts(panel_groups(only_nan)[f"panel-{panel['id']}"])


def test_long_series_are_downsampled_and_rendering_is_deterministic() -> None:
    preview = load_preview()
    board = red_board()
    many = [series({"route": "/orders"}, [math.sin(i / 50) + 1 for i in range(5000)])]
    first = preview.render_dashboard(board, lambda *_: many, START, END, "10s")
    assert first == preview.render_dashboard(board, lambda *_: many, START, END, "10s")
    for group in panel_groups(first).values():
        for line in polylines(group):
            assert len(line.attrib["points"].split()) <= preview.MAX_POINTS


def test_tables_and_other_panel_types_list_their_last_values() -> None:
    board = {
        "title": "t",
        "panels": [
            {
                "id": 1,
                "type": "table",
                "title": "Sizes",
                "gridPos": {"h": 6, "w": 8, "x": 0, "y": 0},
                "fieldConfig": {"defaults": {"unit": "bytes"}},
                "targets": [{"expr": "pg_database_size_bytes", "legendFormat": "{{datname}}"}],
            }
        ],
    }
    data = [series({"datname": "orderdb"}, [1024.0, 8 * 1024 * 1024])]
    svg = load_preview().render_dashboard(board, lambda *_: data, START, END)
    group = panel_groups(svg)["panel-1"]
    assert "orderdb" in texts(group)
    assert "8 MiB" in texts(group)


def test_units_are_formatted_like_grafana() -> None:
    fmt = load_preview().fmt
    assert fmt(0.9995, "percentunit") == "99.95%"
    assert fmt(0.0042, "s") == "4.2 ms"
    assert fmt(12_500, "ops") == "12.5 K ops/s"
    assert fmt(3 * 1024**3, "bytes") == "3 GiB"
    assert fmt(1, "bool_yes_no") == "Yes"
    assert fmt(math.nan, "short") == "NaN"


def test_axes_end_on_round_numbers_in_the_panels_unit() -> None:
    board = json.loads((DASHBOARDS / "order-service-postgres.json").read_text())
    panel = next(
        p for p in panels(board) if p["type"] == "timeseries" and p["title"] == "Database size"
    )
    data = [series({"datname": "orderdb"}, [7.0 * 1024**2, 7.9 * 1024**2])]
    svg = load_preview().render_dashboard({**board, "panels": [panel]}, lambda *_: data, START, END)
    labels = texts(panel_groups(svg)[f"panel-{panel['id']}"])
    assert {"0 B", "2 MiB", "10 MiB"} <= set(labels)


def test_the_committed_previews_show_the_committed_dashboards_panels() -> None:
    """Catches a dashboard changed without regenerating docs/dashboards/ (tried: the orders
    preview from before the Lifecycle row: its panels are missing). Titles and ids only: the
    data drawn differ from run to run."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        preview = REPO / "docs" / "dashboards" / f"{board['uid']}.svg"
        groups = panel_groups(preview.read_text(encoding="utf-8"))
        assert set(groups) == {f"panel-{p['id']}" for p in panels(board)}, f"{preview} is stale"
        for panel in panels(board):
            assert panel["title"] in texts(groups[f"panel-{panel['id']}"]), f"{preview} is stale"
