"""What the code publishes matches what schemas/ promises, for every event type."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from uuid import UUID

import jsonschema
import orjson
import pytest

from order_service.domain.events import ORDER_CREATED_TYPE, StatusEventType
from order_service.messaging.envelope import event_message
from tests.factories import EVENT_CASES
from tests.schema_compat import load_schemas, newest

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

# jsonschema checks `uuid` and `date-time` only with optional packages: the same checks here.
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(UUID(value))


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def test_the_cases_cover_every_event_type_the_code_has() -> None:
    """Seen failing with a fourth StatusEventType (`order.shipped`) and no case for it."""
    produced = {EVENT_CASES[name]().type for name in EVENT_CASES}
    assert produced == {ORDER_CREATED_TYPE, *(t.value for t in StatusEventType)}


@pytest.mark.parametrize("case", EVENT_CASES)
def test_the_payload_validates_against_the_newest_schema_of_its_family(case: str) -> None:
    """Seen failing with `rejection_reason` left out of the status payload, with `quantity`
    sent as a string, and with ORDER_STATUS_SCHEMA moved to a 1.1 that schemas/ lacks (or
    left at 1.0 after a 1.1 was added: the code must produce the version it publishes)."""
    event = EVENT_CASES[case]()
    schemas = load_schemas(SCHEMAS)
    version = newest(schemas, event.schema.family)
    message = event_message(
        event, topic="any", source="order-service", trace_headers={"traceparent": TRACEPARENT}
    )
    payload = orjson.loads(message.payload)

    assert event.schema == version, f"the code produces {event.schema}, the newest is {version}"
    assert payload["schema_version"] == version.major
    jsonschema.validate(
        payload, schemas[version], cls=jsonschema.Draft7Validator, format_checker=FORMATS
    )


@pytest.mark.parametrize("case", EVENT_CASES)
def test_ce_dataschema_names_a_schema_file_whose_id_it_is(case: str) -> None:
    """Seen failing with SCHEMA_BASE_URI changed, and with `ce_dataschema` left out."""
    event = EVENT_CASES[case]()
    headers = event_message(event, topic="any", source="order-service", trace_headers={}).headers
    dataschema = headers["ce_dataschema"]
    file_name = dataschema.rsplit("/", 1)[-1]

    assert (SCHEMAS / file_name).is_file(), dataschema
    assert json.loads((SCHEMAS / file_name).read_text())["$id"] == dataschema


def test_the_format_checks_refuse_what_they_should() -> None:
    """The checks above are no rubber stamp."""
    assert not FORMATS.conforms("yesterday", "date-time")
    assert not FORMATS.conforms("2026-12-01T10:15:30", "date-time")  # no offset
    assert not FORMATS.conforms("not-a-uuid", "uuid")
    assert FORMATS.conforms("2026-12-01T10:15:30+00:00", "date-time")
