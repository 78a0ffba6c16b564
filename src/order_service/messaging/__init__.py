"""Kafka: client options, the event envelope, the outbox relay, the worker and the DLQ."""
