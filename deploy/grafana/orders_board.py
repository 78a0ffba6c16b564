"""The orders dashboard: API throughput, the orders' lifecycle, the write path, the outbox."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard
from panels import (
    RATE,
    Panel,
    dashboard,
    mean,
    quantiles,
    row,
    target,
    thresholds,
    timeseries,
)


def orders_outbox() -> Dashboard:
    age_limits = thresholds((None, "green"), (60, "orange"), (600, "red"))
    panels: list[Panel] = [
        row("Orders"),
        timeseries(
            "Orders created / s",
            [target(f"sum by (endpoint) (rate(orders_created_total[{RATE}]))", "{{endpoint}}")],
            unit="ops",
        ),
        timeseries(
            "Idempotency: replays and conflicts",
            [
                target(f"sum(rate(orders_idempotent_replays_total[{RATE}]))", "replayed"),
                target(
                    f"sum by (reason) (rate(orders_idempotency_conflicts_total[{RATE}]))",
                    "conflict {{reason}}",
                ),
            ],
            unit="ops",
        ),
        timeseries(
            "Validation failures by field",
            [
                target(
                    f"sum by (field) (rate(orders_validation_failures_total[{RATE}]))", "{{field}}"
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Orders per group-commit transaction",
            [
                target(mean("orders_write_batch_size"), "mean"),
                *quantiles("orders_write_batch_size", qs=(0.99,)),
            ],
        ),
        *lifecycle_panels(),
        *write_path_panels(),
        row("Outbox"),
        timeseries("Outbox backlog", [target("sum(outbox_backlog)", "unpublished rows")]),
        timeseries(
            "Oldest unpublished event age",
            [target("max(outbox_oldest_unpublished_age_seconds)", "oldest")],
            unit="s",
            limits=age_limits,
            description="Alert OutboxOldestEventStale: 60 s warns, 600 s pages.",
        ),
        timeseries(
            "Publish rate and failures",
            [
                target(f"sum(rate(outbox_published_total[{RATE}]))", "published"),
                target(f"sum(rate(outbox_publish_failures_total[{RATE}]))", "failed"),
            ],
            unit="ops",
        ),
        timeseries(
            "Publish latency (commit to broker ack)",
            quantiles("outbox_publish_latency_seconds"),
            unit="s",
        ),
        timeseries(
            "Rows per relay batch",
            [
                target(mean("outbox_publish_batch_size"), "mean"),
                *quantiles("outbox_publish_batch_size", qs=(0.99,)),
            ],
        ),
        timeseries(
            "Housekeeping: expired rows deleted",
            [
                target(
                    f"sum by (table) (increase(housekeeping_deleted_rows_total[{RATE}]))",
                    "{{table}}",
                )
            ],
            description="Published outbox rows, idempotency keys and inbox rows past their "
            "retention (OUTBOX_RETENTION_HOURS, IDEMPOTENCY_TTL_HOURS, INBOX_RETENTION_HOURS), "
            "deleted by the relay in bounded batches. Flat while the tables grow: "
            "housekeeping is not keeping up.",
        ),
    ]
    return dashboard(
        "order-service-orders",
        "Order service / Orders and outbox",
        panels,
        description="Business throughput of the API, the orders' lifecycle, the write path's "
        "back-pressure and the transactional outbox.",
    )


def lifecycle_panels() -> list[Panel]:
    rejected, confirmed = "orders_rejected_total", "orders_confirmed_total"
    # The alert's ratio; `or vector(0)` on both counts gives 0% before the first rejection
    # (and with no confirmation yet, 100%) instead of "no data".
    decided = (
        f"(sum(increase({rejected}[10m])) or vector(0))"
        f" / ((sum(increase({rejected}[10m])) or vector(0))"
        f" + (sum(increase({confirmed}[10m])) or vector(0)))"
    )
    return [
        row("Lifecycle"),
        timeseries(
            "Decisions: confirmed and rejected",
            [
                target(f"sum by (stock) (rate({confirmed}[{RATE}]))", "confirmed ({{stock}})"),
                target(f"sum by (reason) (rate({rejected}[{RATE}]))", "rejected {{reason}}"),
            ],
            unit="ops",
            description="The worker's decisions: confirmed with units reserved (stock-managed "
            "item) or unmanaged, rejected by reason.",
        ),
        timeseries(
            "Rejected share of decided orders (10m)",
            [target(decided, "rejected / decided")],
            unit="percentunit",
            limits=thresholds((None, "green"), (0.25, "red")),
            description="Alert OrderRejectionRateHigh: above 25% with at least 20 rejections "
            "in 10 minutes, for 5 minutes.",
        ),
        timeseries(
            "Cancellations",
            [target(f"sum(rate(orders_cancelled_total[{RATE}]))", "cancelled")],
            unit="ops",
            width=8,
        ),
        timeseries(
            "Status events published by type",
            [
                target(
                    f"sum by (type) (rate(order_status_events_published_total[{RATE}]))",
                    "{{type}}",
                )
            ],
            unit="ops",
            width=8,
            description="order.confirmed | rejected | cancelled on the status topic, "
            "acknowledged by the broker (relay).",
        ),
        timeseries(
            "Stock: units reserved and levels set",
            [
                target(f"sum(rate(stock_reserved_units_total[{RATE}]))", "units reserved / s"),
                target(f"sum(rate(stock_updates_total[{RATE}]))", "PUT /stock / s"),
            ],
            width=8,
        ),
    ]


def write_path_panels() -> list[Panel]:
    return [
        row("Write path and dependencies"),
        timeseries(
            "Write queue depth",
            # Every process exposes the gauge (one registry); only the api's moves.
            [
                target(
                    'max by (instance) (orders_write_queue_depth{job="order-service-api"})',
                    "{{instance}}",
                )
            ],
            width=8,
            description="Order writes waiting for a group commit, per api process; beyond "
            "WRITE_QUEUE_MAX a write is refused at once (queue_full).",
        ),
        timeseries(
            "Writes refused by back-pressure",
            [target(f"sum by (reason) (rate(orders_write_refused_total[{RATE}]))", "{{reason}}")],
            unit="ops",
            width=8,
            description="Answered 503 not_written before reaching the database. Alert "
            "OrderWritesRefused: above 1% of writes for 10 minutes.",
        ),
        timeseries(
            "Dependencies (readiness)",
            [target("min by (job, dependency) (dependency_up)", "{{job}} → {{dependency}}")],
            width=8,
            description="1 when the dependency answered the process's last /readyz check. The "
            "api is ready on PostgreSQL alone; the relay and the worker need both.",
        ),
    ]
