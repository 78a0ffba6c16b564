"""Latency under rising load as an SVG: p50 and p99 (log scale) against orders/s, one point per
level of connections (labelled), so the knee — where latency climbs and throughput stops — shows."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from bench.sweep import Level

_W, _H, _PAD = 760, 420, 60
_SERIES = {"p50": "#1f77b4", "p99": "#d62728"}


def _nice(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above `value` (an axis' end)."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** (len(str(int(value))) - 1)
    for step in (1.0, 2.0, 5.0, 10.0):
        if step * scale >= value:
            return step * scale
    return 10.0 * scale


def render_svg(levels: Sequence[Level], title: str) -> str:
    x_max = _nice(max((lv.measured.ok_per_s for lv in levels), default=1.0) * 1.1)
    latencies = [lv.measured.p50_s * 1000 for lv in levels]
    latencies += [lv.measured.p99_s * 1000 for lv in levels]
    low = math.floor(math.log10(max(0.1, min(latencies, default=1.0))))
    high = max(low + 1, math.ceil(math.log10(max(latencies, default=10.0))))

    def x(rate: float) -> float:
        return _PAD + rate / x_max * (_W - 2 * _PAD)

    def y(ms: float) -> float:
        share = (math.log10(max(ms, 10.0**low)) - low) / (high - low)
        return _H - _PAD - share * (_H - 2 * _PAD)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="22" text-anchor="middle" font-size="14">'
        f"{html.escape(title)}</text>",
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#333"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#333"/>',
        f'<text x="{_W / 2}" y="{_H - 15}" text-anchor="middle">orders/s (2xx)</text>',
        f'<text x="16" y="{_H / 2}" transform="rotate(-90 16 {_H / 2})" '
        'text-anchor="middle">latency (ms, log scale)</text>',
    ]
    for power in range(low, high + 1):
        ms = 10.0**power
        parts.append(f'<text x="{_PAD - 6}" y="{y(ms) + 4:.1f}" text-anchor="end">{ms:g}</text>')
        parts.append(
            f'<line x1="{_PAD}" y1="{y(ms):.1f}" x2="{_W - _PAD}" y2="{y(ms):.1f}" '
            'stroke="#eee"/>'
        )
    for i in range(6):
        rate = x_max * i / 5
        parts.append(
            f'<text x="{x(rate):.1f}" y="{_H - _PAD + 18}" text-anchor="middle">{rate:,.0f}</text>'
        )
    for index, (name, colour) in enumerate(_SERIES.items()):
        points = [
            (x(lv.measured.ok_per_s), y(getattr(lv.measured, f"{name}_s") * 1000), lv)
            for lv in levels
        ]
        line = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}"/>')
        for px, py, level in points:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}"/>')
            if name == "p99":
                parts.append(
                    f'<text x="{px + 6:.1f}" y="{py - 6:.1f}">{level.connections} conn.</text>'
                )
        parts.append(
            f'<text x="{_PAD + 10 + index * 60}" y="{_PAD - 10}" fill="{colour}">{name}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_svg(path: Path, levels: Sequence[Level], title: str) -> Path:
    path.write_text(render_svg(levels, title), encoding="utf-8")
    return path
