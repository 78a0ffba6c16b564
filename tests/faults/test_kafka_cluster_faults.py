"""G3, G4, G5, G9, G10 under the broker's own faults: a three-node Apache Kafka cluster on the
network-fault rig (tests/netfault/kafka_cluster.py), the service's topics created by the
service at its defaults (RF 3, min.insync.replicas 2 there), and the fault suite's steady
stream — managed stock, cancellations — through an api, two relays and two workers running
as OS processes with the production producer (idempotent, acks=all).

The faults a to h run in sequence on one cluster and one stack (starting three JVMs is the
expensive part); before each the cluster is restored (every node up and in every ISR), after
each it is healed and the checker (checker.py) reads both topics to their end, from another
replica each time, and judges by data: lost 0, inconsistent offsets 0, out of order 0,
effect-once violations 0 with the stock books balanced, unseen 0 after a bounded final phase;
duplicates are counted per fault and must be 0 unless a relay died or replaced its producer
in the phase. Every answer the api gave while the fault lasted was 201 (it never waits on
Kafka). Each fault's figures are printed and kept in checker.json in the module's tmp dir.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest

from tests.conftest import Infra, create_database, drop_database
from tests.faults.cluster_probes import (
    busiest,
    frozen_mid_publish,
    leader_of,
    out_of_every_isr,
    relay_log_mentions,
)
from tests.faults.cluster_run import ClusterRun, cluster_stack
from tests.netfault import kafka_views as views
from tests.netfault.kafka_cluster import KAFKA_PORT, KafkaCluster


@pytest.fixture(scope="module")
async def run(
    infra: Infra, kafka_cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ClusterRun]:
    database = await create_database(infra, prefix="cluster")
    out_dir = tmp_path_factory.mktemp("cluster-faults")
    try:
        with cluster_stack(kafka_cluster, infra, database, out_dir) as running:
            yield running
    finally:
        print(f"\n[cluster faults] checker figures: {out_dir / 'checker.json'}")
        await drop_database(infra, database)


async def test_the_service_creates_its_topics_with_three_replicas_and_two_in_sync(
    run: ClusterRun,
) -> None:
    """The topic plan at its defaults on a three-broker cluster: RF 3, min.insync.replicas 2
    (acks=all means two disks, and one broker may be down with writes going on). Breaks
    caught: KAFKA_TOPIC_MIN_INSYNC_REPLICAS=1 (seen: '1' == '2'), a replication factor of 1."""
    bootstrap = run.cluster.bootstrap_servers
    for topic in run.topics:
        partitions = run.cluster.partitions(topic)
        assert {len(p.replicas) for p in partitions} == {3}, partitions
        assert views.topic_configs(bootstrap, topic)["min.insync.replicas"] == "2"
    assert len(run.cluster.partitions(run.settings.kafka_order_topic)) == 3


async def test_a_the_leader_of_the_busiest_partition_killed_then_recovered(
    run: ClusterRun,
) -> None:
    """SIGKILL (no controlled shutdown), the controller fences the node and elects a new
    leader from the ISR; the node restarts from its disk (log recovery) and catches up.

    Topics with RF 1 are caught by the wait for a new leader (there is no other replica) and
    by the topic test, not by the checker: a SIGKILL keeps the page cache, so with RF 1 the
    restarted node still had everything (seen: lost 0, 2 producers replaced, 4 duplicates).
    What breaks each checker rule is in checker.py."""

    async def fault(run: ClusterRun) -> dict[str, object]:
        view = await asyncio.to_thread(busiest, run)
        run.cluster.kill(view.leader)
        moved = await run.until(
            "a new leader", lambda: leader_of(run, view) not in (-1, view.leader)
        )
        await asyncio.sleep(1.0)
        run.cluster.launch(view.leader)
        restart = await asyncio.to_thread(run.cluster.wait_up, [view.leader])
        return {
            "killed": view.leader,
            "partition": f"{view.topic}-{view.partition}",
            "new_leader_after_s": moved,
            "restart_s": round(restart, 1),
        }

    run.assert_clean(await run.phase("a. leader SIGKILL", fault))


async def test_b_a_broker_isolated_until_it_leaves_the_isr_then_back(run: ClusterRun) -> None:
    """iptables drops everything on the node's interface: followers stop fetching, the node
    stops heartbeating; it leaves every ISR, then rejoins once healed. Break caught: a relay
    that sends each batch newest first (out of order 4 of the 15 orders with two status
    events)."""

    async def fault(run: ClusterRun) -> dict[str, object]:
        view = await asyncio.to_thread(busiest, run)
        node = view.leader
        run.cluster.isolate(node)
        left = await run.until(f"node {node} out of every ISR", lambda: out_of_every_isr(run, node))
        await asyncio.sleep(1.0)
        run.cluster.heal()
        return {"isolated": node, "left_isr_after_s": left}

    run.assert_clean(await run.phase("b. broker isolated", fault))


async def test_c_two_of_three_brokers_down_produce_fails_not_enough_replicas(
    run: ClusterRun,
) -> None:
    """Two brokers go, one after the other. X is SIGKILLed and fenced: ISR {Y, Z}. Then Y's
    Kafka port is cut both ways (clients and replication), its controller left running: the
    quorum lives, so Z shrinks its partitions' ISR to {Z}, below min.insync.replicas 2, and
    answers produce requests NOT_ENOUGH_REPLICAS — what a cluster with separate controllers
    (MSK) shows with two brokers down. Then Y is SIGKILLed too: with combined nodes that takes
    the quorum, so nothing can change leaders or ISRs, produce requests time out and no new
    producer id is handed out. The api keeps answering 201, the relays mark nothing the
    cluster did not acknowledge, and after both are back everything is delivered.

    Breaks caught: min.insync.replicas 1 (no NOT_ENOUGH_REPLICAS ever: the wait fails), a
    relay that commits the mark before it publishes (lost 773), a relay that keeps a producer
    whose publish timed out (31 duplicates with no producer replaced)."""

    async def fault(run: ClusterRun) -> dict[str, object]:
        controller = await asyncio.to_thread(run.cluster.active_controller)
        x, y = [n for n in run.cluster.live_ids() if n != controller][:2]
        before = relay_log_mentions(run, "NotEnoughReplicas")
        run.cluster.kill(x)
        fenced = await run.until(f"node {x} out of every ISR", lambda: out_of_every_isr(run, x))
        run.cluster.node(y).namespace.cut(KAFKA_PORT)
        alone = await run.until(
            "a partition with one in-sync replica",
            lambda: any(len(v.isr) == 1 for t in run.topics[:2] for v in run.cluster.partitions(t)),
        )
        told = await run.until(
            "a relay answered NOT_ENOUGH_REPLICAS",
            lambda: relay_log_mentions(run, "NotEnoughReplicas") > before,
            15.0,
        )
        refused = relay_log_mentions(run, "NotEnoughReplicas") - before
        run.cluster.kill(y)
        await asyncio.sleep(3.0)
        run.cluster.heal()
        run.cluster.launch(x)
        run.cluster.launch(y)
        restart = await asyncio.to_thread(run.cluster.wait_up, [x, y])
        return {
            "killed": [x, y],
            "x_fenced_after_s": fenced,
            "isr_of_one_after_s": alone,
            "relay_told_not_enough_replicas_after_s": told,
            "relay_not_enough_replicas_errors": refused,
            "restart_s": round(restart, 1),
        }

    figures = await run.phase("c. two of three brokers down", fault)
    run.assert_clean(figures)
    errors = figures.context["relay_not_enough_replicas_errors"]
    assert isinstance(errors, int) and errors > 0, figures.context


async def test_d_the_group_coordinator_killed_while_the_workers_commit(run: ClusterRun) -> None:
    """The broker leading the group's __consumer_offsets partition dies: the workers find the
    new coordinator and go on committing; redeliveries are absorbed by the inbox."""
    group = run.settings.kafka_consumer_group

    async def fault(run: ClusterRun) -> dict[str, object]:
        bootstrap = run.cluster.bootstrap_servers
        coordinator = await asyncio.to_thread(views.group_coordinator, bootstrap, group)
        committed = await asyncio.to_thread(views.committed_offsets, bootstrap, group)
        run.cluster.kill(coordinator)
        moved = await run.until(
            "a new group coordinator",
            lambda: views.group_coordinator(bootstrap, group) != coordinator,
        )
        advanced = await run.until(
            "an offset committed to the new coordinator",
            lambda: views.committed_offsets(bootstrap, group) != committed,
        )
        run.cluster.launch(coordinator)
        restart = await asyncio.to_thread(run.cluster.wait_up, [coordinator])
        return {
            "killed": coordinator,
            "coordinator_moved_after_s": moved,
            "commits_resumed_after_s": advanced,
            "restart_s": round(restart, 1),
        }

    run.assert_clean(await run.phase("d. group coordinator SIGKILL", fault))


async def test_e_the_active_controller_killed(run: ClusterRun) -> None:
    """The quorum's leader dies: the other two elect a new one; the node restarts from disk."""

    async def fault(run: ClusterRun) -> dict[str, object]:
        controller = await asyncio.to_thread(run.cluster.active_controller)
        run.cluster.kill(controller)
        elected = await run.until(
            "a new active controller", lambda: run.cluster.active_controller() != controller
        )
        await asyncio.sleep(1.0)
        run.cluster.launch(controller)
        restart = await asyncio.to_thread(run.cluster.wait_up, [controller])
        return {"killed": controller, "elected_after_s": elected, "restart_s": round(restart, 1)}

    run.assert_clean(await run.phase("e. active controller SIGKILL", fault))


async def test_f_the_leader_paused_past_its_session_then_resumed_a_zombie(
    run: ClusterRun,
) -> None:
    """SIGSTOP past broker.session.timeout.ms: the controller fences the node and moves its
    leaderships while it is frozen; resumed, it still believes it leads until it learns the
    new epoch (a zombie): nothing it may accept then can be acknowledged with acks=all."""

    async def fault(run: ClusterRun) -> dict[str, object]:
        view = await asyncio.to_thread(busiest, run)
        run.cluster.pause(view.leader)
        fenced = await run.until(
            "the leadership moved", lambda: leader_of(run, view) not in (-1, view.leader)
        )
        await asyncio.sleep(1.0)
        run.cluster.resume(view.leader)
        return {
            "paused": view.leader,
            "partition": f"{view.topic}-{view.partition}",
            "moved_after_s": fenced,
        }

    run.assert_clean(await run.phase("f. leader SIGSTOP (zombie)", fault))


async def test_g_the_whole_cluster_killed_and_started_again_from_its_disks(
    run: ClusterRun,
) -> None:
    """Every node SIGKILLed at once (a power cut without the disks lost): each recovers its
    log and the quorum; the service's processes reconnect by themselves. Breaks caught: the
    disks lost too, topics made again on first use (Tansu's restart; inconsistent offsets
    1326, lost 1448), a relay whose loop ends at its first failed publish (unseen 843)."""

    async def fault(run: ClusterRun) -> dict[str, object]:
        for node in run.cluster.nodes:
            run.cluster.kill(node.node_id)
        await asyncio.sleep(2.0)
        for node in run.cluster.nodes:
            run.cluster.launch(node.node_id)
        ids = [node.node_id for node in run.cluster.nodes]
        restart = await asyncio.to_thread(run.cluster.wait_up, ids)
        return {"restart_s": round(restart, 1)}

    run.assert_clean(await run.phase("g. whole cluster SIGKILL", fault))


async def test_h_a_relay_killed_mid_publish_with_idempotence_on(run: ClusterRun) -> None:
    """A relay frozen (SIGSTOP) inside a publish — rows claimed and sent, lane locks held, not
    marked — then SIGKILLed once the broker has acknowledged the batch to it: another relay
    publishes those rows again under its own producer id. To catch a relay there at once, a
    node that is not the controller is paused for ~1 s meanwhile (acks=all waits for it;
    shorter than replica.lag.time.max.ms, so no ISR changes). Duplicates are allowed here
    and counted — the test wants at least one, i.e. the kill did land mid-publish; nothing
    is lost, nothing applied twice. Break caught: a worker that decides a redelivered order
    again (effect-once violations 1, the stock books off, out of order 1)."""

    async def fault(run: ClusterRun) -> dict[str, object]:
        relay = run.relays[0]
        controller = await asyncio.to_thread(run.cluster.active_controller)
        slow = next(n for n in run.cluster.live_ids() if n != controller)
        caught: float | None = None
        attempts = 0
        try:
            while caught is None and attempts < 3:
                attempts += 1
                run.cluster.pause(slow)
                try:
                    caught = await run.until(
                        "the relay frozen inside a publish",
                        lambda: frozen_mid_publish(run, relay),
                        1.5,
                    )
                except AssertionError:
                    caught = None
                finally:
                    run.cluster.resume(slow)
                if caught is None:
                    await asyncio.sleep(3.0)  # the paused node catches up: try again
            assert caught is not None, "the relay was never caught inside a publish"
            await asyncio.sleep(0.5)  # the broker acknowledges the batch to the frozen relay
            run.kill_relay(relay)
        finally:
            relay.process.send_signal(signal.SIGCONT)  # never left frozen (teardown)
        run.start_relay()
        return {"node_paused": slow, "caught_mid_publish_after_s": caught, "attempts": attempts}

    figures = await run.phase("h. relay SIGKILL mid-publish", fault)
    run.assert_clean(figures)
    assert figures.duplicates > 0, figures.line()
