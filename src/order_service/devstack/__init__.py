"""Real PostgreSQL and a real Kafka-protocol broker as child processes, for `make dev` and tests."""
