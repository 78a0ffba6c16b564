"""The dashboards over the pipeline's infrastructure: Kafka and PostgreSQL."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard
from panels import (
    DLQ,
    NOT_DLQ,
    RATE,
    Panel,
    dashboard,
    quantiles,
    row,
    stat,
    target,
    thresholds,
    timeseries,
)


def kafka() -> Dashboard:
    lag_limits = thresholds((None, "green"), (1000, "red"))
    panels: list[Panel] = [
        row("Consumer lag"),
        timeseries(
            "Worker lag (messages) per partition",
            [
                target(
                    "max by (topic, partition) (worker_consumer_lag_messages)",
                    "{{topic}}/{{partition}}",
                )
            ],
        ),
        timeseries(
            "Worker lag (seconds) per partition",
            [
                target(
                    "max by (topic, partition) (worker_consumer_lag_seconds)",
                    "{{topic}}/{{partition}}",
                )
            ],
            unit="s",
            limits=thresholds((None, "green"), (120, "red")),
        ),
        timeseries(
            "Consumer-group lag (kafka-exporter)",
            [
                target(
                    "sum by (consumergroup, topic)"
                    f" (clamp_min(kafka_consumergroup_lag{{{NOT_DLQ}}}, 0))",
                    "{{consumergroup}} {{topic}}",
                )
            ],
            limits=lag_limits,
            description="Negative exporter values (no committed offset yet) count as 0.",
        ),
        timeseries(
            "End-to-end latency (order created to confirmed)",
            quantiles("order_end_to_end_latency_seconds"),
            unit="s",
        ),
        row("Throughput"),
        timeseries(
            "Events published, processed and skipped",
            [
                target(f"sum(rate(outbox_published_total[{RATE}]))", "published (relay)"),
                target(f"sum(rate(worker_events_processed_total[{RATE}]))", "processed (worker)"),
                target(f"sum(rate(worker_events_duplicate_total[{RATE}]))", "duplicates skipped"),
            ],
            unit="ops",
        ),
        timeseries(
            "Messages in per topic (kafka-exporter)",
            [
                target(
                    f"sum by (topic) (rate(kafka_topic_partition_current_offset[{RATE}]))",
                    "{{topic}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Messages retained per topic (kafka-exporter)",
            [
                target(
                    "sum by (topic) (kafka_topic_partition_current_offset"
                    " - kafka_topic_partition_oldest_offset)",
                    "{{topic}}",
                )
            ],
        ),
        timeseries(
            "Processing failures by reason",
            [target(f"sum by (reason) (rate(worker_events_failed_total[{RATE}]))", "{{reason}}")],
            unit="ops",
        ),
        row("Dead-letter queue"),
        timeseries(
            "Dead-lettered events by reason",
            [
                target(
                    f"sum by (reason) (rate(worker_events_dead_lettered_total[{RATE}]))",
                    "{{reason}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "DLQ topic growth (kafka-exporter)",
            [
                target(
                    "sum by (topic)"
                    f" (delta(kafka_topic_partition_current_offset{{{DLQ}}}[{RATE}]))",
                    "{{topic}}",
                )
            ],
        ),
        timeseries(
            "Dead letters trimmed or dropped",
            [
                target(f"sum(increase(worker_dead_letters_trimmed_total[{RATE}]))", "trimmed"),
                target(f"sum(increase(worker_dead_letters_dropped_total[{RATE}]))", "dropped"),
            ],
            width=24,
            description="Trimmed: dead-lettered without the value (too large for the DLQ, or "
            "neither key nor value), with dlq.original.* pointing at the record. Dropped: not "
            "even a trimmed copy could be sent; the record is skipped and logged with its "
            "offset (alert WorkerDeadLetterDropped).",
        ),
        row("Recovery"),
        timeseries(
            "Consumer-group rebalances",
            [
                target(
                    f"sum by (change) (increase(worker_rebalances_total[{RATE}]))",
                    "partitions {{change}}",
                )
            ],
            width=8,
            description="Partition changes seen by the workers: a deploy, a scale-out, a "
            "crashed or stalled worker. Steady revocations without deploys mean a worker "
            "keeps leaving the group.",
        ),
        timeseries(
            "Events skipped (unknown type, newer major)",
            [
                target(
                    f"sum by (reason) (increase(worker_events_skipped_total[{RATE}]))",
                    "{{reason}}",
                )
            ],
            width=8,
            description="Read and deliberately not applied (docs/schema-evolution.md): a "
            "producer ahead of this worker. Orders stay PENDING until a worker that knows "
            "the version runs.",
        ),
        timeseries(
            "Relay producers replaced",
            [
                target(
                    f"sum by (reason) (increase(relay_producer_recreated_total[{RATE}]))",
                    "{{reason}}",
                )
            ],
            width=8,
            description="A publish that timed out (RELAY_PUBLISH_TIMEOUT_S) or a producer-id "
            "or sequence error: the relay replaced its producer and retried the batch.",
        ),
    ]
    return dashboard(
        "order-service-kafka",
        "Order service / Kafka",
        panels,
        description="Consumer lag in messages and seconds, throughput and the DLQ.",
    )


def postgres() -> Dashboard:
    panels: list[Panel] = [
        stat(
            "PostgreSQL up",
            "max(pg_up)",
            unit="bool_yes_no",
            limits=thresholds((None, "red"), (1, "green")),
        ),
        stat(
            "Database size",
            "sum(pg_database_size_bytes)",
            unit="bytes",
            limits=thresholds((None, "blue")),
        ),
        stat(
            "Server connections",
            "sum(pg_stat_activity_count)",
            unit="short",
            limits=thresholds((None, "blue")),
        ),
        stat(
            "Pool utilisation",
            "sum(db_pool_connections_in_use) / sum(db_pool_connections)",
            unit="percentunit",
            limits=thresholds((None, "green"), (0.8, "orange"), (0.95, "red")),
        ),
        row("Server (postgres-exporter)"),
        timeseries(
            "Database size",
            [target("sum by (datname) (pg_database_size_bytes)", "{{datname}}")],
            unit="bytes",
        ),
        timeseries(
            "Connections by state",
            [target("sum by (datname, state) (pg_stat_activity_count)", "{{datname}} {{state}}")],
        ),
        row("Client pools (order service)"),
        timeseries(
            "Pool connections open and in use",
            [
                target("sum by (job) (db_pool_connections)", "{{job}} open"),
                target("sum by (job) (db_pool_connections_in_use)", "{{job}} in use"),
            ],
        ),
        timeseries(
            "Operations failed: database unreachable",
            [
                target(
                    # `or on () vector(0)`: the counter only appears after the first outage.
                    f"sum by (op) (rate(db_unavailable_total[{RATE}])) or on () vector(0)",
                    "{{op}}",
                )
            ],
            unit="ops",
        ),
    ]
    return dashboard(
        "order-service-postgres",
        "Order service / PostgreSQL",
        panels,
        description="Server health from postgres-exporter and the service's pools.",
    )
