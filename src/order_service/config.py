"""One typed settings object, read from the environment and `.env` (the seed's names kept)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from order_service.persistence.dsn import parse_dsn

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal[
    "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM"
]


class Settings(BaseSettings):
    """Every process reads this once, through `get_settings()`; nothing else reads the env."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Literal["dev", "test", "prod"] = "dev"
    service_name: str = "order-service"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    postgres_dsn: str = "postgresql+asyncpg://postgres:postgres@localhost:5432/orderdb"
    db_pool_min_size: int = Field(default=2, ge=0)
    db_pool_max_size: int = Field(default=10, ge=1)
    db_connect_timeout_s: float = Field(default=3.0, gt=0)
    db_statement_timeout_ms: int = Field(default=5000, gt=0)

    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_order_topic: str = "orders.created"
    kafka_status_topic: str = "orders.status"
    kafka_dlq_topic: str = ""
    kafka_topic_partitions: int = Field(default=3, ge=1)
    # Unset: min(3, brokers in the cluster), so acks=all means that many disks (DESIGN §2).
    kafka_topic_replication_factor: int | None = Field(default=None, ge=1)
    # Unset: replication factor - 1, at least 1 and at most 2 (one broker may be down).
    kafka_topic_min_insync_replicas: int | None = Field(default=None, ge=1)
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism | None = None
    kafka_sasl_username: str | None = None
    # A secret: never in a repr, a log line or an error message.
    kafka_sasl_password: SecretStr | None = None
    # PEM file of the CA(s) that signed the brokers' certificates (a private cluster); unset:
    # the system's trusted CAs (MSK's certificates are signed by a public CA).
    kafka_ssl_cafile: str | None = None
    kafka_enable_idempotence: bool = True
    kafka_consumer_group: str = "order-processor"
    # The producers' batching (relay and DLQ): how long a batch may wait for more records, how
    # large it may grow before compression, and the codec (bench/results.md: what each bought).
    # 512 KiB holds a whole relay batch per partition: aiokafka sends one batch per partition
    # per request and waits for it, so 16 KiB batches cost a broker round trip per 25 events.
    # zstd: a record of ours is 564 bytes plain, 37 in a zstd batch, for the same CPU here.
    kafka_linger_ms: int = Field(default=2, ge=0)
    kafka_batch_max_bytes: int = Field(default=512 * 1024, ge=1024, le=1024 * 1024)
    kafka_compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    aws_region: str | None = None

    request_timeout_s: float = Field(default=5.0, gt=0)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    idempotency_ttl_hours: int = Field(default=24, ge=24)
    write_batch_max: int = Field(default=256, ge=1)
    # Requests waiting for the group commit; beyond this a POST gets 503 at once (back-pressure).
    write_queue_max: int = Field(default=2048, ge=1)

    relay_batch_size: int = Field(default=500, ge=1)
    relay_poll_interval_s: float = Field(default=1.0, gt=0)
    # Lanes one claim may lock (of 64): all of them, so one relay drains every key's events in
    # one batch (make bench: accepted -> CONFIRMED p99 ~200 ms instead of ~360-530 ms with 16);
    # with several relays the try-locks share the lanes between them.
    relay_lanes: int = Field(default=64, ge=1, le=64)
    # A publish (metadata, queueing, every ack) that takes longer fails: its rows roll back and
    # the producer is replaced. Must stay below the claim's idle-in-transaction timeout.
    relay_publish_timeout_s: float = Field(default=10.0, gt=0)
    outbox_retention_hours: int = Field(default=24, ge=1)
    # Event ids the worker keeps to recognise redeliveries: must exceed the topic's retention
    # (Kafka's and MSK's default is 7 days), or a replay from the start applies events twice.
    inbox_retention_hours: int = Field(default=336, ge=1)

    worker_max_attempts: int = Field(default=3, ge=1)
    worker_batch_size: int = Field(default=500, ge=1)
    retry_initial_backoff_s: float = Field(default=0.1, gt=0)
    retry_max_backoff_s: float = Field(default=5.0, gt=0)

    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    # The api keeps serving this long after SIGTERM, /readyz already 503, before it stops
    # accepting: for load balancers that only health-check (with a preStop pause, leave 0).
    shutdown_drain_s: float = Field(default=0.0, ge=0)
    startup_timeout_s: float = Field(default=30.0, gt=0)

    auth_enabled: bool = False
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_jwks_url: str | None = None
    # The whole fetch of the key set (connect, request, body), on the request path only when
    # the cache cannot answer (cold start, unknown kid, keys past AUTH_JWKS_MAX_STALE_S).
    auth_jwks_fetch_timeout_s: float = Field(default=3.0, gt=0)
    # Keys older than this are refreshed in the background while still being served.
    auth_jwks_max_age_s: float = Field(default=600.0, gt=0)
    # How long keys stay in service while every refresh fails (issuer down): long enough to
    # ride out an outage, short enough that a key the issuer revoked stops being trusted.
    auth_jwks_max_stale_s: float = Field(default=6 * 3600.0, gt=0)

    @property
    def dlq_topic(self) -> str:
        return self.kafka_dlq_topic or f"{self.kafka_order_topic}.dlq"

    @property
    def asyncpg_dsn(self) -> str:
        """asyncpg speaks plain `postgresql://`; the seed's DSN carries SQLAlchemy's driver tag."""
        scheme, sep, rest = self.postgres_dsn.partition("://")
        return f"postgresql{sep}{rest}" if scheme.startswith("postgres") else self.postgres_dsn

    @field_validator("postgres_dsn")
    @classmethod
    def _readable_dsn(cls, value: str) -> str:
        parse_dsn(value)  # one host or several (libpq syntax); the message never has the password
        return value

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.auth_enabled and not (
            self.auth_issuer and self.auth_audience and self.auth_jwks_url
        ):
            raise ValueError(
                "AUTH_ENABLED needs AUTH_ISSUER, AUTH_AUDIENCE and AUTH_JWKS_URL to be set"
            )
        if self.auth_jwks_max_stale_s <= self.auth_jwks_max_age_s:
            raise ValueError("AUTH_JWKS_MAX_STALE_S must exceed AUTH_JWKS_MAX_AGE_S")
        if self.environment == "prod" and not self.auth_enabled:
            raise ValueError("AUTH_ENABLED must be true when ENVIRONMENT=prod")
        if (
            self.kafka_topic_replication_factor is not None
            and self.kafka_topic_min_insync_replicas is not None
            and self.kafka_topic_min_insync_replicas > self.kafka_topic_replication_factor
        ):
            raise ValueError(
                "KAFKA_TOPIC_MIN_INSYNC_REPLICAS must not exceed KAFKA_TOPIC_REPLICATION_FACTOR"
            )
        self._check_kafka_security()
        if self.relay_publish_timeout_s * 1000 >= self.db_statement_timeout_ms * 6:
            raise ValueError(
                "RELAY_PUBLISH_TIMEOUT_S must stay below 6 x DB_STATEMENT_TIMEOUT_MS "
                "(the claiming transaction's idle-in-transaction timeout)"
            )
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
        return self

    def _check_kafka_security(self) -> None:
        # The password is checked where a Kafka client is built (kafka_security): `migrate`
        # and the chart's migration hook read these settings without the Kafka secret.
        protocol, mechanism = self.kafka_security_protocol, self.kafka_sasl_mechanism
        sasl = protocol.startswith("SASL_")
        if sasl and mechanism is None:
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM")
        if mechanism == "OAUTHBEARER":  # aiokafka needs a token provider: MSK IAM's is ours
            raise ValueError(
                "KAFKA_SASL_MECHANISM=OAUTHBEARER has no token provider here: "
                "KAFKA_SASL_MECHANISM=AWS_MSK_IAM signs its tokens with the pod's IAM role"
            )
        if mechanism is not None and not sasl:
            raise ValueError(
                f"KAFKA_SASL_MECHANISM={mechanism} needs KAFKA_SECURITY_PROTOCOL=SASL_SSL "
                "(or SASL_PLAINTEXT)"
            )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
