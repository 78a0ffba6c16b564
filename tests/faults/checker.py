"""A checker judged by data, Jepsen-style: after a fault, once the cluster is healed, what
PostgreSQL holds and what an independent client (tests/kafka_reader.py) reads from the topics
up to their end offsets, counted into `Figures` rather than asserted one at a time, so every
fault's figures can be printed, kept (checker.json) and compared. Lost, out of order, effect
once and unseen cover every order so far, not only the phase's.

Each rule was seen failing on a broken variant run against the cluster faults
(test_kafka_cluster_faults.py), with these figures:

- **lost**: a 2xx order whose `order.created` is neither on the order topic nor still waiting
  unpublished in the outbox, or an outbox row marked published whose event (its `ce_id`) is
  on no topic. Broken variant: a relay that commits the mark before it publishes — fault c:
  lost 773 (and, following from it, 540 unseen).
- **inconsistent offsets**: one (topic, partition, offset) read with two different records
  across reads (each read after a fault, from another replica each time), or read once and
  later missing: a hole below the end, or past it (the log cut back, the partition gone).
  Broken variant: a cluster restarted from empty disks whose topics are made again on first
  use (Tansu's memory storage) — fault g: inconsistent offsets 1326, lost 1448.
- **out of order**: an order whose events are on two partitions, whose first copies are not
  in commit (outbox id) order, or whose status events do not follow its transitions to its
  final status (one decision, then at most a cancellation). Broken variant: a relay that
  sends each batch newest first — fault b: 4 of the 15 orders with two status events.
- **effect once**: an accepted order missing or doubled, or one nobody was answered 2xx for;
  a settled order's created event not applied exactly once (one inbox row); a decision or
  cancellation written other than once; the stock-managed item's books not balanced.
  Broken variant: a worker that decides a redelivered order again (inbox and the PENDING
  guard ignored) — fault h: 1 order decided twice, stock books off.
- **unseen**: an accepted order still not settled, or an outbox row still unpublished, after
  the bounded final phase. Broken variant: a relay whose loop ends at its first failed
  publish (the process stays up) — fault g: unseen 843, every other rule 0.
- **duplicates**: raw records beyond the first per `ce_id`, over both topics, in this phase;
  the test wants 0 where no relay died or replaced its producer. Broken variant: a relay
  that keeps a producer whose publish timed out — fault c: 31 duplicates, no producer
  replaced.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

import asyncpg
import orjson

from tests.faults.figures import Figures
from tests.faults.stream import HOT_ITEM, Outcomes
from tests.faults.verdicts import HISTORIES
from tests.kafka_reader import Record, read_to_end

SETTLED = ("CONFIRMED", "REJECTED", "CANCELLED")


def _digest(record: Record) -> str:
    body = orjson.dumps([record.key, record.headers.get("ce_id"), record.value.hex()])
    return hashlib.sha256(body).hexdigest()[:16]


class Checker:
    """One per stack: it remembers every offset any of its reads returned, and the
    duplicates counted so far, so each check compares against all the reads before it."""

    def __init__(
        self, bootstrap: str, topics: tuple[str, str], hot_stock: int, out_dir: Path
    ) -> None:
        self.bootstrap = bootstrap
        self.order_topic, self.status_topic = topics
        self.hot_stock = hot_stock
        self.out_path = out_dir / "checker.json"
        self.history: list[Figures] = []
        self._offsets: dict[tuple[str, int, int], str] = {}
        self._accepted_before = 0

    async def check(
        self,
        fault: str,
        db: asyncpg.Connection,
        outcomes: Outcomes,
        *,
        rack: str | None = None,
        settle_timeout_s: float = 60.0,
        context: dict[str, object] | None = None,
    ) -> Figures:
        figures = Figures(fault, read_from=rack or "leaders", context=dict(context or {}))
        figures.accepted = len(outcomes.accepted)
        figures.accepted_in_phase = figures.accepted - self._accepted_before
        self._accepted_before = figures.accepted
        figures.unseen, figures.settled_s = await self._final_phase(db, outcomes, settle_timeout_s)

        started = time.monotonic()
        records: list[Record] = []
        ends: dict[tuple[str, int], int] = {}
        for topic in (self.order_topic, self.status_topic):
            read, topic_ends = await asyncio.to_thread(
                read_to_end, self.bootstrap, topic, 30.0, rack
            )
            records += read
            ends.update({(topic, p): end for p, end in topic_ends.items()})
        figures.read_s = time.monotonic() - started
        figures.records = len(records)

        self._inconsistent(records, ends, figures)
        outbox = await db.fetch(
            "SELECT id, event_id, topic, aggregate_id, published_at IS NOT NULL AS marked "
            "FROM outbox"
        )
        self._lost(records, outbox, outcomes, figures)
        # Orders with an event still in the outbox are unseen: their histories are not whole.
        waiting = {str(r["aggregate_id"]) for r in outbox if not r["marked"]}
        final = {
            str(r["id"]): r["status"]
            for r in await db.fetch("SELECT id, status FROM orders")
            if str(r["id"]) not in waiting and r["status"] in SETTLED
        }
        self._order(records, outbox, final, figures)
        await self._effect_once(db, outcomes, waiting, figures)
        copies = Counter(r.headers.get("ce_id") for r in records)
        figures.duplicates_total = sum(n - 1 for n in copies.values())
        before = self.history[-1].duplicates_total if self.history else 0
        figures.duplicates = figures.duplicates_total - before

        self.history.append(figures)
        self.save()
        return figures

    def save(self) -> None:
        """Every fault's figures so far, to checker.json."""
        self.out_path.write_text(json.dumps([asdict(f) for f in self.history], indent=1))

    async def _final_phase(
        self, db: asyncpg.Connection, outcomes: Outcomes, timeout_s: float
    ) -> tuple[int, float]:
        """Wait until every accepted order is settled and no outbox row is unpublished;
        returns what is still not (unseen) when `timeout_s` ran out, and the time taken."""
        started = time.monotonic()
        ids = [uuid.UUID(i) for i in outcomes.accepted.values()]
        while True:
            unsettled = await db.fetchval(
                "SELECT count(*) FROM unnest($1::uuid[]) AS a(id) LEFT JOIN orders o USING (id)"
                " WHERE o.status IS NULL OR o.status <> ALL($2::text[])",
                ids,
                list(SETTLED),
            )
            unpublished = await db.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            took = time.monotonic() - started
            if unsettled + unpublished == 0 or took > timeout_s:
                return int(unsettled + unpublished), took
            await asyncio.sleep(0.2)

    def _inconsistent(
        self, records: list[Record], ends: dict[tuple[str, int], int], figures: Figures
    ) -> None:
        """Against every earlier read: an offset now holding another record, or missing —
        below the end (a hole) or past it (the log was cut back, or the partition is gone)."""
        now = {(r.topic, r.partition, r.offset): _digest(r) for r in records}
        bad = []
        for key, digest in self._offsets.items():
            topic, partition, offset = key
            if key in now:
                if now[key] != digest:
                    bad.append(f"{key}: read as {digest}, now {now[key]}")
            elif offset < ends.get((topic, partition), -1):
                bad.append(f"{key}: read as {digest}, now a hole below the end")
            else:
                bad.append(f"{key}: read as {digest}, now past the end")
        figures.inconsistent_offsets = len(bad)
        figures.examples["inconsistent_offsets"] = bad[:5]
        for key, digest in now.items():
            self._offsets.setdefault(key, digest)

    def _lost(
        self,
        records: list[Record],
        outbox: list[asyncpg.Record],
        outcomes: Outcomes,
        figures: Figures,
    ) -> None:
        on_topic = {r.headers.get("ce_id") for r in records}
        created = {r.key for r in records if r.headers.get("ce_type") == "order.created"}
        # An order whose created event is still waiting in the outbox is unseen, not lost.
        waiting = {
            str(r["aggregate_id"])
            for r in outbox
            if r["topic"] == self.order_topic and not r["marked"]
        }
        lost_orders = {o for o in outcomes.accepted.values() if o not in created | waiting}
        lost_marked = [
            str(r["event_id"]) for r in outbox if r["marked"] and str(r["event_id"]) not in on_topic
        ]
        # A marked created row missing from the topic is one loss, counted once.
        marked_created = {
            str(r["aggregate_id"])
            for r in outbox
            if r["topic"] == self.order_topic and str(r["event_id"]) in lost_marked
        }
        lost_orders -= marked_created
        figures.lost = len(lost_orders) + len(lost_marked)
        figures.examples["lost"] = (sorted(lost_orders) + lost_marked)[:5]

    def _order(
        self,
        records: list[Record],
        outbox: list[asyncpg.Record],
        final: dict[str, str],
        figures: Figures,
    ) -> None:
        commit_order = {str(r["event_id"]): int(r["id"]) for r in outbox}
        partition_of: dict[tuple[str, str | None], int] = {}
        last: dict[tuple[str, str | None], int] = {}
        seen: set[str | None] = set()
        histories: dict[str | None, list[Record]] = defaultdict(list)
        bad: set[str | None] = set()
        for record in records:  # by partition, then offset: each partition in log order
            event_id = record.headers.get("ce_id")
            stream = (record.topic, record.key)
            if partition_of.setdefault(stream, record.partition) != record.partition:
                bad.add(record.key)
            if event_id in seen:
                continue
            seen.add(event_id)
            position = commit_order.get(event_id or "", -1)
            if position <= last.get(stream, 0):
                bad.add(record.key)
            last[stream] = position
            if record.topic == self.status_topic:
                histories[record.key].append(record)
        for order_id, status in final.items():
            history = histories.get(str(order_id), [])
            types = [r.headers.get("ce_type") for r in history]
            if (
                types not in HISTORIES[status]
                or orjson.loads(history[-1].value).get("status") != status
            ):
                bad.add(str(order_id))
        figures.out_of_order = len(bad)
        figures.two_status_events = sum(1 for h in histories.values() if len(h) > 1)
        figures.examples["out_of_order"] = sorted(str(b) for b in bad)[:5]

    async def _effect_once(
        self, db: asyncpg.Connection, outcomes: Outcomes, waiting: set[str], figures: Figures
    ) -> None:
        rows = await db.fetch("""
            SELECT o.id, o.status,
              count(e.*) FILTER (WHERE e.headers->>'ce_type' = 'order.created') AS created,
              count(e.*) FILTER (WHERE e.headers->>'ce_type' IN
                                 ('order.confirmed', 'order.rejected')) AS decided,
              count(e.*) FILTER (WHERE e.headers->>'ce_type' = 'order.cancelled') AS cancelled,
              (SELECT count(*) FROM inbox i WHERE i.order_id = o.id) AS applied
            FROM orders o LEFT JOIN outbox e ON e.aggregate_id = o.id
            GROUP BY o.id, o.status
        """)
        bad = []
        for row in rows:
            once = row["created"] == 1 and row["applied"] == 1
            if row["status"] not in SETTLED or str(row["id"]) in waiting:
                # Unseen (not applied or not all published yet): at least nothing twice.
                once = row["created"] == 1 and max(row["applied"], row["decided"]) <= 1
                once = once and row["cancelled"] <= 1
            elif row["status"] == "CANCELLED":
                once = once and row["decided"] in (0, 1) and row["cancelled"] == 1
            else:
                once = once and row["decided"] == 1 and row["cancelled"] == 0
            if not once:
                bad.append(f"{dict(row)}")
        in_db = Counter(str(r["id"]) for r in rows)
        accepted = set(outcomes.accepted.values())
        bad += [f"accepted {o}: {in_db[o]} rows" for o in accepted if in_db[o] != 1]
        bad += [f"order {o} answered no 2xx" for o in in_db if o not in accepted]
        figures.effect_once_violations = len(bad)
        figures.examples["effect_once"] = bad[:5]
        figures.stock_balanced = await self._stock_balanced(db)

    async def _stock_balanced(self, db: asyncpg.Connection) -> bool:
        """The managed item's units: available + confirmed = the stock set, reserved =
        confirmed, never below zero, and every confirmed order holds its reservation."""
        stock = await db.fetchrow("SELECT available, reserved FROM stock WHERE item = $1", HOT_ITEM)
        confirmed = await db.fetchval(
            "SELECT COALESCE(sum(quantity), 0) FROM orders "
            "WHERE item = $1 AND status = 'CONFIRMED' AND reserved",
            HOT_ITEM,
        )
        unreserved = await db.fetchval(
            "SELECT count(*) FROM orders WHERE item = $1 AND status = 'CONFIRMED' "
            "AND reserved IS NOT TRUE",
            HOT_ITEM,
        )
        return (
            stock is not None
            and stock["available"] >= 0
            and stock["available"] + confirmed == self.hot_stock
            and stock["reserved"] == confirmed
            and unreserved == 0
        )
