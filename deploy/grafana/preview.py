"""Renders the committed Grafana dashboards as SVG previews from a real Prometheus.

Grafana cannot run everywhere the repository is built, so the README's dashboard pictures are
drawn here: each panel sits on the dashboard's 24-column gridPos grid and shows what its
queries returned over [start, end]. Standard library only (it reads the committed JSON, not the
generator's SDK), and deterministic for the same data, so a regenerated preview only changes when
the data does.

    python deploy/grafana/preview.py --prometheus http://127.0.0.1:9090 \\
        --start 1700000000 --end 1700000600 --out docs/dashboards
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

Json = dict[str, Any]
# Fetch(expr, start, end, step_s) -> Prometheus `matrix` result: [{"metric", "values"}].
Fetch = Callable[[str, float, float, float], list[Json]]
Points = list[tuple[float, float]]
Series = tuple[str, Points]  # (legend, samples)
Box = tuple[float, float, float, float]  # x, y, width, height in pixels
Window = tuple[float, float]  # start, end in unix seconds

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
MAX_POINTS = 200  # keeps every SVG small enough to commit and review
MAX_LEGEND = 5
TICKS = 5  # with ceilings of 1, 2, 2.5 or 5 x 10^k every tick is a round number
WIDTH, PAD, HEADER = 1440, 8, 48
CELL_H, GAP = 30, 8  # Grafana's grid cell height and panel margin, in pixels
COL_W = (WIDTH - 2 * PAD) / 24
FONT = "Inter, Helvetica, Arial, sans-serif"
BG, PANEL_BG, BORDER, TEXT, MUTED, GRID = (
    "#111217",
    "#181b1f",
    "#2c3235",
    "#ccccdc",
    "#8e8e9a",
    "#2c3235",
)
PALETTE = ("#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9")
NAMED = {"green": "#73BF69", "orange": "#FF9830", "red": "#F2495C", "blue": "#5794F2"}
STAT_TEXT = {"fill": "#ffffff", "text_anchor": "middle", "font_weight": "600", "class_": "value"}
ROW_TEXT = {"fill": TEXT, "font_weight": "600", "class_": "title"}
LEGEND_VAR = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def concrete(expr: str, board: Json, rate_interval: str, range_: str) -> str:
    """Grafana's macros and the board's variables ("All") made concrete for plain Prometheus."""
    for name, value in (
        ("__rate_interval", rate_interval),
        ("__interval", rate_interval),
        ("__range", range_),
    ):
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    for var in board.get("templating", {}).get("list", []):
        for ref in (f"${{{var['name']}}}", f"${var['name']}"):
            expr = expr.replace(ref, var.get("allValue") or ".*")
    return expr


def prometheus_fetch(url: str, timeout_s: float = 10.0) -> Fetch:
    def fetch(expr: str, start: float, end: float, step: float) -> list[Json]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"}
        request = f"{url.rstrip('/')}/api/v1/query_range?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus rejected {expr!r}: {body.get('error')}")
        result: list[Json] = body["data"]["result"]
        return result

    return fetch


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "NaN"
    if unit == "bool_yes_no":
        return "Yes" if value else "No"
    if unit == "percentunit":
        return f"{value * 100:.3f}".rstrip("0").rstrip(".") + "%"
    if unit == "s":
        for limit, scale, suffix in ((1e-3, 1e6, "µs"), (1, 1e3, "ms"), (60, 1, "s")):
            if abs(value) < limit:
                return f"{value * scale:.3g} {suffix}" if value else "0 s"
        return f"{value / 60:.3g} min"
    base, names = (1024, ("B", "KiB", "MiB", "GiB", "TiB")) if unit == "bytes" else (1000, None)
    scaled, power = value, 0
    while abs(scaled) >= base and power < 4:
        scaled, power = scaled / base, power + 1
    if names:
        return f"{scaled:.3g} {names[power]}"
    number = f"{scaled:.3g}" + ("", " K", " Mil", " Bil", " Tri")[power]
    return number + {"ops": " ops/s", "reqps": " req/s"}.get(unit, "")


def legend(target: Json, metric: dict[str, str]) -> str:
    template = target.get("legendFormat") or "__auto"
    if template != "__auto":
        name = LEGEND_VAR.sub(lambda m: metric.get(m.group(1), ""), template)
        if name.strip():  # e.g. `{{op}}` on the `or vector(0)` fallback: name it like Grafana
            return name
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return metric.get("__name__", "") + (f"{{{labels}}}" if labels else "") or target["expr"]


def downsample(points: Points) -> Points:
    if len(points) <= MAX_POINTS:
        return points
    last = len(points) - 1
    return [points[round(i * last / (MAX_POINTS - 1))] for i in range(MAX_POINTS)]


def query_panel(
    panel: Json, board: Json, fetch: Fetch, window: Window, rate_interval: str
) -> list[Series]:
    """Every series of the panel as (legend, [(t, value)]), sorted for a stable drawing."""
    start, end = window
    step = max(1.0, math.ceil((end - start) / MAX_POINTS))
    range_ = f"{max(1, round(end - start))}s"
    series = []
    for target in panel.get("targets", []):
        expr = concrete(target["expr"], board, rate_interval, range_)
        for result in fetch(expr, start, end, step):
            points = [(float(t), float(v)) for t, v in result.get("values", [])]
            series.append((legend(target, result.get("metric", {})), downsample(points)))
    return sorted(series, key=lambda s: s[0])


def last_finite(points: Points) -> float | None:
    return next((v for _, v in reversed(points) if math.isfinite(v)), None)


def text(x: float, y: float, body: str, size: int = 12, **attrs: str) -> str:
    extra = "".join(f" {k.rstrip('_').replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}"{extra}>{escape(body)}</text>'


def no_data(x: float, y: float, w: float, h: float, label: str = "no data") -> str:
    mid = x + w / 2
    return text(mid, y + h / 2, label, 14, fill=MUTED, text_anchor="middle", class_="no-data")


def threshold_color(value: float, defaults: Json) -> str:
    color = "green"
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step["value"] is None or value >= step["value"]:
            color = step["color"]
    return NAMED.get(color, color)


def draw_stat(box: Box, defaults: Json, series: list[Series]) -> list[str]:
    x, y, w, h = box
    values = [v for v in (last_finite(points) for _, points in series) if v is not None]
    if not values:
        return [no_data(x, y, w, h, "NaN" if series else "no data")]
    value = values[0]
    fill = threshold_color(value, defaults)
    big = fmt(value, defaults.get("unit", "short"))
    return [
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="2" '
        f'fill="{fill}" fill-opacity="0.85"/>',
        text(x + w / 2, y + h / 2 + 12, big, 34, **STAT_TEXT),
    ]


def nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= value)


def draw_timeseries(box: Box, defaults: Json, series: list[Series], window: Window) -> list[str]:
    x, y, w, h = box
    finite = [v for _, points in series for _, v in points if math.isfinite(v)]
    if not finite:
        return [no_data(x, y, w, h, "NaN" if series else "no data")]
    legend_h = 15 * (min(len(series), MAX_LEGEND) + (len(series) > MAX_LEGEND))
    plot = (x + 66, y + 8, w - 76, h - legend_h - 28)
    low = min(0.0, min(finite))
    span = max(finite) - low
    # Byte axes step in KiB/MiB/GiB, so their round numbers are powers of 1024.
    scale = 1024.0 ** int(math.log(span, 1024)) if defaults.get("unit") == "bytes" and span else 1
    high = low + nice_ceiling(span / scale) * scale if span > 0 else low + 1.0
    (start, end), (left, top, plot_w, plot_h) = window, plot

    def px(t: float, v: float) -> str:
        fx = left + (t - start) / max(end - start, 1e-9) * plot_w
        fy = top + plot_h - (v - low) / (high - low) * plot_h
        return f"{fx:.1f},{fy:.1f}"

    out = axes(plot, (low, high), window, defaults)
    for index, (_, points) in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        for segment in segments(points):
            coords = " ".join(px(t, v) for t, v in segment)
            if len(segment) == 1:  # a lone sample is drawn as a dot, not lost
                coords = f"{coords} {coords}"
            out.append(
                f'<polyline points="{coords}" fill="none" stroke="{color}" '
                'stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round"/>'
            )
    return out + legend_rows((x, top + plot_h + 30, w), series, defaults.get("unit", "short"))


def axes(plot: Box, limits: tuple[float, float], window: Window, defaults: Json) -> list[str]:
    """Grid lines with y labels, the range's first and last time, and dashed thresholds."""
    (left, top, w, h), (low, high), unit = plot, limits, defaults.get("unit", "short")
    out = []
    for i in range(TICKS + 1):
        gy = top + h - h * i / TICKS
        out.append(
            f'<line x1="{left:.1f}" y1="{gy:.1f}" x2="{left + w:.1f}" y2="{gy:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        label = fmt(low + (high - low) * i / TICKS, unit)
        out.append(text(left - 6, gy + 4, label, 10, fill=MUTED, text_anchor="end"))
    for t, tx, anchor, zone in (
        (window[0], left, "start", ""),
        (window[1], left + w, "end", " UTC"),
    ):
        label = time.strftime("%H:%M:%S", time.gmtime(t)) + zone
        out.append(text(tx, top + h + 14, label, 10, fill=MUTED, text_anchor=anchor))
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step["value"] is not None and low < step["value"] <= high:
            ty = top + h - (step["value"] - low) / (high - low) * h
            color = NAMED.get(step["color"], step["color"])
            out.append(
                f'<line x1="{left:.1f}" y1="{ty:.1f}" x2="{left + w:.1f}" y2="{ty:.1f}" '
                f'stroke="{color}" stroke-dasharray="6 4" stroke-width="1"/>'
            )
    return out


def legend_rows(at: tuple[float, float, float], series: list[Series], unit: str) -> list[str]:
    """Grafana's bottom legend, cut to MAX_LEGEND names, each with its last value."""
    (x, ly, w), out = at, []
    for index, (name, points) in enumerate(series[:MAX_LEGEND]):
        last = last_finite(points)
        color = PALETTE[index % len(PALETTE)]
        out.append(
            f'<rect x="{x + 10:.1f}" y="{ly - 8:.1f}" width="12" height="3" fill="{color}"/>'
        )
        out.append(
            text(x + 28, ly, clip(name, int((w - 140) / 6.5)), 11, fill=TEXT, class_="legend")
        )
        value = fmt(last, unit) if last is not None else "-"
        out.append(text(x + w - 10, ly, value, 11, fill=TEXT, text_anchor="end"))
        ly += 15
    if len(series) > MAX_LEGEND:
        out.append(text(x + 28, ly, f"+ {len(series) - MAX_LEGEND} more series", 11, fill=MUTED))
    return out


def segments(points: Points) -> list[Points]:
    """Splits a series at NaN/Inf samples, which Grafana draws as gaps."""
    parts: list[Points] = [[]]
    for t, v in points:
        if math.isfinite(v):
            parts[-1].append((t, v))
        elif parts[-1]:
            parts.append([])
    return [part for part in parts if part]


def clip(label: str, chars: int) -> str:
    return label if len(label) <= chars else label[: max(1, chars - 1)] + "…"


def draw_list(box: Box, defaults: Json, series: list[Series]) -> list[str]:
    """Tables and other panel types: one row per series with its last value."""
    x, y, w, h = box
    if not series:
        return [no_data(x, y, w, h)]
    out, unit = [], defaults.get("unit", "short")
    for row, (name, points) in enumerate(series[: int(h // 16)]):
        last, ry = last_finite(points), y + 14 + row * 16
        value = fmt(last, unit) if last is not None else "NaN"
        out.append(text(x + 10, ry, clip(name, int(w / 9)), 11, fill=TEXT))
        out.append(text(x + w - 10, ry, value, 11, fill=TEXT, text_anchor="end", class_="value"))
    return out


def draw_panel(panel: Json, board: Json, fetch: Fetch, window: Window, rate_interval: str) -> str:
    grid = panel["gridPos"]
    x, y = PAD + grid["x"] * COL_W, HEADER + grid["y"] * (CELL_H + GAP)
    w, h = grid["w"] * COL_W - GAP, grid["h"] * (CELL_H + GAP) - GAP
    kind, title = panel["type"], panel.get("title", "")
    head = f'<g class="panel {kind}" id="panel-{panel["id"]}" data-title={quoteattr(title)}>'
    if kind == "row":
        return head + text(x + 2, y + 20, title, 15, **ROW_TEXT) + "</g>"
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    series = query_panel(panel, board, fetch, window, rate_interval)
    body = (x + 1, y + 28, w - 2, h - 29)
    if kind in ("stat", "gauge"):
        content = draw_stat((x + 6, y + 28, w - 12, h - 34), defaults, series)
    elif kind == "timeseries":
        content = draw_timeseries(body, defaults, series, window)
    else:
        content = draw_list(body, defaults, series)
    frame = (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="3" '
        f'fill="{PANEL_BG}" stroke="{BORDER}"/>'
    )
    title_text = text(x + 10, y + 19, title, 13, fill=TEXT, font_weight="500", class_="title")
    return "".join([head, frame, title_text, *content, "</g>"])


def all_panels(board: Json) -> list[Json]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def render_dashboard(
    board: Json, fetch: Fetch, start: float, end: float, rate_interval: str = "1m"
) -> str:
    """One self-contained SVG of `board` with every panel's data over [start, end]."""
    panels = all_panels(board)
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height = HEADER + bottom * (CELL_H + GAP) + PAD
    when = " → ".join(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) for t in (start, end))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT}">',
        f"<title>{escape(board['title'])}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="{BG}"/>',
        text(PAD + 4, 30, board["title"], 18, fill=TEXT, font_weight="600", class_="board-title"),
        text(
            WIDTH - PAD - 4, 30, f"{when} UTC · from Prometheus", 11, fill=MUTED, text_anchor="end"
        ),
    ]
    for panel in panels:
        parts.append(draw_panel(panel, board, fetch, (start, end), rate_interval))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render_all(
    out_dir: Path, fetch: Fetch, start: float, end: float, rate_interval: str = "1m"
) -> list[Path]:
    """An SVG per committed dashboard, named like its JSON: `<uid>.svg`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(source.read_text(encoding="utf-8"))
        path = out_dir / f"{source.stem}.svg"
        path.write_text(render_dashboard(board, fetch, start, end, rate_interval), "utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--start", type=float, required=True, help="unix seconds")
    parser.add_argument("--end", type=float, required=True, help="unix seconds")
    parser.add_argument("--out", type=Path, required=True, help="directory for the SVGs")
    parser.add_argument(
        "--rate-interval", default="1m", help="$__rate_interval: 4 x the scrape interval"
    )
    args = parser.parse_args(argv)
    if args.end <= args.start:
        parser.error("--end must be after --start")
    fetch = prometheus_fetch(args.prometheus)
    for path in render_all(args.out, fetch, args.start, args.end, args.rate_interval):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
