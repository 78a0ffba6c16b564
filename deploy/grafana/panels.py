"""Builders for Grafana dashboard JSON (plain dicts) and the PromQL snippets the boards share."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

DATASOURCE: Json = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"
# Health probes and scrapes would drown the API's real traffic in every HTTP panel.
API = 'route!~"/metrics|/healthz|/readyz"'
DLQ = 'topic=~".+\\\\.dlq"'
NOT_DLQ = 'topic!~".+\\\\.dlq"'
SLO_TARGET = 0.999
ERROR_BUDGET = 0.001  # 1 - SLO_TARGET, written out to keep float noise out of the JSON
GRID_WIDTH = 24


def target(expr: str, legend: str = "", *, exemplar: bool = False, instant: bool = False) -> Json:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "exemplar": exemplar,
    }


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def timeseries(
    title: str,
    targets: list[Json],
    *,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    limits: Json | None = None,
) -> Json:
    defaults: Json = {
        "unit": unit,
        "min": 0,
        "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"},
    }
    if limits:
        defaults["thresholds"] = limits
        defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["mean", "max", "lastNotNull"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_size": (width, 8),
    }


def stat(
    title: str, expr: str, *, unit: str, limits: Json, description: str = "", width: int = 6
) -> Json:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, title, instant=True)],
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": limits}, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value",
            "justifyMode": "auto",
            "orientation": "auto",
        },
        "_size": (width, 4),
    }


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def layout(panels: list[Json]) -> list[Json]:
    """Numbers the panels and flows them left to right, wrapping at Grafana's 24 columns."""
    x = y = row_height = 0
    placed: list[Json] = []
    for panel_id, panel in enumerate(panels, start=1):
        width, height = panel.pop("_size")
        if x + width > GRID_WIDTH or panel["type"] == "row":
            x, y, row_height = 0, y + row_height, 0
        placed.append(
            {"id": panel_id, "gridPos": {"h": height, "w": width, "x": x, "y": y}} | panel
        )
        for ref, tgt in zip("ABCDEFGH", panel.get("targets", []), strict=False):
            tgt["refId"] = ref
        x, row_height = x + width, max(row_height, height)
    return placed


def dashboard(
    uid: str,
    title: str,
    panels: list[Json],
    *,
    variables: list[Json] | None = None,
    time_from: str = "now-1h",
    description: str = "",
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["order-service"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": time_from, "to": "now"},
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["order-service"],
                "asDropdown": True,
                "title": "Order service",
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "templating": {"list": variables or []},
        "panels": layout(panels),
    }


def quantiles(
    metric: str, by: str = "", selector: str = "", qs: tuple[float, ...] = (0.5, 0.9, 0.99)
) -> list[Json]:
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    matchers = f"{{{selector}}}" if selector else ""
    return [
        target(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{matchers}[{RATE}])))",
            f"p{round(q * 100)}{suffix}",
            exemplar=True,
        )
        for q in qs
    ]


def mean(metric: str, selector: str = "", by: str = "") -> str:
    """Mean observation of a histogram over the rate window: rate(sum) / rate(count)."""
    matchers = f"{{{selector}}}" if selector else ""
    group = f" by ({by}) " if by else ""
    return (
        f"sum{group}(rate({metric}_sum{matchers}[{RATE}]))"
        f" / sum{group}(rate({metric}_count{matchers}[{RATE}]))"
    )


def error_ratio(window: str, selector: str = API) -> str:
    # `or vector(0)`: no 5xx series yet means a ratio of 0, not "no data".
    return (
        f'(sum(rate(http_requests_total{{status=~"5..",{selector}}}[{window}])) or vector(0))'
        f" / sum(rate(http_requests_total{{{selector}}}[{window}]))"
    )
