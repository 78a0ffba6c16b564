"""What `order-service events` shows of one record: any record gets a summary, never an error."""

from __future__ import annotations

from order_service.messaging.topic_reader import (
    EventSummary,
    in_time_order,
    json_line,
    summarise,
    text_line,
)
from tests.factories import consumer_record


def test_an_event_is_summarised_from_its_headers_and_value() -> None:
    record = consumer_record(
        [("ce_type", b"order.confirmed"), ("ce_time", b"2026-12-01T12:00:00+00:00")],
        partition=2,
        offset=7,
        key=b"01a2",
        value=b'{"id": "01a2", "status": "CONFIRMED"}',
    )
    assert summarise(record) == EventSummary(
        partition=2,
        offset=7,
        key="01a2",
        type="order.confirmed",
        time="2026-12-01T12:00:00+00:00",
        status="CONFIRMED",
        value_bytes=37,
        dead_letter_reason=None,
    )


def test_a_dead_letter_names_its_reason_and_odd_records_still_get_a_summary() -> None:
    dead = consumer_record([("dlq.error.type", b"not_json")], value=b"{oops")
    assert (summarise(dead).dead_letter_reason, summarise(dead).status) == ("not_json", None)

    binary = consumer_record([("ce_type", b"\xff\xfe")], value=b"[1, 2]")
    assert summarise(binary).type == "\ufffd\ufffd" and summarise(binary).status is None

    odd = consumer_record([], value=b'{"status": 3}')
    assert summarise(odd).status is None


def test_a_record_nested_past_the_parsers_depth_gets_a_summary() -> None:
    """Issue 20.2. Seen failing on the standard library's json (landed main): RecursionError."""
    for value in (b"[" * 3000, b'{"status":' * 3000 + b"1" + b"}" * 3000):
        deep = consumer_record([("dlq.error.type", b"not_json")], value=value)
        summary = summarise(deep)
        assert (summary.status, summary.value_bytes) == (None, len(value))
        assert summary.dead_letter_reason == "not_json"


def test_events_are_put_in_the_order_they_happened_ties_by_partition_and_offset() -> None:
    def event(partition: int, offset: int, time: str | None) -> EventSummary:
        return EventSummary(partition, offset, "k", "t", time, None, 0, None)

    late, early = event(0, 0, "2026-12-01T12:00:02"), event(1, 0, "2026-12-01T12:00:01")
    tie_a, tie_b = event(1, 5, "2026-12-01T12:00:03"), event(1, 6, "2026-12-01T12:00:03")
    assert in_time_order([tie_b, late, tie_a, early]) == [early, late, tie_a, tie_b]


def test_a_partitions_events_keep_their_offset_order_when_their_times_go_back() -> None:
    """Issue 20.3: one order's events share a partition, and its offsets are the order they
    happened in — a cancellation stamped before the confirmation it follows stays after it.
    Seen failing on sorting by time alone (landed main): cancelled listed before confirmed."""

    def event(partition: int, offset: int, kind: str, time: str) -> EventSummary:
        return EventSummary(
            partition, offset, "k", kind, f"2026-12-01T12:00:0{time}", None, 0, None
        )

    created, confirmed, cancelled = (
        event(0, 0, "order.created", "1"),
        event(0, 1, "order.confirmed", "5"),
        event(0, 2, "order.cancelled", "4"),
    )
    elsewhere = event(1, 0, "order.created", "3")
    ordered = in_time_order([cancelled, elsewhere, confirmed, created])
    assert [e for e in ordered if e.partition == 0] == [created, confirmed, cancelled]
    assert ordered.index(elsewhere) < ordered.index(confirmed)  # across partitions: by time


def test_a_followed_event_is_one_line_with_its_time_key_type_and_place() -> None:
    dead = EventSummary(
        0, 12, "01a2", "order.created", "2026-12-01T12:15:39.170165+00:00", None, 5, "not_json"
    )
    assert text_line(dead) == (f"12:15:39.170  {'01a2':36}  order.created    p0 @12  not_json")
    blank = EventSummary(1, 3, None, None, None, None, 0, None)
    assert text_line(blank).split() == ["-", "-", "p1", "@3"]
    assert json_line(blank).startswith('{"partition":1,"offset":3,"key":null')
