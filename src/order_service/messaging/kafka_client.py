"""Kafka client construction from Settings: security (TLS, SASL, AWS MSK IAM), producers, topics."""

from __future__ import annotations

import contextlib
import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from order_service.config import Settings


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """SASL/OAUTHBEARER tokens signed with the pod's IAM role (IRSA) for Amazon MSK."""

    def __init__(self, region: str) -> None:
        self._region = region

    async def token(self) -> str:
        import asyncio

        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        token, _expiry_ms = await asyncio.to_thread(
            MSKAuthTokenProvider.generate_auth_token, self._region
        )
        return str(token)


def client_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.service_name,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context()
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == "AWS_MSK_IAM":
        if not settings.aws_region:
            raise ValueError("KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs AWS_REGION")
        options["sasl_mechanism"] = "OAUTHBEARER"
        options["sasl_oauth_token_provider"] = MskIamTokenProvider(settings.aws_region)
    elif mechanism is not None:
        options["sasl_mechanism"] = mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def create_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """acks=all always: a row is marked published only after every in-sync replica has it."""
    options: dict[str, Any] = {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": 2,
        "request_timeout_ms": 10_000,
        "retry_backoff_ms": 200,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def create_consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        **client_options(settings),
        "group_id": settings.kafka_consumer_group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        # The broker answers a fetch as soon as one byte is there, or after this long: keep it
        # short so a quiet partition's next event is not held back (end-to-end latency).
        "fetch_max_wait_ms": 100,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def ensure_topics(settings: Settings) -> None:
    """Create the order topic and its DLQ if missing (no-op where they exist)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(settings.kafka_order_topic, settings.kafka_topic_partitions, 1),
            NewTopic(settings.dlq_topic, 1, 1),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()
