"""docs/asyncapi.yaml holds up against the code. Every reference resolves, and each operation's
messages belong to its channel. The channels are the topics the service creates. The headers
and values the code sends are the ones each message documents, and so are the `dlq.*` headers.

Spec validity as such (the AsyncAPI 3.0 JSON Schema, the official parser's rules) was checked
with @asyncapi/parser when this document changed; these tests catch the drifts it cannot see.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jsonschema
import orjson
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from order_service.config import Settings
from order_service.messaging.dlq import DeadLetter, dlq_headers, send_dead_letters
from order_service.messaging.envelope import event_message, wire_headers
from order_service.messaging.kafka_client import topic_plan
from tests.factories import EVENT_CASES, consumer_record
from tests.schema_compat import load_schemas, newest

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "asyncapi.yaml"
DOC_URI = DOC_PATH.as_uri()
DOC: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text())
DEFAULTS = Settings.model_construct()  # the defaults, whatever the environment says
TOPIC_OF_FAMILY = {
    "order.created": DEFAULTS.kafka_order_topic,
    "order.status": DEFAULTS.kafka_status_topic,
}


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(ref: str) -> Any:
    """A `$ref` of the document: `#/json/pointer`, or `../file.json` with an optional pointer."""
    file_part, _, pointer = ref.partition("#")
    node = yaml.safe_load((DOC_PATH.parent / file_part).read_text()) if file_part else DOC
    for token in filter(None, pointer.split("/")):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def validator(pointer: str) -> jsonschema.Draft7Validator:
    """A validator for the schema at `pointer` in the document, its file references resolved."""

    def retrieve(uri: str) -> Resource:
        path = Path(unquote(urlparse(uri).path))
        assert ROOT in path.parents, uri
        return Resource.from_contents(yaml.safe_load(path.read_text()), DRAFT7)

    registry: Registry = Registry(retrieve=retrieve)
    return jsonschema.Draft7Validator({"$ref": f"{DOC_URI}#{pointer}"}, registry=registry)


def test_every_reference_resolves() -> None:
    """Seen failing with a payload pointing at `order.status.v9.json`, and on a typo in a
    `#/components/...` pointer."""
    for ref in refs(DOC):
        try:
            resolve(ref)
        except (KeyError, FileNotFoundError) as exc:
            pytest.fail(f"{ref}: {exc!r}")


def test_each_operation_names_messages_of_its_own_channel() -> None:
    """Seen failing with publishOrderCancelled naming `orders.created`'s message."""
    for name, operation in DOC["operations"].items():
        channel = operation["channel"]["$ref"]
        assert channel.startswith("#/channels/"), name
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), name


def test_the_channels_are_the_topics_the_service_creates() -> None:
    """Seen failing with the status channel left out, and with its address misspelt."""
    documented = {
        channel["address"]: channel["bindings"]["kafka"]["partitions"]
        for channel in DOC["channels"].values()
    }
    planned = {spec.name: spec.partitions for spec in topic_plan(DEFAULTS, brokers=1)}
    assert documented == planned


def documented_message(ce_type: str) -> tuple[str, str]:
    """(the channel's address, the message's pointer) of the one message named `ce_type`."""
    found = [
        (channel["address"], message["$ref"].removeprefix("#"))
        for channel in DOC["channels"].values()
        for message in channel["messages"].values()
        if resolve(message["$ref"])["name"] == ce_type
    ]
    assert len(found) == 1, f"{ce_type}: documented {len(found)} times"
    return found[0]


@pytest.mark.parametrize("case", EVENT_CASES)
def test_the_code_sends_each_event_as_its_message_documents(case: str) -> None:
    """Seen failing with the status `ce_dataschema` pattern naming another family, with
    order.rejected's payload documented as CANCELLED, with order.confirmed listed on the
    `orders.created` channel, and with an `order.status.v1.1.json` added while the messages
    still point at 1.0."""
    event = EVENT_CASES[case]()
    family = event.schema.family
    address, pointer = documented_message(event.type)
    message = event_message(
        event,
        topic=TOPIC_OF_FAMILY[family],
        source=DEFAULTS.service_name,
        trace_headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    payload_schema = resolve(f"#{pointer}")["payload"]["schema"]
    schema_files = {Path(r.partition("#")[0]).name for r in refs(payload_schema)} - {""}

    assert address == message.topic
    assert schema_files == {newest(load_schemas(ROOT / "schemas"), family).file_name}
    validator(f"{pointer}/headers").validate(wire_headers(message, DEFAULTS.service_name))
    validator(f"{pointer}/payload/schema").validate(orjson.loads(message.payload))


def test_a_status_payload_of_another_type_is_refused_by_the_message() -> None:
    """The per-type `allOf` constraints are not decoration: a CANCELLED order is no
    `order.rejected`."""
    event = EVENT_CASES["cancelled_pending"]()
    body = orjson.loads(event_message(event, topic="t", source="s", trace_headers={}).payload)
    _, pointer = documented_message("order.rejected")
    with pytest.raises(jsonschema.ValidationError):
        validator(f"{pointer}/payload/schema").validate(body)


class CapturingProducer:
    """Takes every send and acknowledges it at once."""

    def __init__(self) -> None:
        self.headers: list[list[tuple[str, bytes]]] = []

    async def send(self, topic: str, *, value: Any, key: Any, headers: Any) -> asyncio.Future[None]:
        self.headers.append(headers)
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered


def _dlq_names() -> tuple[set[str], set[str]]:
    headers = DOC["components"]["schemas"]["dlqHeaders"]
    return set(headers["required"]), set(headers["properties"])


def _as_text(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers}


_DLQ_POINTER = "/components/messages/deadLetteredOrderCreated/headers"


def test_a_dead_letter_carries_the_required_dlq_headers_as_documented() -> None:
    """Seen failing with a new `dlq.*` header in `dlq_headers` that the document lacks, and with
    `dlq.original.offset` documented as a number."""
    record = consumer_record([("ce_id", b"abc")], offset=41)
    headers = dlq_headers(record, error_type="not_json", error_message="bad", attempts=1)
    required, _ = _dlq_names()

    assert {n for n, _ in headers if n.startswith("dlq.")} == required
    validator(_DLQ_POINTER).validate(_as_text(headers))


async def test_a_trimmed_dead_letter_carries_every_documented_dlq_header() -> None:
    """A record with neither key nor value goes to the DLQ trimmed. Seen failing with
    `dlq.trimmed` or `dlq.original.value_bytes` left out of the document."""
    record = dataclasses.replace(consumer_record([]), key=None, value=None)
    producer = CapturingProducer()

    await send_dead_letters(
        producer,  # type: ignore[arg-type]
        "orders.created.dlq",
        [DeadLetter(record, "tombstone", "the record has no value", 1)],
    )

    (headers,) = producer.headers
    _, documented = _dlq_names()
    assert {n for n, _ in headers if n.startswith("dlq.")} == documented
    assert _as_text(headers)["dlq.trimmed"] == "true"
    validator(_DLQ_POINTER).validate(_as_text(headers))


def test_a_reason_the_document_does_not_list_is_refused() -> None:
    record = consumer_record([])
    headers = dlq_headers(record, error_type="unsupported_type", error_message="x", attempts=1)
    with pytest.raises(jsonschema.ValidationError):
        validator(_DLQ_POINTER).validate(_as_text(headers))
