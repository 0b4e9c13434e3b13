"""kill -9, several times, in the middle of a backlog: every lead's stored state ends
exactly as after an uninterrupted run of the same input, and the stage changes a
consumer keeps by the documented rule (highest ``sequence`` per lead) are the same."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.local import verify
from streams.local.workload import generate_events
from streams.topics import ensure_topics
from tests.integration.harness import Topics, Worker, free_port, poll

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


def progress(bootstrap: str, topics: Topics) -> tuple[int, int]:
    inputs = [getattr(topics, role) for role in KIND_ROLE.values()]
    result: tuple[int, int] = asyncio.run(
        verify.group_progress(bootstrap, f"{topics.prefix}-app", inputs, PARTITIONS)
    )
    return result


def stored_states(bootstrap: str, topics: Topics) -> dict[str, Any]:
    changelog = f"{topics.prefix}-app-leads-changelog"
    result: dict[str, Any] = asyncio.run(verify.last_states(bootstrap, changelog, topics.prefix))
    return result


def stage_changes(bootstrap: str, topics: Topics) -> list[dict[str, Any]]:
    records = asyncio.run(verify.read_topic(bootstrap, topics.qualified))
    return [orjson.loads(r.value) for r in records]


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
    result = verify.compare(
        expected,
        got,
        stage_changes(kafka_bootstrap, reference),
        stage_changes(kafka_bootstrap, crashing),
    )
    assert result.clean and result.consistent, result  # examples name what differs
