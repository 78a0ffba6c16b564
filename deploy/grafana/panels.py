"""The boards' panel styles on Grafana's foundation SDK, and the PromQL snippets they share."""

from __future__ import annotations

from collections.abc import Sequence
from string import ascii_uppercase

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as board_builder
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.builders import stat as stat_panel
from grafana_foundation_sdk.builders import timeseries as timeseries_panel
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as board_model

Query = prometheus.Dataquery
Limits = board_builder.ThresholdsConfig
row = board_builder.Row  # open (not collapsed), panels after it until the next row
Panel = board_builder.Row | stat_panel.Panel | timeseries_panel.Panel
QueryVariable = board_builder.QueryVariable

DATASOURCE = board_model.DataSourceRef(type_val="prometheus", uid="prometheus")
TAG = "order-service"
RATE = "$__rate_interval"
# Health probes and scrapes would drown the API's real traffic in every HTTP panel.
API = 'route!~"/metrics|/healthz|/readyz"'
DLQ = 'topic=~".+\\\\.dlq"'
NOT_DLQ = 'topic!~".+\\\\.dlq"'
SLO_TARGET = 0.999
ERROR_BUDGET = 0.001  # 1 - SLO_TARGET, written out to keep float noise out of the JSON


def target(expr: str, legend: str = "", *, exemplar: bool = False, instant: bool = False) -> Query:
    query = Query().datasource(DATASOURCE).expr(expr).legend_format(legend or "__auto")
    return (query.instant() if instant else query.range()).exemplar(exemplar)


def thresholds(*steps: tuple[float | None, str]) -> Limits:
    return (
        Limits()
        .mode(board_model.ThresholdsMode.ABSOLUTE)
        .steps([board_model.Threshold(value=v, color=c) for v, c in steps])
    )


def lettered(queries: Sequence[Query]) -> list[Builder[Dataquery]]:
    return [query.ref_id(ref) for ref, query in zip(ascii_uppercase, queries, strict=False)]


def timeseries(
    title: str,
    targets: Sequence[Query],
    *,
    unit: str = "short",
    description: str = "",
    width: int = 12,
    limits: Limits | None = None,
) -> timeseries_panel.Panel:
    panel = (
        timeseries_panel.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .targets(lettered(targets))
        .unit(unit)
        .min(0)
        .draw_style(common.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            common_builder.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .span(width)
        .height(8)
    )
    if description:
        panel.description(description)
    if limits:
        dashed = common_builder.GraphThresholdsStyleConfig().mode(
            common.GraphThresholdsStyleMode.DASHED
        )
        panel.thresholds(limits).thresholds_style(dashed)
    return panel


def stat(
    title: str, expr: str, *, unit: str, limits: Limits, description: str = "", width: int = 6
) -> stat_panel.Panel:
    panel = (
        stat_panel.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .targets(lettered([target(expr, title, instant=True)]))
        .unit(unit)
        .thresholds(limits)
        .reduce_options(
            common_builder.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)
        )
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE)
        .span(width)
        .height(4)
    )
    if description:
        panel.description(description)
    return panel


def dashboard(
    uid: str,
    title: str,
    panels: Sequence[Panel],
    *,
    variables: Sequence[QueryVariable] = (),
    time_from: str = "now-1h",
    description: str = "",
) -> board_model.Dashboard:
    """The SDK flows the panels left to right in Grafana's 24 columns; ids count from 1.

    The SDK starts a new line once a line is full, not before a panel that would overflow it:
    each line of panels fills the 24 columns exactly (test_grafana_dashboards: none spills).
    """
    board = (
        board_builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .readonly()
        .tooltip(board_model.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .version(1)
        .time(time_from, "now")
        .annotations([])
        .link(
            board_builder.DashboardLink("Order service")
            .type(board_model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .keep_time(True)
        )
        .variables(list(variables))
    )
    for panel_id, panel in enumerate(panels, start=1):
        if isinstance(panel, board_builder.Row):
            board.with_row(panel.id(panel_id))
        else:
            board.with_panel(panel.id(panel_id))
    return board.build()


def quantiles(
    metric: str, by: str = "", selector: str = "", qs: tuple[float, ...] = (0.5, 0.9, 0.99)
) -> list[Query]:
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
