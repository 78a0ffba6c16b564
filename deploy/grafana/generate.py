"""Generates the Grafana dashboards of the order service with Grafana's foundation SDK.

Run `.venv/bin/python deploy/grafana/generate.py` after editing and commit the JSON it writes to
deploy/grafana/dashboards/; `--check` fails when the committed JSON is stale (a test runs the
same comparison). The SDK (`grafana-foundation-sdk`, a dev dependency) types every panel
option against the Grafana release it names; keys are written sorted so that the files only
change when a board does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    Dashboard,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from infra_boards import kafka, postgres
from orders_board import orders_outbox
from panels import (
    API,
    DATASOURCE,
    ERROR_BUDGET,
    RATE,
    SLO_TARGET,
    Panel,
    QueryVariable,
    dashboard,
    error_ratio,
    mean,
    quantiles,
    row,
    stat,
    target,
    thresholds,
    timeseries,
)

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
ENCODER = JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False)


def red() -> Dashboard:
    sel = f'{API},route=~"$route"'
    route_var = (
        QueryVariable("route")
        .label("Route")
        .datasource(DATASOURCE)
        .query({"query": "label_values(http_requests_total, route)", "refId": "route"})
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .current(VariableOption(selected=True, text=["All"], value=["$__all"]))
    )
    panels: list[Panel] = [
        stat(
            "Requests / s",
            f"sum(rate(http_requests_total{{{sel}}}[5m]))",
            unit="reqps",
            limits=thresholds((None, "blue")),
        ),
        stat(
            "5xx ratio (5m)",
            error_ratio("5m", sel),
            unit="percentunit",
            limits=thresholds((None, "green"), (0.001, "orange"), (0.01, "red")),
        ),
        stat(
            "p99 latency (5m)",
            "histogram_quantile(0.99, sum by (le) "
            f"(rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))",
            unit="s",
            limits=thresholds((None, "green"), (0.25, "orange"), (0.5, "red")),
        ),
        stat(
            "In progress",
            f"sum(http_requests_in_progress{{{sel}}})",
            unit="short",
            limits=thresholds((None, "blue")),
        ),
        row("FastAPI HTTP"),
        timeseries(
            "Request rate by route and status",
            [
                target(
                    f"sum by (method, route, status) (rate(http_requests_total{{{sel}}}[{RATE}]))",
                    "{{method}} {{route}} {{status}}",
                )
            ],
            unit="reqps",
        ),
        timeseries(
            "Error ratio",
            [
                target(error_ratio(RATE, sel), "5xx"),
                target(
                    f'(sum(rate(http_requests_total{{status=~"4..",{sel}}}[{RATE}])) or vector(0))'
                    f" / sum(rate(http_requests_total{{{sel}}}[{RATE}]))",
                    "4xx",
                ),
            ],
            unit="percentunit",
            limits=thresholds((None, "green"), (ERROR_BUDGET, "red")),
        ),
        timeseries(
            "Latency p50 / p90 / p99 by route",
            quantiles("http_request_duration_seconds", "route", sel),
            unit="s",
            description="Exemplars link a slow request to its trace in Jaeger.",
            width=24,
        ),
        timeseries(
            "Requests in progress",
            [
                target(
                    f"sum by (method, route) (http_requests_in_progress{{{sel}}})",
                    "{{method}} {{route}}",
                )
            ],
        ),
        timeseries(
            "Average response time by route",
            [
                target(
                    mean("http_request_duration_seconds", sel, by="route"),
                    "{{route}}",
                )
            ],
            unit="s",
        ),
    ]
    return dashboard(
        "order-service-red",
        "Order service / HTTP (RED)",
        panels,
        variables=[route_var],
        description="Rate, errors and duration of the order API (the seed's "
        "FastAPI HTTP panel).",
    )


def slo() -> Dashboard:
    budget = ERROR_BUDGET
    burn_limits = thresholds((None, "green"), (6, "orange"), (14.4, "red"))
    panels: list[Panel] = [
        stat(
            "Availability (30 days)",
            f"1 - ({error_ratio('30d')})",
            unit="percentunit",
            limits=thresholds((None, "red"), (SLO_TARGET, "green")),
            description="Share of API requests without a 5xx; objective 99.9%.",
        ),
        stat(
            "Error budget remaining (30 days)",
            f"1 - ({error_ratio('30d')}) / {budget:g}",
            unit="percentunit",
            limits=thresholds((None, "red"), (0.25, "orange"), (0.5, "green")),
        ),
        stat(
            "Availability (selected range)",
            f"1 - ({error_ratio('$__range')})",
            unit="percentunit",
            limits=thresholds((None, "red"), (SLO_TARGET, "green")),
        ),
        stat(
            "Latency SLI: requests under 500 ms (1h)",
            f'sum(rate(http_request_duration_seconds_bucket{{le="0.5",{API}}}[1h]))'
            f" / sum(rate(http_request_duration_seconds_count{{{API}}}[1h]))",
            unit="percentunit",
            limits=thresholds((None, "red"), (0.99, "green")),
        ),
        row("Burn rate (error ratio / budget)"),
        timeseries(
            "Fast burn: 1h and 5m windows (pages above 14.4)",
            [
                target(f"slo:http_errors_per_request:ratio_rate1h / {budget:g}", "1h"),
                target(f"slo:http_errors_per_request:ratio_rate5m / {budget:g}", "5m"),
            ],
            limits=burn_limits,
        ),
        timeseries(
            "Slow burn: 6h and 30m windows (tickets above 6)",
            [
                target(f"slo:http_errors_per_request:ratio_rate6h / {budget:g}", "6h"),
                target(f"slo:http_errors_per_request:ratio_rate30m / {budget:g}", "30m"),
            ],
            limits=burn_limits,
        ),
        timeseries(
            "Error ratio (recorded)",
            [
                target("slo:http_errors_per_request:ratio_rate5m", "5m"),
                target("slo:http_errors_per_request:ratio_rate1h", "1h"),
            ],
            unit="percentunit",
            limits=thresholds((None, "green"), (budget, "red")),
        ),
        timeseries(
            "p99 latency by route (recorded)",
            [target("route:http_request_duration_seconds:p99_rate5m", "{{route}}")],
            unit="s",
            limits=thresholds((None, "green"), (0.5, "red")),
        ),
    ]
    return dashboard(
        "order-service-slo",
        "Order service / SLO",
        panels,
        time_from="now-24h",
        description="99.9% availability objective over 30 days; multi-window, "
        "multi-burn-rate alerting as in the Google SRE workbook.",
    )


def render_all() -> dict[str, Dashboard]:
    """Every dashboard keyed by its file name under deploy/grafana/dashboards/."""
    boards = [red(), orders_outbox(), kafka(), postgres(), slo()]
    return {f"{board.uid}.json": board for board in boards}


def serialise(board: Dashboard) -> str:
    return ENCODER.encode(board) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed JSON is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, board in render_all().items():
        path = OUT_DIR / name
        text = serialise(board)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale dashboards, run deploy/grafana/generate.py: {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
