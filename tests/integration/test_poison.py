"""Poison input on a real broker (issue 23): each case the issue names ends with the
worker running, the record in ``leadstream.dlq`` with its reason, and every other
lead's events scored, written and kept across a restart on a fresh data dir (the
states come back from the changelog alone)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.settings import Settings
from streams.topics import internal_topics
from tests.integration.harness import TopicReader, Topics, Worker, event, poll, produce_sync

FAST_MODEL = Path(__file__).with_name("fast_model.toml")
#: Bigger than the default dead-letter bound (512 KiB), under the broker's 1 MiB.
HUGE = 1_000_000
#: Attributes per profile event: three of them take a lead past the state's 200.
ATTRIBUTES_EACH = 90


@pytest.fixture(scope="module")
def topics() -> Topics:
    return Topics(f"itp-{uuid.uuid4().hex[:8]}")


def start(bootstrap: str, topics: Topics, data_dir: Path) -> Worker:
    worker = Worker(bootstrap, topics, data_dir, model_path=FAST_MODEL).start()
    worker.wait_ready()
    return worker


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, topics: Topics, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    w = start(kafka_bootstrap, topics, tmp_path_factory.mktemp("poison"))
    try:
        yield w
    finally:
        if w.proc is not None and w.proc.poll() is None:
            assert w.stop() == 0, w.log_tail()


def profile(lead: str, eid: str, attributes: dict[str, Any]) -> bytes:
    return orjson.dumps(event("profile", lead, eid, time.time(), attributes=attributes))


def nested_profile(lead: str, depth: int) -> bytes:
    """A profile event with one attribute nested ``depth`` levels (built as text:
    the JSON encoders refuse that depth)."""
    stamp = event("profile", lead, "x", time.time())["occurred_at"]
    deep = '{"a":' * depth + "1" + "}" * depth
    return (
        f'{{"event_id":"{lead}-deep","lead_id":"{lead}","occurred_at":"{stamp}",'
        f'"attributes":{{"deep":{deep}}}}}'
    ).encode()


def test_poison_never_crashes_the_worker_nor_costs_a_neighbour(
    worker: Worker, kafka_bootstrap: str, tmp_path: Path
) -> None:
    t = worker.topics
    repartition, ticks = internal_topics(Settings.from_env(worker.settings()))
    poison_lead = f"poison-{uuid.uuid4().hex[:6]}"
    wide_lead = f"wide-{uuid.uuid4().hex[:6]}"
    neighbours = [f"lead-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    now = time.time()

    def visits(n: int) -> list[tuple[str, bytes | None, bytes]]:
        return [
            (
                t.web,
                lead.encode(),
                orjson.dumps(event("web", lead, f"{lead}-v{n}", now, url="https://x.io/blog")),
            )
            for lead in neighbours
        ]

    key = poison_lead.encode()
    many = {f"a{i}": i for i in range(60_000)}
    rerouted = orjson.dumps(event("web", poison_lead, "r", now))
    wide = [
        profile(wide_lead, f"{wide_lead}-p{i}", {f"a{i}_{j}": j for j in range(ATTRIBUTES_EACH)})
        for i in range(3)
    ]
    poison: list[tuple[str, bytes | None, bytes, str]] = [
        (t.web, key, b"\xff" * HUGE, "invalid_json"),
        (t.profiles, key, nested_profile(poison_lead, 300), "schema_violation"),
        (t.profiles, key, profile(poison_lead, "big", {"big": "x" * 400_000}), "schema_violation"),
        (t.profiles, key, profile(poison_lead, "many", many), "schema_violation"),
        (t.profiles, wide_lead.encode(), wide[2], "state_limit"),
        (repartition, key, rerouted, "invalid_internal_record"),
        (ticks, b"\xff\xfe", b"0", "invalid_internal_record"),
    ]  # fmt: skip
    records = [
        *visits(1),
        (t.profiles, wide_lead.encode(), wide[0]),
        (t.profiles, wide_lead.encode(), wide[1]),
    ]
    records += [(topic, k, value) for topic, k, value, _ in poison]
    records += visits(2)
    produce_sync(kafka_bootstrap, records)

    dlq = TopicReader(kafka_bootstrap, t.dlq)
    dead = poll(lambda: len(r := dlq.records()) >= len(poison) and r, timeout=60, what="DLQ")
    assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
    reasons = sorted(dict(r.headers)["leadstream.dlq.reason"].decode() for r in dead)
    assert reasons == sorted(reason for *_, reason in poison)
    sizes = {
        int(dict(r.headers)["leadstream.dlq.original_size"]): len(r.value)
        for r in dead
        if "leadstream.dlq.original_size" in dict(r.headers)
    }
    assert HUGE in sizes and sizes[HUGE] < HUGE  # stored truncated, its size said

    def seen(w: Worker, lead: str) -> int:
        status, body = w.get_json(f"/leads/{lead}")
        return int(body["events_seen"]) if status == 200 else -1

    expected = {lead: 2 for lead in neighbours} | {wide_lead: 2}
    poll(
        lambda: {lead: seen(worker, lead) for lead in expected} == expected,
        timeout=30,
        what="every neighbour's events scored",
    )
    status, _ = worker.get_json(f"/leads/{poison_lead}")
    assert status == 404  # none of its records was valid
    assert worker.stop() == 0, worker.log_tail()

    # Another pod: no local store, the changelog alone.
    successor = start(kafka_bootstrap, t, tmp_path / "fresh")
    try:
        assert {lead: seen(successor, lead) for lead in expected} == expected
    finally:
        assert successor.stop() == 0, successor.log_tail()
