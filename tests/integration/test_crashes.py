"""kill -9, several times, in the middle of a backlog: every lead's stored state ends
exactly as after an uninterrupted run of the same input, and the stage changes a
consumer keeps by the documented rule (highest ``sequence`` per lead) are the same."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.local.workload import generate_events
from streams.topics import ensure_topics
from tests.integration.harness import TopicReader, Topics, Worker, free_port, poll

#: Hot leads: ~1,000 events each, far past the 256 event ids a state keeps for dedup,
#: so a record applied twice would show in ``events_seen``.
N_EVENTS = 30_000
N_LEADS = 20
#: Each worker of the crashing run is killed once it has read this many records.
KILL_AFTER = 5_000
#: Small windows, and commits that lag them (Faust commits every 2.8 s): at a kill,
#: states are written whose records are not committed yet, and get read again.
WORKER_ENV = {"LEADSTREAM_FLUSH_EVENTS": "1500", "LEADSTREAM_BATCH_SIZE": "200"}
#: The harness's workers' partition count (tests.integration.harness.Worker).
PARTITIONS = 2
KIND_ROLE = {"web": "web", "email": "email", "webinar": "webinar", "profile": "profiles"}


async def _produce(bootstrap: str, topics: Topics, events: list[tuple[str, str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        for kind, lead, value in events:
            await producer.send(getattr(topics, KIND_ROLE[kind]), value, key=lead.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _progress(bootstrap: str, topics: Topics) -> tuple[int, int]:
    """(committed, end) offsets summed over the input partitions of the worker's group."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(f"{topics.prefix}-app")
    finally:
        await admin.close()
    inputs = {getattr(topics, role) for role in KIND_ROLE.values()}
    done = sum(m.offset for tp, m in committed.items() if tp.topic in inputs and m.offset > 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in inputs for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return done, sum(ends.values())


def progress(bootstrap: str, topics: Topics) -> tuple[int, int]:
    return asyncio.run(_progress(bootstrap, topics))


def stored_states(bootstrap: str, topics: Topics) -> dict[str, dict[str, Any]]:
    """Each lead's last state on the table's changelog, its positions' topic names
    made neutral (the two runs use different topics)."""
    changelog = TopicReader(bootstrap, f"{topics.prefix}-app-leads-changelog")
    out: dict[str, dict[str, Any]] = {}
    for record in changelog.records():
        state = orjson.loads(record.value)
        state["applied"] = {
            k.replace(topics.prefix, "<run>"): v for k, v in state["applied"].items()
        }
        out[record.key.decode()] = state
    return out


def assert_same(got: Any, expected: Any, where: str) -> None:
    """Equal, floats to 1e-6 (sums of decayed points may round differently)."""
    if isinstance(expected, float) and isinstance(got, float):
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-6), (where, got, expected)
    elif isinstance(expected, dict) and isinstance(got, dict):
        assert got.keys() == expected.keys(), where
        for key in expected:
            assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list) and isinstance(got, list):
        assert len(got) == len(expected), (where, len(got), len(expected))
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_same(g, e, f"{where}[{i}]")
    else:
        assert got == expected, (where, got, expected)


def kept_changes(bootstrap: str, topics: Topics) -> dict[str, list[tuple[Any, ...]]]:
    """Per lead, the stage changes a consumer keeps: ignore a sequence not above the last."""
    kept: dict[str, list[tuple[Any, ...]]] = {}
    for change in TopicReader(bootstrap, topics.qualified).values():
        mine = kept.setdefault(change["lead_id"], [])
        if not mine or change["sequence"] > mine[-1][0]:
            mine.append(
                (change["sequence"], change["event_id"], change["to_stage"], change["changed_at"])
            )
    return kept


def records_read(worker: Worker) -> int:
    """Records the worker process has taken in (every outcome: scored, replayed, ...)."""
    status, body = worker.get("/metrics")
    if status != 200:
        return 0
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("leadstream_events_total{")
        )
    )


def run_to_the_end(worker: Worker, bootstrap: str, topics: Topics) -> None:
    worker.wait_ready()
    poll(
        lambda: (p := progress(bootstrap, topics))[0] == p[1],
        timeout=180,
        interval=0.5,
        what="every input offset committed",
    )
    assert worker.stop() == 0, worker.log_tail()


def test_kill_9_during_a_backlog_changes_no_lead(kafka_bootstrap: str, tmp_path: Path) -> None:
    # One input topic, so each lead's records have one order in both runs (records of
    # different topics interleave as fetches happen to come back, which may change a
    # hysteresis crossing, or which repeated id the bounded dedup still remembers).
    events = list(
        generate_events(
            n_events=N_EVENTS,
            n_leads=N_LEADS,
            seed=11,
            start=time.time() - 3600,
            span_s=3000,
            mix=(1.0, 0.0, 0.0),
            profile_ratio=0.0,
        )
    )
    run_id = uuid.uuid4().hex[:6]
    reference, crashing = Topics(f"ref-{run_id}"), Topics(f"kill-{run_id}")
    for topics in (reference, crashing):
        inputs = {getattr(topics, role): PARTITIONS for role in KIND_ROLE.values()}
        ensure_topics(kafka_bootstrap, inputs, timeout=60)
        asyncio.run(_produce(kafka_bootstrap, topics, events))

    # Uninterrupted.
    ref_worker = Worker(kafka_bootstrap, reference, tmp_path / "ref", extra_env=WORKER_ENV)
    run_to_the_end(ref_worker.start(), kafka_bootstrap, reference)

    # Three kill -9, each once the worker has read KILL_AFTER records (its commits lag
    # behind), alternating between the same data dir (local store kept) and a fresh
    # one (states restored from the changelog).
    kills = 0
    # The same static group member each time (same id, same web address): a restart
    # takes its partitions back at once instead of waiting out the dead one's session.
    static = {**WORKER_ENV, "LEADSTREAM_GROUP_INSTANCE_ID": f"{crashing.prefix}-0"}
    port = free_port()
    for n in range(3):
        worker = Worker(
            kafka_bootstrap, crashing, tmp_path / f"kill-{n % 2}", extra_env=static, web_port=port
        ).start()
        worker.wait_ready()
        poll(
            lambda w=worker: records_read(w) >= KILL_AFTER,
            timeout=120,
            interval=0.02,
            what=f"{KILL_AFTER} records read",
        )
        worker.kill()
        done, end = progress(kafka_bootstrap, crashing)
        kills += done < end
    assert kills >= 2, "the backlog ended before the kills: nothing was tested"
    last = Worker(kafka_bootstrap, crashing, tmp_path / "kill-0", extra_env=static, web_port=port)
    run_to_the_end(last.start(), kafka_bootstrap, crashing)

    expected = stored_states(kafka_bootstrap, reference)
    got = stored_states(kafka_bootstrap, crashing)
    assert len(expected) == N_LEADS
    assert sum(s["events_seen"] for s in expected.values()) > 0.9 * N_EVENTS
    for lead, state in expected.items():
        assert_same(got[lead], state, lead)
    assert kept_changes(kafka_bootstrap, crashing) == kept_changes(kafka_bootstrap, reference)
