"""Which topics the service creates, with how many replicas (acks=all means that many disks).

The local broker (Tansu, one node) accepts any replication factor without complaint, so the
cluster-size arithmetic and the handling of a refused CreateTopics are tested here; that the
topics are really created with the planned factor is shown against Tansu in
tests/integration/test_topics.py.
"""

from __future__ import annotations

import pytest
from aiokafka.errors import InvalidReplicationFactorError, PolicyViolationError

from order_service.config import Settings
from order_service.messaging.kafka_client import check_created, topic_plan


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(("brokers", "rf", "min_isr"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (6, 3, 2)])
def test_the_default_replication_is_min_3_brokers_with_one_replica_to_spare(
    brokers: int, rf: int, min_isr: int
) -> None:
    plan = topic_plan(settings(), brokers)

    assert {(s.replication_factor, s.min_insync_replicas) for s in plan} == {(rf, min_isr)}
    assert [s.name for s in plan] == ["orders.created", "orders.status", "orders.created.dlq"]
    assert [s.partitions for s in plan] == [3, 3, 1]


def test_configured_replication_wins_over_the_cluster_size() -> None:
    plan = topic_plan(
        settings(kafka_topic_replication_factor=5, kafka_topic_min_insync_replicas=3), 3
    )

    assert {(s.replication_factor, s.min_insync_replicas) for s in plan} == {(5, 3)}


def test_a_min_isr_above_the_replication_factor_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="KAFKA_TOPIC_MIN_INSYNC_REPLICAS"):
        settings(kafka_topic_replication_factor=2, kafka_topic_min_insync_replicas=3)


def test_a_replication_factor_the_cluster_cannot_hold_stops_start_up_with_a_clear_message() -> None:
    plan = topic_plan(settings(kafka_topic_replication_factor=3), 1)
    code = InvalidReplicationFactorError.errno

    with pytest.raises(ValueError, match="replication factor 3: the cluster has 1 broker"):
        check_created([("orders.created", code, "")], plan, 1)


def test_an_existing_topic_is_fine_and_other_refusals_are_raised() -> None:
    plan = topic_plan(settings(), 3)
    check_created([("orders.created", 0, None), ("orders.status", 36, "exists")], plan, 3)

    with pytest.raises(PolicyViolationError):
        check_created([("orders.status", PolicyViolationError.errno, "no")], plan, 3)
