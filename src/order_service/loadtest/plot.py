"""`--plot`: latency over time, as a PNG when matplotlib is installed, else HTML with inline SVG."""

from __future__ import annotations

import html
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from order_service.loadtest.stats import percentile


@dataclass(frozen=True)
class SecondStats:
    second: int
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def per_second(offsets: Sequence[float], latencies: Sequence[float]) -> list[SecondStats]:
    """Group samples by the second they were due in (seconds with no sample are left out)."""
    buckets: dict[int, list[float]] = {}
    for offset, latency in zip(offsets, latencies, strict=True):
        buckets.setdefault(int(offset), []).append(latency * 1000.0)
    series = []
    for second in sorted(buckets):
        values = sorted(buckets[second])
        series.append(
            SecondStats(
                second, len(values), percentile(values, 50), percentile(values, 99), values[-1]
            )
        )
    return series


def _matplotlib() -> Any | None:
    try:
        return importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None


def write_plot(path: Path, series: Sequence[SecondStats], title: str) -> Path:
    """Write the chart; returns where it went (a `.png` without matplotlib becomes `.html`)."""
    plt = _matplotlib() if path.suffix.lower() == ".png" else None
    if plt is not None:
        _write_png(plt, path, series, title)
        return path
    target = path if path.suffix.lower() in (".html", ".htm") else path.with_suffix(".html")
    target.write_text(render_html(series, title), encoding="utf-8")
    return target


def _write_png(plt: Any, path: Path, series: Sequence[SecondStats], title: str) -> None:
    xs = [s.second for s in series]
    fig, ax = plt.subplots(figsize=(10, 4))
    for name in ("p50_ms", "p99_ms", "max_ms"):
        ax.plot(xs, [getattr(s, name) for s in series], label=name.removesuffix("_ms"))
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


_W, _H, _PAD = 900, 360, 50
_COLOURS = {"p50_ms": "#1f77b4", "p99_ms": "#ff7f0e", "max_ms": "#d62728"}


def render_svg(series: Sequence[SecondStats], title: str) -> str:
    x_max = max((s.second for s in series), default=0) + 1
    y_max = max((s.max_ms for s in series), default=0.0) * 1.05 or 1.0

    def x(second: float) -> float:
        return _PAD + (second / x_max) * (_W - 2 * _PAD)

    def y(ms: float) -> float:
        return _H - _PAD - (ms / y_max) * (_H - 2 * _PAD)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="12">',
        f'<text x="{_W / 2}" y="20" text-anchor="middle">{html.escape(title)}</text>',
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#333"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#333"/>',
    ]
    for i in range(5):
        ms = y_max * i / 4
        parts.append(f'<text x="{_PAD - 5}" y="{y(ms) + 4:.1f}" text-anchor="end">{ms:,.0f}</text>')
        parts.append(
            f'<text x="{x(x_max * i / 4):.1f}" y="{_H - _PAD + 16}" text-anchor="middle">'
            f"{x_max * i / 4:,.0f}s</text>"
        )
    parts.append(
        f'<text x="12" y="{_H / 2}" transform="rotate(-90 12 {_H / 2})">latency (ms)</text>'
    )
    for index, (name, colour) in enumerate(_COLOURS.items()):
        points = " ".join(f"{x(s.second + 0.5):.1f},{y(getattr(s, name)):.1f}" for s in series)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
        )
        label_x = _W - _PAD - 200 + index * 70
        parts.append(
            f'<text x="{label_x}" y="{_PAD - 10}" fill="{colour}">'
            f'{name.removesuffix("_ms")}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(series: Sequence[SecondStats], title: str) -> str:
    rows = "".join(
        f"<tr><td>{s.second}</td><td>{s.count}</td><td>{s.p50_ms:.1f}</td>"
        f"<td>{s.p99_ms:.1f}</td><td>{s.max_ms:.1f}</td></tr>"
        for s in series
    )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>\n"
        f"{render_svg(series, title)}\n"
        "<table border='1' cellpadding='3'><tr><th>second</th><th>requests</th>"
        f"<th>p50 ms</th><th>p99 ms</th><th>max ms</th></tr>{rows}</table>\n"
        "</body></html>\n"
    )
