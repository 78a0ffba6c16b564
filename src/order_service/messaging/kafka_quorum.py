"""DescribeQuorum (KIP-595, API key 55): which KRaft controller is active, and the voters.

aiokafka has no such request. In KRaft the metadata response's `controller_id` is a random
live broker (clients cannot reach the controllers), so the only way for a client to name the
active controller is to ask the quorum: a broker forwards DescribeQuorum to it. Version 0 is
enough for the leader and the voters; the schema is Kafka's DescribeQuorum{Request,Response}
.json (flexible versions: compact strings and arrays, tagged fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.errors import for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

METADATA_TOPIC = "__cluster_metadata"

_REPLICA_STATE = CompactArray(
    ("replica_id", Int32),
    ("log_end_offset", Int64),
    ("tags", TaggedFields),
)


class DescribeQuorumResponse_v0(Response):  # type: ignore[misc]
    API_KEY = 55
    API_VERSION = 0
    SCHEMA = Schema(
        ("error_code", Int16),
        (
            "topics",
            CompactArray(
                ("topic_name", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("error_code", Int16),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("high_watermark", Int64),
                        ("current_voters", _REPLICA_STATE),
                        ("observers", _REPLICA_STATE),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeQuorumRequest_v0(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 55
    API_VERSION = 0
    RESPONSE_TYPE = DescribeQuorumResponse_v0
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(
                ("topic_name", CompactString("utf-8")),
                ("partitions", CompactArray(("partition_index", Int32), ("tags", TaggedFields))),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeQuorumRequest(Request[DescribeQuorumRequest_v0]):  # type: ignore[misc]
    API_KEY = 55

    def build(
        self, request_struct_class: type[DescribeQuorumRequest_v0]
    ) -> DescribeQuorumRequest_v0:
        return request_struct_class([(METADATA_TOPIC, [(0, {})], {})], {})


@dataclass(frozen=True)
class Quorum:
    leader_id: int  # the active controller; -1 while an election is going on
    voters: tuple[int, ...]
    observers: tuple[int, ...]


def parse_quorum(response: Any) -> Quorum:
    """The metadata partition's quorum from a DescribeQuorum response; raises on an error."""
    body = response.to_object()
    if body["error_code"]:
        raise for_code(body["error_code"])("DescribeQuorum failed")
    for topic in body["topics"]:
        for partition in topic["partitions"]:
            if partition["error_code"]:
                raise for_code(partition["error_code"])("DescribeQuorum failed")
            return Quorum(
                leader_id=partition["leader_id"],
                voters=tuple(v["replica_id"] for v in partition["current_voters"]),
                observers=tuple(o["replica_id"] for o in partition["observers"]),
            )
    raise ValueError("DescribeQuorum answered no partition")
