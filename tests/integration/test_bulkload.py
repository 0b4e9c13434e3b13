"""Preloading the table changelog into a fresh data dir, on the real broker.

States are written straight into ``<app_id>-leads-changelog`` (as a worker would
have), copied with :func:`streams.faust_adapter.preload.preload_changelog` into the data dir the
worker's Faust store will open, and then served by a real ``leadstream worker``
that replays (almost) nothing: Faust logs "Restoring state from changelog topics..."
only when some changelog partition's persisted offset is behind its end.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.core.partitioning import Partitioner
from streams.faust_adapter.app import Leadstream, create_app
from streams.faust_adapter.preload import (
    ChangelogStore,
    PreloadStats,
    _apply,
    _open,
    changelog_store,
    preload_changelog,
    read_offsets,
)
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.core.test_statecodec import realistic_states
from tests.integration.harness import Topics, Worker, event, poll, produce_sync, to_record
from tests.support import close_app_loops

PARTITIONS = 2  # the harness Worker's default
#: Faust's recovery logs this only when it has changelog records to replay.
REPLAY_LINE = "Restoring state from changelog topics"

SAMPLES = [s.to_dict() for s in realistic_states(32, seed=11)]


def state_bytes(lead: str, variant: int = 0) -> bytes:
    """A stored state (``orjson`` of ``to_dict()``) for ``lead``; each variant has its
    own ``events_seen``, which the query API shows."""
    d = dict(SAMPLES[zlib.crc32(lead.encode()) % len(SAMPLES)])
    d["lead_id"] = lead
    d["events_seen"] = d["events_seen"] + 1000 * variant
    return orjson.dumps(d)


@dataclass
class App:
    bootstrap: str
    topics: Topics
    data_dir: Path
    ls: Leadstream
    store: ChangelogStore

    @property
    def changelog(self) -> str:
        return self.store.topic

    def write(self, records: Iterable[tuple[str, bytes | None]]) -> None:
        """Append (lead id, state bytes or None) to the changelog, in the lead's partition."""
        asyncio.run(_produce(self.bootstrap, self.changelog, list(records)))

    def preload(self) -> PreloadStats:
        return preload_changelog(self.ls.table, self.bootstrap)

    def end_offsets(self) -> dict[int, int]:
        return asyncio.run(_end_offsets(self.bootstrap, self.changelog))

    def stored(self) -> dict[bytes, bytes]:
        """Every key and value in the table's RocksDB files (persisted offsets left out)."""
        out: dict[bytes, bytes] = {}
        for partition in range(PARTITIONS):
            db = self.store.open_db(self.store.partition_path(partition))
            try:
                items: Any = db.items()  # raw mode: (bytes, bytes)
                out.update((k, v) for k, v in items if k != self.store.offset_key)
            finally:
                db.close()
        return out


@pytest.fixture
def app(kafka_bootstrap: str, tmp_path: Path) -> Iterator[App]:
    topics = Topics(f"bulk-{uuid.uuid4().hex[:8]}")
    data_dir = tmp_path / "data"
    settings = Settings.from_env(
        environ=topics.env,
        bootstrap_servers=kafka_bootstrap,
        partitions=PARTITIONS,
        data_dir=str(data_dir),
    )
    ls = create_app(settings)
    store = changelog_store(ls.table)
    assert store is not None
    ensure_topics(kafka_bootstrap, {store.topic: PARTITIONS}, timeout=60)
    try:
        yield App(kafka_bootstrap, topics, data_dir, ls, store)
    finally:
        close_app_loops(ls.app)


async def _produce(bootstrap: str, topic: str, records: list[tuple[str, bytes | None]]) -> None:
    partitioner = Partitioner(PARTITIONS)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic, value, key=lead.encode(), partition=partitioner.partition_of(lead)
            )
            for lead, value in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    return {p: end for (_, p), end in (await _ends(bootstrap, [topic])).items()}


def faust_log_table(log: str, title: str) -> dict[int, int]:
    """Partition -> number from the last of Faust's recovery tables titled ``title``
    ("Highwater - Active": last changelog offset; "Reading Starts At - Active": the
    persisted offset recovery continues after, -1 for nothing)."""
    rows: dict[int, int] = {}
    lines = log.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith(f"+{title}"))
    for line in lines[start + 3 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("| ").split("|")]
        rows[int(cells[1])] = int(cells[2])
    return rows


def leads(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


NO_PRELOAD = {"LEADSTREAM_PRELOAD_CHANGELOG": "false"}


@pytest.mark.parametrize("mode", ["by-test", "by-worker", "control"])
def test_worker_serves_preloaded_states_and_replays_nothing(app: App, mode: str) -> None:
    # by-test: preloaded here, the worker's own preload off; by-worker: the worker's
    # default start; control: no preload at all.
    preloaded = mode != "control"
    ids = leads("lead", 2000)
    app.write((lead, state_bytes(lead)) for lead in ids)
    ends = app.end_offsets()
    assert sum(ends.values()) == len(ids)
    if mode == "by-test":
        stats = app.preload()
        assert (stats.records, stats.tombstones, stats.partitions) == (len(ids), 0, PARTITIONS)
        # Faust's persisted offset is the last record applied: end offset - 1.
        last = {p: end - 1 for p, end in ends.items()}
        assert dict(stats.offsets) == last
        assert read_offsets(app.store, range(PARTITIONS)) == last
        assert len(app.stored()) == len(ids)

    env = {} if mode == "by-worker" else NO_PRELOAD
    worker = Worker(
        app.bootstrap, app.topics, app.data_dir, partitions=PARTITIONS, extra_env=env
    ).start()
    try:
        worker.wait_ready(timeout=120)
        for lead in ids[::97]:
            status, body = worker.get_json(f"/leads/{lead}")
            assert status == 200, (lead, status, body)
            stored = orjson.loads(state_bytes(lead))
            assert body["lead_id"] == lead
            assert (body["events_seen"], body["grade"]) == (stored["events_seen"], stored["grade"])
        log = worker.log_path.read_text(errors="replace") if worker.log_path else ""
        assert f"leadstream: {len(ids)} leads recovered" in log, worker.log_tail()
        # The observables: Faust's recovery starts at the changelog's last offset (nothing
        # to replay) and never enters replay; the control (no preload) starts at -1 and
        # replays every record.
        highwaters = faust_log_table(log, "Highwater - Active")
        starts = faust_log_table(log, "Reading Starts At - Active")
        assert highwaters == {p: end - 1 for p, end in ends.items()}
        if preloaded:
            assert starts == highwaters
        else:
            assert starts == dict.fromkeys(highwaters, -1)
        assert (REPLAY_LINE in log) is not preloaded, worker.log_tail(80)
        worker_preloaded = f"preloaded {len(ids)} changelog records of {PARTITIONS} partitions"
        assert (worker_preloaded in log) is (mode == "by-worker"), worker.log_tail(80)
    finally:
        assert worker.stop() == 0, worker.log_tail()


def test_faust_continues_after_the_preloaded_offset(app: App) -> None:
    # What makes loading partitions another worker will own harmless: Faust's recovery
    # starts at the persisted offset and replays only what came after it.
    first = leads("c", 500)
    app.write((lead, state_bytes(lead)) for lead in first)
    preloaded = dict(app.preload().offsets)
    updated, new = first[:50], leads("d", 50)
    app.write([(x, state_bytes(x, 1)) for x in updated] + [(x, state_bytes(x)) for x in new])
    ends = app.end_offsets()

    worker = Worker(
        app.bootstrap, app.topics, app.data_dir, partitions=PARTITIONS, extra_env=NO_PRELOAD
    ).start()
    try:
        worker.wait_ready(timeout=120)
        log = worker.log_path.read_text(errors="replace") if worker.log_path else ""
        assert faust_log_table(log, "Reading Starts At - Active") == preloaded
        assert faust_log_table(log, "Highwater - Active") == {p: e - 1 for p, e in ends.items()}
        assert REPLAY_LINE in log
        assert "leadstream: 550 leads recovered" in log, worker.log_tail()
        for lead, variant in [(updated[0], 1), (updated[-1], 1), (new[0], 0), (first[-1], 0)]:
            status, body = worker.get_json(f"/leads/{lead}")
            assert status == 200, (lead, status, body)
            assert body["events_seen"] == orjson.loads(state_bytes(lead, variant))["events_seen"]
    finally:
        assert worker.stop() == 0, worker.log_tail()


def test_a_second_preload_copies_only_new_records(app: App) -> None:
    first = leads("a", 300)
    app.write((lead, state_bytes(lead)) for lead in first)
    assert app.preload().records == 300

    updated, new = first[:100], leads("b", 100)
    app.write(
        [(lead, state_bytes(lead, 1)) for lead in updated] + [(x, state_bytes(x)) for x in new]
    )
    stats = app.preload()
    assert (stats.records, stats.partitions) == (200, PARTITIONS)
    assert dict(stats.offsets) == {p: end - 1 for p, end in app.end_offsets().items()}
    expected = {lead.encode(): state_bytes(lead) for lead in first + new}
    expected |= {lead.encode(): state_bytes(lead, 1) for lead in updated}
    assert app.stored() == expected

    again = app.preload()
    assert (again.records, again.partitions) == (0, PARTITIONS)
    assert again.offsets == stats.offsets


def test_tombstones_delete_keys(app: App) -> None:
    kept, gone = leads("k", 50), leads("g", 20)
    app.write((lead, state_bytes(lead)) for lead in kept + gone)
    assert app.preload().records == 70
    # Deleted after the first preload, and created + deleted within the second.
    brief = leads("brief", 5)
    app.write(
        [(lead, None) for lead in gone]
        + [(lead, state_bytes(lead)) for lead in brief]
        + [(lead, None) for lead in brief]
    )
    stats = app.preload()
    assert (stats.records, stats.tombstones) == (30, 25)
    assert app.stored() == {lead.encode(): state_bytes(lead) for lead in kept}
    assert dict(stats.offsets) == {p: end - 1 for p, end in app.end_offsets().items()}


def test_a_store_ahead_of_the_changelog_is_left_to_faust(app: App) -> None:
    app.write((lead, state_bytes(lead)) for lead in leads("x", 40))
    # Partition 0's store claims an offset the changelog never reached (say, the topic
    # was recreated): copying into it would mix two histories.
    db = _open(app.store, 0)
    try:
        _apply(db, [_Record(10_000, b"old", b"{}")], app.store.offset_key)
    finally:
        db.close()
    stats = app.preload()
    assert stats.skipped == (0,)
    assert stats.partitions == PARTITIONS - 1
    assert read_offsets(app.store, [0]) == {0: 10_000}
    assert read_offsets(app.store, [1]) == {1: app.end_offsets()[1] - 1}


def test_a_missing_changelog_is_not_created(kafka_bootstrap: str, tmp_path: Path) -> None:
    topics = Topics(f"bulk-new-{uuid.uuid4().hex[:8]}")
    settings = Settings.from_env(
        environ=topics.env, bootstrap_servers=kafka_bootstrap, data_dir=str(tmp_path / "d")
    )
    ls = create_app(settings)
    try:
        stats = preload_changelog(ls.table, kafka_bootstrap)
        assert (stats.records, stats.partitions) == (0, 0)
        # Faust creates it (compacted, with the table's partitions) when the worker starts;
        # a metadata request by name would have auto-created it here.
        assert f"{settings.app_id}-leads-changelog" not in asyncio.run(_topics(kafka_bootstrap))
    finally:
        close_app_loops(ls.app)


class _Record:
    def __init__(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.offset, self.key, self.value = offset, key, value


async def _topics(bootstrap: str) -> list[Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def _committed(bootstrap: str, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        return {(tp.topic, tp.partition): (await consumer.committed(tp)) or 0 for tp in tps}
    finally:
        await consumer.stop()


def test_what_a_worker_writes_agrees_in_store_changelog_and_committed_offsets(
    app: App,
) -> None:
    # The worker writes states past Faust's table API (streams/leadstore.py) and acks
    # offsets past its per-message path (streams/intake.py): the RocksDB files, the
    # persisted changelog offsets and the group's committed offsets must still say
    # what Faust's own path would have.
    worker = Worker(app.bootstrap, app.topics, app.data_dir, partitions=PARTITIONS).start()
    ids = leads(f"w{uuid.uuid4().hex[:6]}", 24)
    inputs = [app.topics.web, app.topics.email, app.topics.webinar, app.topics.profiles]
    try:
        worker.wait_ready(timeout=120)
        at = time.time() - 60
        produce_sync(
            app.bootstrap,
            [to_record(topic, msg) for lead in ids for topic, msg in _events(app.topics, lead, at)],
        )
        sent = asyncio.run(_ends(app.bootstrap, inputs))
        group = app.topics.env["LEADSTREAM_APP_ID"]
        poll(
            lambda: asyncio.run(_committed(app.bootstrap, group, inputs)) == sent,
            timeout=60,
            what="every input offset committed",
        )
    finally:
        assert worker.stop() == 0, worker.log_tail()
    ends = app.end_offsets()
    assert sum(ends.values()) >= len(ids)
    persisted = read_offsets(app.store, range(PARTITIONS))
    assert persisted == {p: (end - 1 if end else None) for p, end in ends.items()}
    stored = app.stored()
    assert set(stored) == {lead.encode() for lead in ids}
    assert all(orjson.loads(v)["events_seen"] == 2 for v in stored.values())


def _events(topics: Topics, lead: str, at: float) -> list[tuple[str, dict[str, Any]]]:
    return [
        (topics.web, event("web", lead, f"{lead}-w", at, url="https://x.io/pricing")),
        (topics.email, event("email", lead, f"{lead}-e", at + 1, action="click", campaign_id="c")),
    ]


async def _ends(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): ends[tp] for tp in tps}
    finally:
        await consumer.stop()


def _scored(worker: Worker) -> float:
    status, raw = worker.get("/metrics")
    if status != 200:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in raw.decode().splitlines()
        if line.startswith("leadstream_events_total{") and 'outcome="scored"' in line
    )


def test_a_graceful_stop_writes_and_acks_what_it_scored(app: App) -> None:
    # Windows that never come due on their own: only the stop can write them. Without
    # that the next owner would re-read every event and re-send its stage changes.
    worker = Worker(
        app.bootstrap,
        app.topics,
        app.data_dir,
        partitions=PARTITIONS,
        extra_env={
            "LEADSTREAM_FLUSH_INTERVAL_SECONDS": "3600",
            "LEADSTREAM_FLUSH_EVENTS": "1000000",
        },
    ).start()
    ids = leads(f"g{uuid.uuid4().hex[:6]}", 16)
    inputs = [app.topics.web, app.topics.email, app.topics.webinar, app.topics.profiles]
    group = app.topics.env["LEADSTREAM_APP_ID"]
    try:
        worker.wait_ready(timeout=120)
        at = time.time() - 60
        records = [to_record(t, msg) for lead in ids for t, msg in _events(app.topics, lead, at)]
        produce_sync(app.bootstrap, records)
        poll(lambda: _scored(worker) >= len(records), timeout=60, what="every event scored")
        assert sum(asyncio.run(_committed(app.bootstrap, group, inputs)).values()) == 0
    finally:
        assert worker.stop() == 0, worker.log_tail()
    sent = asyncio.run(_ends(app.bootstrap, inputs))
    assert asyncio.run(_committed(app.bootstrap, group, inputs)) == sent
    assert "wrote the state windows before stopping" in worker.log_tail(200)
    stored = app.stored()
    assert set(stored) == {lead.encode() for lead in ids}
    assert all(orjson.loads(v)["events_seen"] == 2 for v in stored.values())
    ends = app.end_offsets()  # the changelog holds each lead's state too
    assert sum(ends.values()) == len(ids)
