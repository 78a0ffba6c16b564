"""Every Prometheus metric of the service, defined once (names are a public contract:
dashboards, alert rules and the README's catalogue refer to them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- api: the seed's three HTTP metrics, labelled by route template (never the raw path) ---
HTTP_REQUESTS = Counter(
    "http_requests_total", "Count of HTTP requests", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Histogram of response durations",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
# The route is known only once routing has run, so in-progress requests are counted by method.
HTTP_IN_PROGRESS = Gauge("http_requests_in_progress", "Number of in-progress requests", ["method"])

# --- api: business ---
ORDERS_CREATED = Counter("orders_created_total", "Orders accepted and committed", ["endpoint"])
IDEMPOTENT_REPLAYS = Counter(
    "orders_idempotent_replays_total", "Responses replayed for a repeated Idempotency-Key"
)
IDEMPOTENCY_CONFLICTS = Counter(
    "orders_idempotency_conflicts_total",
    "Idempotency-Key refused: reused with another body (422) or still in flight (409)",
    ["reason"],
)
VALIDATION_FAILURES = Counter(
    "orders_validation_failures_total", "Requests refused by validation", ["field"]
)
WRITE_BATCH_SIZE = Histogram(
    "orders_write_batch_size",
    "Orders committed per group-commit transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
WRITE_QUEUE_DEPTH = Gauge(
    "orders_write_queue_depth",
    "Order writes waiting for a group commit (bounded by WRITE_QUEUE_MAX)",
)
WRITES_REFUSED = Counter(
    "orders_write_refused_total",
    "Order writes answered 503 not_written before reaching the database",
    ["reason"],
)
DB_UNAVAILABLE = Counter(
    "db_unavailable_total", "Operations that failed because PostgreSQL was unreachable", ["op"]
)
DEPENDENCY_UP = Gauge(
    "dependency_up",
    "1 when the dependency answered the last readiness check, else 0",
    ["dependency"],
)
DB_POOL_SIZE = Gauge("db_pool_connections", "Connections open in the asyncpg pool")
DB_POOL_IN_USE = Gauge("db_pool_connections_in_use", "Connections checked out of the pool")
JWKS_REFRESHES = Counter(
    "auth_jwks_refresh_total",
    "Fetches of the issuer's signing keys (JWKS), by outcome: ok or failed",
    ["outcome"],
)

# --- api: lifecycle ---
CANCELLATIONS = Counter("orders_cancelled_total", "Orders moved to CANCELLED (POST /cancel)")
STOCK_UPDATES = Counter("stock_updates_total", "Stock levels set with PUT /stock/{item}")

# --- relay ---
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet published")
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished outbox row"
)
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Events acknowledged by the broker")
OUTBOX_PUBLISH_FAILURES = Counter(
    "outbox_publish_failures_total", "Publish attempts that failed (the rows are retried)"
)
OUTBOX_PUBLISH_LATENCY = Histogram(
    "outbox_publish_latency_seconds",
    "From the order's commit to the broker's acknowledgement",
    buckets=LATENCY_BUCKETS,
)
STATUS_EVENTS_PUBLISHED = Counter(
    "order_status_events_published_total",
    "Status events (order.confirmed|rejected|cancelled) acknowledged by the broker",
    ["type"],
)
PRODUCER_RECREATED = Counter(
    "relay_producer_recreated_total",
    "Kafka producers replaced after a publish timeout or a fatal producer error",
    ["reason"],
)
HOUSEKEEPING_DELETED = Counter(
    "housekeeping_deleted_rows_total", "Expired rows deleted by the relay's housekeeping", ["table"]
)
OUTBOX_BATCH_SIZE = Histogram(
    "outbox_publish_batch_size",
    "Rows published per relay batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000),
)

# --- relay and worker: their Kafka clients ---
# messaging.broker_errors says which aiokafka error is which kind.
KAFKA_ERROR_KINDS = (
    "not_enough_replicas",
    "no_leader",
    "coordinator_moving",
    "broker_unreachable",
    "request_timeout",
    "producer_id",
    "rebalance",
    "other",
)
KAFKA_CLIENT_ERRORS = Counter(
    "kafka_client_errors_total",
    "Broker errors the process's Kafka clients reported, retried ones included, by kind",
    ["error"],
)

# --- worker ---
WORKER_PRODUCER_RECREATED = Counter(
    "worker_producer_recreated_total",
    "The worker's (dead-letter) Kafka producers replaced after a fatal producer error",
    ["reason"],
)
EVENTS_PROCESSED = Counter("worker_events_processed_total", "Events applied (effect committed)")
EVENTS_DUPLICATE = Counter(
    "worker_events_duplicate_total", "Redelivered events skipped by the inbox"
)
EVENTS_FAILED = Counter("worker_events_failed_total", "Processing attempts that failed", ["reason"])
EVENTS_DEAD_LETTERED = Counter(
    "worker_events_dead_lettered_total", "Events sent to the DLQ", ["reason"]
)
EVENTS_SKIPPED = Counter(
    "worker_events_skipped_total",
    "Events read and deliberately not applied: an unknown type or an unsupported major version",
    ["reason"],
)
ORDERS_CONFIRMED = Counter(
    "orders_confirmed_total", "Orders the worker confirmed", ["stock"]
)  # stock="reserved" (a managed item) or "unmanaged"
ORDERS_REJECTED = Counter("orders_rejected_total", "Orders the worker rejected", ["reason"])
STOCK_RESERVED_UNITS = Counter(
    "stock_reserved_units_total", "Units moved from available to reserved by confirmations"
)
DLQ_TRIMMED = Counter(
    "worker_dead_letters_trimmed_total",
    "Dead letters sent without their value (too large for the DLQ, or no key and no value)",
)
DLQ_DROPPED = Counter(
    "worker_dead_letters_dropped_total",
    "Records that could not be dead-lettered even trimmed: skipped (logged with their offset)",
)
REBALANCES = Counter(
    "worker_rebalances_total", "Partition changes seen by this worker", ["change"]
)  # change="assigned" | "revoked"
CONSUMER_LAG_MESSAGES = Gauge(
    "worker_consumer_lag_messages", "Messages behind the partition's end", ["topic", "partition"]
)
CONSUMER_LAG_SECONDS = Gauge(
    "worker_consumer_lag_seconds",
    "Age of the last event processed on the partition (event time to now)",
    ["topic", "partition"],
)
END_TO_END_LATENCY = Histogram(
    "order_end_to_end_latency_seconds",
    "From the order's creation to its confirmation by the worker",
    buckets=LATENCY_BUCKETS,
)

# The label values these counters can take, exposed at 0 from the start: a panel or an alert
# over them answers "none yet" instead of "no data", and `increase()` sees the first one.
_KNOWN_LABELS: tuple[tuple[Counter, str, tuple[str, ...]], ...] = (
    (PRODUCER_RECREATED, "reason", ("timeout", "producer_id")),
    (WORKER_PRODUCER_RECREATED, "reason", ("timeout", "producer_id")),
    (KAFKA_CLIENT_ERRORS, "error", KAFKA_ERROR_KINDS),
    (HOUSEKEEPING_DELETED, "table", ("outbox", "idempotency_keys", "inbox")),
    (EVENTS_SKIPPED, "reason", ("unknown_type", "unsupported_version")),
    (REBALANCES, "change", ("assigned", "revoked")),
)
for _counter, _label, _values in _KNOWN_LABELS:
    for _value in _values:
        _counter.labels(**{_label: _value})
