"""Our records' partitions are those Kafka's default partitioner picks (aiokafka's, as the Java
client's), so keys land where any producer of these topics would put them."""

from __future__ import annotations

import random
import uuid

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2

from order_service.messaging.partitioning import murmur2, partition_of


def test_murmur2_equals_the_reference_for_every_length_and_byte() -> None:
    """Seen failing with the tail bytes taken in the wrong order and with `k >> 24` unmasked
    before the multiplication (both give other partitions for most keys)."""
    rng = random.Random(18)
    for length in range(70):
        for _ in range(40):
            data = bytes(rng.getrandbits(8) for _ in range(length))
            assert murmur2(data) == reference_murmur2(data), (length, data)
    assert murmur2(b"\xff" * 37) == reference_murmur2(b"\xff" * 37)


def test_partitions_match_the_default_partitioner() -> None:
    reference = DefaultPartitioner()
    keys = [str(uuid.uuid4()).encode() for _ in range(200)]
    for partitions in ([0], [0, 1, 2], list(range(12)), list(range(48))):
        for key in keys:
            assert partition_of(key, partitions) == reference(key, partitions, partitions)
