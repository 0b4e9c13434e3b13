"""Exactly-once mode: kill -9, several times, during a backlog; a ``read_committed``
consumer of lead.qualified then sees every stage change exactly once, the same ones
as an uninterrupted run, and every lead's committed state equals that run's."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams.faust_adapter import groupfencing
from streams.faust_adapter.app import create_app
from streams.faust_adapter.groupfencing import GroupMember, StaleMember
from streams.faust_adapter.preload import preload_changelog
from streams.local import verify
from streams.local.workload import generate_events
from streams.settings import Settings
from streams.topics import ensure_topics, ensure_topics_async
from tests.integration.harness import (
    Topics,
    Worker,
    committed_states,
    free_port,
    poll,
    read_committed,
)
from tests.integration.test_crashes import (
    KIND_ROLE,
    PARTITIONS,
    _produce,
    progress,
    run_to_the_end,
)
from tests.support import close_app_loops

#: Many leads with a few dozen events each: hundreds of stage changes, and hot
#: leads past the 256 event ids a state keeps for dedup (a replay would show).
N_EVENTS = 16_000
N_LEADS = 400
#: Each worker of the crashing run is killed once its transactions have committed
#: this many input records: mid-backlog, with the next window's transaction open.
KILL_AFTER = 1_500
KILLS = 3
#: Small windows: each is a transaction, and a kill lands inside one.
WORKER_ENV = {"LEADSTREAM_FLUSH_EVENTS": "1500", "LEADSTREAM_BATCH_SIZE": "200"}
EXACTLY_ONCE = {**WORKER_ENV, "LEADSTREAM_PROCESSING_GUARANTEE": "exactly_once"}
#: Issue 23: a worker killed with -9 and restarted is ready within this long.
READY_AFTER_KILL_S = 10.0


def events_committed(worker: Worker) -> int:
    """Input records whose window's transaction this worker process committed."""
    status, body = worker.get("/metrics")
    if status != 200:
        return 0
    found = re.search(rb"^leadstream_events_acked_total (\S+)$", body, re.M)
    return int(float(found.group(1))) if found else 0


def stage_changes(bootstrap: str, topics: Topics) -> list[dict[str, Any]]:
    records = asyncio.run(read_committed(bootstrap, topics.qualified))
    return [orjson.loads(r.value) for r in records]


def backlogs(
    bootstrap: str, tmp_path: Path, name: str, seed: int, *, held: int = 0
) -> tuple[Topics, Topics, list[tuple[str, str, bytes]]]:
    """The same backlog on two sets of topics, but for its last ``held`` events on the
    second (returned, to produce later); the first scored by an uninterrupted
    at-least-once worker (nothing is repeated without a crash): the reference."""
    events = list(
        generate_events(
            n_events=N_EVENTS,
            n_leads=N_LEADS,
            seed=seed,
            start=time.time() - 3600,
            span_s=3000,
            mix=(1.0, 0.0, 0.0),  # one input topic: one order per lead in both runs
            profile_ratio=0.0,
        )
    )
    run_id = uuid.uuid4().hex[:6]
    reference, tested = Topics(f"eos-ref-{run_id}"), Topics(f"eos-{name}-{run_id}")
    for topics, produced in ((reference, events), (tested, events[: len(events) - held])):
        inputs = {getattr(topics, role): PARTITIONS for role in KIND_ROLE.values()}
        ensure_topics(bootstrap, inputs, timeout=60)
        asyncio.run(_produce(bootstrap, topics, produced))
    ref_worker = Worker(bootstrap, reference, tmp_path / "ref", extra_env=WORKER_ENV)
    run_to_the_end(ref_worker.start(), bootstrap, reference)
    return reference, tested, events[len(events) - held :]


def assert_each_stage_change_once(bootstrap: str, reference: Topics, tested: Topics) -> None:
    """A read_committed consumer of ``tested`` sees the reference's stage changes, each
    once, and every lead's committed state is the reference's."""
    expected = stage_changes(bootstrap, reference)
    got = stage_changes(bootstrap, tested)
    assert len(expected) > 100  # enough stage changes to mean something
    repeated = {i: n for i, n in Counter(c["event_id"] for c in got).items() if n > 1}
    assert repeated == {}, f"{len(repeated)} stage changes seen more than once"
    assert sorted(c["event_id"] for c in got) == sorted(c["event_id"] for c in expected)
    for lead, changes in verify.kept_changes(got).items():  # each lead's, in order
        assert len(changes) == len([c for c in got if c["lead_id"] == lead]), lead
    changelog = "{}-app-leads-changelog"
    states_expected = committed_states(
        bootstrap, changelog.format(reference.prefix), reference.prefix
    )
    states_got = committed_states(bootstrap, changelog.format(tested.prefix), tested.prefix)
    assert len(states_expected) > 0.9 * N_LEADS
    result = verify.compare(states_expected, states_got, expected, got)
    assert result.clean and result.consistent and result.repeated_ids == 0, result


def test_kill_9_during_a_backlog_publishes_each_stage_change_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    reference, crashing, _ = backlogs(kafka_bootstrap, tmp_path, "kill", seed=23)
    # Exactly once, killed KILLS times mid-backlog, restarted as the same static
    # member (its transactional id), alternately on its data dir and on a fresh one.
    env = {**EXACTLY_ONCE, "LEADSTREAM_GROUP_INSTANCE_ID": f"{crashing.prefix}-0"}
    port = free_port()
    kills, ready_s = 0, []
    for n in range(KILLS):
        worker = Worker(
            kafka_bootstrap, crashing, tmp_path / f"kill-{n % 2}", extra_env=env, web_port=port
        ).start()
        started = time.monotonic()
        try:
            worker.wait_ready()
            ready_s.append(time.monotonic() - started)
            poll(
                lambda w=worker: events_committed(w) >= KILL_AFTER,
                timeout=120,
                interval=0.01,
                what=f"{KILL_AFTER} records committed",
            )
        finally:
            worker.kill()
        committed, end = progress(kafka_bootstrap, crashing)
        kills += committed < end
    assert kills >= 2, "the backlog ended before the kills: nothing was tested"
    last = Worker(kafka_bootstrap, crashing, tmp_path / "kill-0", extra_env=env, web_port=port)
    try:
        run_to_the_end(last.start(), kafka_bootstrap, crashing)
    finally:
        if last.proc is not None and last.proc.poll() is None:
            last.kill()  # failed before its stop: leave no worker behind
    # Every restart after a kill (the first start has no predecessor).
    assert max(ready_s[1:]) <= READY_AFTER_KILL_S, ready_s
    assert_each_stage_change_once(kafka_bootstrap, reference, crashing)
    assert_a_preload_leaves_nothing_to_replay(kafka_bootstrap, crashing, tmp_path / "fresh")


def test_a_partition_moving_to_another_worker_keeps_each_stage_change_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Half the backlog before the second worker joins, half while it does.
    reference, scaled, rest = backlogs(
        kafka_bootstrap, tmp_path, "scale", seed=29, held=N_EVENTS // 2
    )
    first = Worker(
        kafka_bootstrap,
        scaled,
        tmp_path / "a",
        extra_env={**EXACTLY_ONCE, "LEADSTREAM_GROUP_INSTANCE_ID": f"{scaled.prefix}-a"},
    ).start()
    second = Worker(
        kafka_bootstrap,
        scaled,
        tmp_path / "b",
        extra_env={**EXACTLY_ONCE, "LEADSTREAM_GROUP_INSTANCE_ID": f"{scaled.prefix}-b"},
    )
    try:
        first.wait_ready()
        poll(
            lambda: (p := progress(kafka_bootstrap, scaled))[0] == p[1],
            timeout=120,
            interval=0.2,
            what="the first half committed",
        )
        # The rebalance moves a partition, whose changelog the first worker wrote in
        # transactions, to the second: it reads it to its end by position (Faust's
        # own count would wait for a commit marker forever), while the rest arrives.
        started = time.monotonic()
        second.start()
        asyncio.run(_produce(kafka_bootstrap, scaled, rest))
        second.wait_ready()
        assert time.monotonic() - started <= READY_AFTER_KILL_S
        poll(
            lambda: (p := progress(kafka_bootstrap, scaled))[0] == p[1],
            timeout=180,
            interval=0.5,
            what="every input offset committed",
        )
        caught_up = (second.log_path.read_text() if second.log_path else "").count("caught up")
        assert caught_up >= 1  # its recovery read the moved partition's changelog
    finally:
        for worker in (second, first):
            if worker.proc is not None and worker.proc.poll() is None:
                assert worker.stop() == 0, worker.log_tail()
    assert_each_stage_change_once(kafka_bootstrap, reference, scaled)


def assert_a_preload_leaves_nothing_to_replay(bootstrap: str, topics: Topics, data: Path) -> None:
    """A fresh worker's preload of the transactional changelog ends by position: its
    persisted offsets are the stable ends - 1 (commit markers, which no consumer is
    given), so Faust's count of what is left to replay is zero."""
    settings = Settings.from_env(
        environ=topics.env, bootstrap_servers=bootstrap, partitions=PARTITIONS, data_dir=str(data)
    )
    ls = create_app(settings)
    try:
        stats = preload_changelog(ls.table, bootstrap, read_committed=True)
    finally:
        close_app_loops(ls.app)
    changelog = f"{topics.prefix}-app-leads-changelog"
    records = asyncio.run(read_committed(bootstrap, changelog))
    last_record = {p: max(r.offset for r in records if r.partition == p) for p in range(PARTITIONS)}
    ends = asyncio.run(stable_ends(bootstrap, changelog))
    assert stats.offsets == {p: end - 1 for p, end in ends.items()}
    assert all(last_record[p] < ends[p] - 1 for p in ends)  # each ends in a marker


async def stable_ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


def test_the_group_refuses_a_windows_offsets_from_a_member_it_no_longer_has(
    kafka_bootstrap: str,
) -> None:
    """The zombie fence (groupfencing): offsets sent as a generation the group has
    left are refused and the transaction can only abort; as the current member,
    they commit. Without the member (aiokafka's TxnOffsetCommit v0) the coordinator
    cannot tell, and takes them."""
    asyncio.run(_refused_as_a_stale_member(kafka_bootstrap))


async def _refused_as_a_stale_member(bootstrap: str) -> None:
    groupfencing.install()
    topic = f"itz-{uuid.uuid4().hex[:8]}"
    await ensure_topics_async(bootstrap, {topic: 1})
    group, tp = f"{topic}-group", TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        group_instance_id="worker-0",
        enable_auto_commit=False,
    )
    stable = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-txn")
    await consumer.start()
    await stable.start()
    await producer.start()
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment():  # joined: the coordinator knows the member
            assert time.monotonic() < deadline, "the consumer never joined its group"
            await consumer.getmany(timeout_ms=200)
        coordinator = consumer._coordinator
        generation, member_id = coordinator.generation, coordinator.member_id

        async def commit(offset: int, group_id: str) -> None:
            await producer.begin_transaction()
            try:
                # A record too: the transaction holds a partition (its stable end).
                await producer.send_and_wait(topic, b"window", partition=0)
                await producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(offset, "")}, group_id
                )
            except BaseException:
                await producer.abort_transaction()
                raise
            await producer.commit_transaction()

        def member(generation: int) -> GroupMember:
            return GroupMember(
                group, generation=generation, member_id=member_id, instance_id="worker-0"
            )

        async def committed(offset: int) -> bool:
            # The offsets land with the commit marker, written after the commit returns.
            deadline = time.monotonic() + 10
            while (now := await consumer.committed(tp)) != offset:
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.05)
            return now == offset

        async def settled() -> bool:
            # No transaction left open on the topic: its stable end (what a
            # read_committed reader may read up to) reaches its end.
            deadline = time.monotonic() + 10
            while (await stable.end_offsets([tp]))[tp] != (await consumer.end_offsets([tp]))[tp]:
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.05)
            return True

        with pytest.raises(StaleMember, match="ILLEGAL_GENERATION"):
            await commit(5, member(generation + 1))
        assert await settled()  # the abort reached the coordinator, not only aiokafka
        await commit(5, member(generation))
        assert await committed(5)  # and not before: the refused 5 never was
        await commit(7, group)  # v0: no member to check
        assert await committed(7)
    finally:
        await producer.stop()
        await stable.stop()
        await consumer.stop()
