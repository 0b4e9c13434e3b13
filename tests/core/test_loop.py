"""The worker loop itself (streams.core.loop.ScoringLoop), driven with in-memory fakes.

Every step the Faust adapter calls is exercised here without a broker: scoring a
batch, the write-behind window and its ack, a rebalance mid-window, a graceful stop
between batches, a window whose write fails, decay ticks and recovery.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from scoring import ScoringModel, load_model, load_model_text
from streams.core.inmemory import (
    MemorySender,
    MemorySource,
    MemoryStore,
    MemoryTransactions,
    TopicPartition,
)
from streams.core.loop import Batch, ScoringLoop
from streams.core.partitioning import Partitioner
from streams.core.statecodec import decode_state
from streams.metrics import Metrics
from streams.settings import Settings
from tests.core.poison import half_done_poison

FAST_MODEL = Path(__file__).resolve().parents[1] / "integration" / "fast_model.toml"
PARTITIONS = 2
WINDOW_S = 2.0
SMALL_DEDUP = "[settings]\ndedup_max_ids = 8"


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Harness:
    """A ScoringLoop over memory fakes, with a wall clock and a monotonic clock to move."""

    def __init__(
        self,
        store: MemoryStore | None = None,
        source: MemorySource | None = None,
        model: ScoringModel | None = None,
        transactions: MemoryTransactions | None = None,
        **settings: Any,
    ) -> None:
        """With ``transactions``, exactly-once (over that producer's store)."""
        self.settings = Settings.from_env(
            {},
            app_id="loop-unit",
            partitions=PARTITIONS,
            flush_interval_s=WINDOW_S,
            **settings,
        )
        self.source = source or MemorySource()
        self.store = store or (transactions.store if transactions else MemoryStore())
        self.transactions = transactions
        self.sender = MemorySender()
        self.metrics = Metrics.create()
        self.wall = Clock(time.time())
        self.mono = Clock(1000.0)
        self.loop = ScoringLoop(
            settings=self.settings,
            model=model or load_model(FAST_MODEL),
            metrics=self.metrics,
            source=self.source,
            store=self.store,
            sender=self.sender,
            transactions=transactions,
            clock=self.wall,
            monotonic=self.mono,
        )
        self.partition_of = Partitioner(PARTITIONS).partition_of
        self._eid = 0

    def web(self, lead: str, path: str) -> dict[str, Any]:
        self._eid += 1
        at = int((self.wall.t - 1) * 1000)
        url = f"https://example.com{path}"
        return {"event_id": f"e{self._eid}", "lead_id": lead, "occurred_at": at, "url": url}

    def put(self, *events: dict[str, Any], topic: str | None = None) -> None:
        """Queue the events as one batch per partition, keyed by lead."""
        by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {}
        for ev in events:
            lead = ev["lead_id"]
            by_partition.setdefault(self.partition_of(lead), []).append(
                (lead.encode(), orjson.dumps(ev))
            )
        for partition, values in by_partition.items():
            batch = self.source.batch(topic or self.settings.topic_web, partition, values)
            self.source.queue.put_nowait(batch)

    async def step(self) -> None:
        """What one turn of ScoringLoop.run does."""
        await self.loop.score_batches(await self.loop.take())

    async def write_window(self) -> None:
        """Let the open window come due, close, write and publish it over its pace."""
        self.mono.t += WINDOW_S
        await self.loop.score_batches([])  # closes it
        self.mono.t += WINDOW_S  # its paced write is due
        await self.loop.score_batches([])
        assert self.loop.writer.publishing is not None
        await self.loop.writer.publishing

    def tp(self, lead: str, topic: str | None = None) -> TopicPartition:
        return TopicPartition(topic or self.settings.topic_web, self.partition_of(lead))

    def stored(self, lead: str) -> Any:
        raw = self.store.get(lead.encode(), self.partition_of(lead))
        return None if raw is None else decode_state(raw)

    def stages_sent(self) -> list[Any]:
        """Stage change records sent (exactly-once: those a read_committed consumer sees)."""
        return (self.transactions or self.sender).to(self.settings.topic_qualified)

    def stages(self) -> list[tuple[str, str, str]]:
        """The stage changes sent (exactly-once: those a read_committed consumer sees)."""
        out = []
        for sent in self.stages_sent():
            change = orjson.loads(sent.value)
            out.append((change["from_stage"], change["to_stage"], change["cause"]))
        return out


async def test_stage_changes_leave_at_once_states_once_per_window_then_the_ack() -> None:
    h = Harness()
    h.put(h.web("lead-1", "/pricing"), h.web("lead-1", "/blog"), h.web("lead-2", "/blog"))
    await h.step()
    assert h.stages() == [("cold", "warm", "event")]
    assert h.store.changelog == [] and h.source.acked == {}  # nothing written yet
    await h.write_window()
    assert sorted(key for key, _, _ in h.store.changelog) == [b"lead-1", b"lead-2"]
    assert h.stored("lead-1").events_seen == 2
    assert h.source.acked[h.tp("lead-1")] >= 0
    assert sum(h.source.acked[tp] + 1 for tp in h.source.acked) == 3


async def test_a_lead_touched_again_while_its_window_is_written_keeps_both_versions() -> None:
    h = Harness()
    h.put(h.web("lead-1", "/blog"))
    await h.step()
    h.mono.t += WINDOW_S
    await h.loop.score_batches([])  # closed, not yet written (paced)
    h.put(h.web("lead-1", "/blog"))
    await h.step()  # the new window claims lead-1: the closed one keeps its copy
    h.mono.t += WINDOW_S
    await h.loop.score_batches([])
    assert h.loop.writer.publishing is not None
    await h.loop.writer.publishing
    assert h.stored("lead-1").events_seen == 1  # the closed window's version
    await h.write_window()
    assert h.stored("lead-1").events_seen == 2


async def test_a_rebalance_mid_window_drops_the_unacked_window() -> None:
    h = Harness()
    h.put(h.web("lead-1", "/pricing"), h.web("lead-1", "/blog"))
    await h.step()
    h.source.generation = 2  # partitions were revoked and assigned again
    h.put(h.web("lead-1", "/blog"))
    await h.step()
    discarded = h.metrics.registry.get_sample_value("leadstream_events_discarded_total")
    assert discarded == 2
    await h.write_window()
    # The first two events were never acked: their partition's owner reads them again.
    assert h.stored("lead-1").events_seen == 1
    assert h.source.acked[h.tp("lead-1")] == 2


async def test_a_stale_generations_batches_are_not_scored() -> None:
    h = Harness()
    h.put(h.web("lead-1", "/pricing"))
    h.source.generation = 2  # the batch above was fetched before the rebalance
    await h.step()
    assert h.stages() == [] and h.loop.writer.pending_events == 0


async def test_nothing_is_scored_while_a_rebalance_is_in_progress() -> None:
    h = Harness()
    h.source.active = False
    h.put(h.web("lead-1", "/pricing"))
    await h.step()
    assert h.stages() == [] and h.loop.writer.pending_events == 0


async def test_revoke_writes_and_acks_both_windows_before_partitions_move() -> None:
    h = Harness()
    h.put(h.web("lead-1", "/blog"))
    await h.step()
    h.mono.t += WINDOW_S
    await h.loop.score_batches([])  # one window closed ...
    h.put(h.web("lead-2", "/blog"))
    await h.step()  # ... and one open
    await h.loop.revoke()
    assert {key for key, _, _ in h.store.changelog} == {b"lead-1", b"lead-2"}
    # One record each: offset 0 of their partitions (or 0 and 1 if they share one).
    expected: dict[TopicPartition, int] = {}
    for lead in ("lead-1", "lead-2"):
        expected[h.tp(lead)] = expected.get(h.tp(lead), -1) + 1
    assert h.source.acked == expected
    assert h.loop.writer.pending_events == 0


async def test_a_stop_writes_everything_then_the_loop_scores_nothing_more() -> None:
    h = Harness()
    h.put(h.web("lead-1", "/pricing"))
    await h.step()
    await h.loop.stop()
    assert h.stored("lead-1").events_seen == 1
    acked = dict(h.source.acked)
    assert acked
    sent = len(h.sender.sent)
    running = asyncio.ensure_future(h.loop.run())
    try:
        h.put(h.web("lead-1", "/pricing"), h.web("lead-3", "/pricing"))
        for _ in range(100):  # yield to the loop until it took the batches
            if h.source.queue.empty():
                break
            await asyncio.sleep(0)
        assert h.source.queue.empty()
        await asyncio.sleep(0)
    finally:
        running.cancel()
    assert len(h.sender.sent) == sent  # taken, not scored: the next owner reads them
    assert h.source.acked == acked and h.stored("lead-3") is None


async def test_a_window_that_fails_to_write_is_never_acked() -> None:
    h = Harness()
    h.store.fail_with = RuntimeError("changelog refused")
    h.put(h.web("lead-1", "/pricing"))
    await h.step()
    with pytest.raises(RuntimeError, match="changelog refused"):
        await h.loop.write_windows("a test")
    assert h.source.acked == {}
    assert [str(e) for e in h.sender.failures] == ["changelog refused"]  # the worker stops
    # A later window is not acked either: that would commit past the lost states.
    h.store.fail_with = None
    h.put(h.web("lead-2", "/blog"))
    await h.step()
    with pytest.raises(RuntimeError, match="changelog refused"):
        await h.loop.write_windows("a test")
    assert h.source.acked == {}


async def test_states_are_stored_locally_only_after_their_changelog_write_and_outputs() -> None:
    h = Harness()
    published_after_flushes: list[int] = []
    publish = h.store.publish

    async def recording_publish(writes: Any) -> None:
        published_after_flushes.append(h.sender.flushes)
        await publish(writes)

    h.store.publish = recording_publish  # type: ignore[method-assign]
    h.store.fail_with = RuntimeError("changelog refused")
    h.put(h.web("lead-1", "/pricing"))
    await h.step()
    with pytest.raises(RuntimeError, match="changelog refused"):
        await h.loop.write_windows("a test")
    # Not delivered, so not stored: a restart on this store reads the event again and
    # sends its stage change again, instead of skipping it as already applied.
    assert h.stored("lead-1") is None
    assert published_after_flushes == [1]  # the stage change was flushed first
    h.store.fail_with = None
    h2 = Harness(store=h.store)
    h2.put(h2.web("lead-1", "/pricing"))
    await h2.step()
    await h2.write_window()
    assert h2.stored("lead-1").events_seen == 1
    assert h2.stages() == [("cold", "warm", "event")]


async def test_a_decay_change_fires_a_tick_that_comes_back_as_a_stage_change() -> None:
    h = Harness()
    h.put(h.web("lead-1", "/pricing"))  # 30 points: warm; web halves every 4 s
    await h.step()
    await h.write_window()
    owned = set(range(PARTITIONS))
    assert await h.loop.recovered(owned, h.store.items()) == 1
    due = h.loop.schedule.due_at(h.partition_of("lead-1"), "lead-1")
    assert due is not None and due > h.wall.t
    assert await h.loop.fire_decay_ticks() == 0  # not yet
    h.wall.t = due + 0.01
    assert await h.loop.fire_decay_ticks() == 1
    [tick] = h.sender.to(h.loop.topics.ticks)
    assert tick.key == b"lead-1" and tick.partition == h.partition_of("lead-1")
    batch = h.source.batch(tick.topic, h.partition_of("lead-1"), [(tick.key, tick.value)])
    h.source.queue.put_nowait(batch)
    await h.step()
    assert h.stages() == [("cold", "warm", "event"), ("warm", "cold", "decay")]
    assert await h.loop.fire_decay_ticks() == 0  # fired once


async def test_recovery_indexes_only_the_owned_partitions() -> None:
    h = Harness()
    leads = [f"lead-{i}" for i in range(12)]
    h.put(*(h.web(lead, "/pricing") for lead in leads))
    await h.step()
    await h.write_window()
    h.loop.cache["stale"] = h.stored("lead-1")
    owned = {0}
    assert await h.loop.recovered(owned, h.store.items()) == sum(
        1 for lead in leads if h.partition_of(lead) == 0
    )
    assert h.loop.schedule.partitions() == [0]
    assert h.loop.cache == {} and h.loop.ready


async def test_recovery_gives_way_to_the_event_loop_between_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.core.loop as loop_module

    monkeypatch.setattr(loop_module, "RECOVERY_SLICE", 4)
    h = Harness()
    h.put(*(h.web(f"lead-{i}", "/pricing") for i in range(10)))
    await h.step()
    await h.write_window()
    turns = 0

    async def heartbeat() -> None:  # what the consumer's heartbeat task needs: turns
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    beating = asyncio.ensure_future(heartbeat())
    await asyncio.sleep(0)
    before = turns
    assert await h.loop.recovered(set(range(PARTITIONS)), h.store.items()) == 10
    beating.cancel()
    assert turns - before == 2  # after the 4th and the 8th state


async def test_the_lead_view_reads_the_newest_state() -> None:
    h = Harness()
    h.put(h.web("lead-1", "/blog"))
    await h.step()
    state = h.loop.lead_state("lead-1", lambda lead: None)  # cached, not yet written
    assert state is not None and state.events_seen == 1
    h.loop.cache.clear()
    assert h.loop.lead_state("lead-1", lambda lead: None) is None
    await h.write_window()
    h.loop.cache.clear()
    stored = h.loop.lead_state(
        "lead-1", lambda lead: h.store.get(lead.encode(), 0) or h.store.get(lead.encode(), 1)
    )
    assert stored is not None and stored.events_seen == 1


# ------------------------------------------------------------------ crashes


def input_log(h: Harness, n_events: int, n_leads: int, batch: int) -> list[Batch]:
    """A fixed input: batches of one partition each, at increasing offsets."""
    rng = random.Random(7)
    paths = ["/pricing", "/blog", "/demo", "/careers"]
    events = [h.web(f"lead-{rng.randrange(n_leads)}", rng.choice(paths)) for _ in range(n_events)]
    # A producer's retries: some event ids twice, at their own offsets.
    events += [dict(e) for e in rng.sample(events, n_events // 10)]
    log: list[Batch] = []
    for i in range(0, len(events), batch):
        by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {}
        for ev in events[i : i + batch]:
            lead = ev["lead_id"]
            by_partition.setdefault(h.partition_of(lead), []).append(
                (lead.encode(), orjson.dumps(ev))
            )
        for partition, values in sorted(by_partition.items()):
            log.append(h.source.batch(h.settings.topic_web, partition, values))
    return log


async def consume(h: Harness, log: list[Batch], *, until: int | None = None) -> None:
    """Feed the log from where the source's acks left off, a quarter window per batch."""
    for index, batch in enumerate(log):
        if until is not None and index >= until:
            return
        done = h.source.acked.get(batch.tp, -1)
        records = [r for r in batch.records if r.offset > done]
        if records:
            await h.loop.score_batches([Batch(batch.tp, records, h.source.generation)])
        h.mono.t += WINDOW_S / 4
        for _ in range(3):  # as run() does between turns: publications and acks go on
            await asyncio.sleep(0)


def crash(h: Harness, *, fresh_data_dir: bool) -> MemoryStore:
    """kill -9: the loop's unwritten windows and unfinished publications are gone.

    What survives is the local store (``fresh_data_dir``: not even that; a new pod
    restores each lead's last state from the changelog)."""
    if h.loop.writer.publishing is not None:
        h.loop.writer.publishing.cancel()
    if not fresh_data_dir:
        return h.store
    restored = MemoryStore()
    restored.put(h.store.changelog)
    restored.changelog = list(h.store.changelog)
    return restored


def states(store: MemoryStore) -> dict[bytes, Any]:
    return {key: orjson.loads(raw) for key, raw in store.items()}


@pytest.mark.parametrize("fresh_data_dir", [False, True])
async def test_any_number_of_crashes_leaves_the_states_of_an_uninterrupted_run(
    fresh_data_dir: bool,
) -> None:
    # Dedup by event id keeps 8 ids per lead here: it cannot hide a replay.
    model = load_model_text(FAST_MODEL.read_text().replace("[settings]", SMALL_DEDUP))
    reference = Harness(model=model)
    log = input_log(reference, n_events=600, n_leads=12, batch=9)
    await consume(reference, log)
    await reference.loop.write_windows("the end")
    expected = states(reference.store)
    assert sum(s["events_seen"] for s in expected.values()) >= 600

    crashed_after_acks = 0
    for crash_points in ([3], [10, 11, 40], [25, 26, 27, 28, 60, 90], list(range(5, 100, 7))):
        h = Harness(model=model)
        h.wall.t = reference.wall.t
        acked = h.source.acked
        for point in crash_points:
            await consume(h, log, until=point)
            store = crash(h, fresh_data_dir=fresh_data_dir)
            # The restarted worker: same committed offsets, the surviving store.
            h = Harness(store=store, source=h.source, model=model)
            h.wall.t = reference.wall.t
            assert h.source.acked is acked
            crashed_after_acks += bool(acked)
        await consume(h, log)
        await h.loop.write_windows("the end")
        assert states(h.store) == expected, crash_points
    assert crashed_after_acks > 10  # most crashes came after some windows were acked


async def test_an_edited_model_migrates_stored_leads_and_publishes_each_change_once() -> None:
    h = Harness()
    h.put(h.web("lead-1", "/pricing"), h.web("lead-2", "/blog"))  # 30: warm; 5: cold
    await h.step()
    await h.write_window()
    # The rollout: warm now takes 45 to enter and 40 to stay.
    text = FAST_MODEL.read_text()
    warm = "entry = { score = 20 }\nexit = { score = 10 }"
    assert warm in text
    edited = load_model_text(text.replace(warm, "entry = { score = 45 }\nexit = { score = 40 }"))
    h2 = Harness(store=h.store, source=h.source, model=edited)
    h2.wall.t = h.wall.t
    assert await h2.loop.recovered({0, 1}, h.store.items()) == 2
    assert await h2.loop.fire_decay_ticks() == 2  # both due at once: another model
    for tick in h2.sender.to(h2.loop.topics.ticks):
        assert tick.partition is not None
        h2.source.queue.put_nowait(
            h2.source.batch(tick.topic, tick.partition, [(tick.key, tick.value)])
        )
    await h2.step()
    assert h2.stages() == [("warm", "cold", "model_change")]
    await h2.write_window()
    assert h2.stored("lead-1").model == edited.fingerprint
    assert h2.stored("lead-2").model == edited.fingerprint
    h3 = Harness(store=h2.store, source=h2.source, model=edited)
    await h3.loop.recovered({0, 1}, h2.store.items())
    assert await h3.loop.fire_decay_ticks() == 0  # migrated once: nothing more


async def test_a_state_that_cannot_be_encoded_loses_only_its_lead_and_dead_letters_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.core.loop as loop_module

    real_encode = loop_module.encode_state

    def encode(state: Any) -> bytes:
        if state.lead_id == "lead-1" and state.events_seen:
            raise RecursionError("maximum recursion depth exceeded")
        return real_encode(state)

    h = Harness()
    h.put(h.web("lead-1", "/blog"), h.web("lead-1", "/pricing"), h.web("lead-2", "/blog"))
    await h.step()
    monkeypatch.setattr(loop_module, "encode_state", encode)
    await h.write_window()
    await h.loop.write_windows("a test")  # the window's last slice: the renumbered lead
    assert h.sender.failures == []  # the worker goes on
    assert h.stored("lead-2").events_seen == 1
    # Its pricing visit's stage change was published: the lead, back to no events,
    # is stored renumbered after it, and consumers learn where it is.
    assert h.stages() == [("cold", "warm", "event"), ("warm", "cold", "restored")]
    kept = h.stored("lead-1")
    assert (kept.events_seen, kept.changes, kept.stage) == (0, 2, "cold")
    assert sum(h.source.acked[tp] + 1 for tp in h.source.acked) == 3  # all acked
    [dead] = h.sender.to(h.settings.topic_dlq)
    headers = dict(dead.headers or [])
    assert headers["leadstream.dlq.reason"] == b"processing_error"
    assert orjson.loads(dead.value) == {
        "lead_id": "lead-1",
        "source": f"{h.settings.topic_web}:{h.partition_of('lead-1')}",
        "first_offset": 0,
        "last_offset": 1,
    }
    # The lead's next event starts from its last stored state (none), not the lost one.
    monkeypatch.setattr(loop_module, "encode_state", real_encode)
    h.put(h.web("lead-1", "/blog"))
    await h.step()
    await h.write_window()
    assert h.stored("lead-1").events_seen == 1


def lost_ranges(h: Harness) -> list[tuple[str, int, int]]:
    """(lead, first, last) of the dead letters naming offsets a lead lost."""
    out = []
    for sent in h.sender.to(h.settings.topic_dlq):
        if sent.value.startswith(b'{"lead_id"') and b"first_offset" in sent.value:
            lost = orjson.loads(sent.value)
            out.append((lost["lead_id"], lost["first_offset"], lost["last_offset"]))
    return out


def poison(h: Harness, lead: str) -> dict[str, Any]:
    event = h.web(lead, "/pricing")
    event["event_id"] = "poison"
    return event


async def test_an_error_on_a_cached_lead_falls_back_to_its_stored_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    half_done_poison(monkeypatch)
    h = Harness()
    h.put(h.web("lead-1", "/blog"), h.web("lead-2", "/blog"))
    await h.step()
    await h.write_window()
    source = f"{h.settings.topic_web}:{h.partition_of('lead-1')}"
    stored_at = h.stored("lead-1").applied[source]
    assert h.stored("lead-1").events_seen == 1 and "lead-1" in h.loop.cache
    h.put(h.web("lead-1", "/pricing"), poison(h, "lead-1"), h.web("lead-1", "/blog"))
    await h.step()
    await h.write_window()
    assert h.sender.failures == []
    # The event before the error is lost with it (the cached state held both), the
    # one after it is scored on the stored state: never the half-done one.
    kept = h.stored("lead-1")
    assert kept.events_seen == 2 and kept.stage == "cold"  # the blog visits, not pricing
    pricing_at = h.source.acked[h.tp("lead-1")] - 2
    # From after the stored state's position up to the pricing visit (the range may
    # hold other leads' offsets: a replay picks the lead's records by key).
    assert lost_ranges(h) == [("lead-1", stored_at + 1, pricing_at)]
    # The pricing visit's stage change was published: consumers learn the lead is
    # back in cold, and its numbering goes on (a next change is not a "repeat").
    sent = [orjson.loads(s.value) for s in h.stages_sent()]
    assert [(c["from_stage"], c["to_stage"], c["cause"], c["sequence"]) for c in sent] == [
        ("cold", "warm", "event", 1),
        ("warm", "cold", "restored", 2),
    ]
    assert kept.changes == 2
    assert sum(1 for s in h.sender.to(h.settings.topic_dlq) if b"poison" in s.value) == 1


async def test_an_error_falls_back_to_the_closed_windows_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    half_done_poison(monkeypatch)
    h = Harness()
    h.put(h.web("lead-1", "/blog"))
    await h.step()
    h.mono.t += WINDOW_S
    await h.loop.score_batches([])  # closed, not yet written
    assert h.loop.writer.closed is not None and h.stored("lead-1") is None
    h.put(h.web("lead-1", "/blog"), poison(h, "lead-1"))
    await h.step()
    assert h.loop.cache["lead-1"].events_seen == 1  # the closed window's copy, again
    assert h.loop.cache["lead-1"] is not h.loop.writer.closed.claimed["lead-1"][0]
    await h.loop.write_windows("a test")
    assert h.stored("lead-1").events_seen == 1
    assert lost_ranges(h) == [("lead-1", 1, 1)]  # the visit before the poison


class GatedStore(MemoryStore):
    """A store whose changelog deliveries wait for ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def publish(self, writes: list[Any]) -> None:
        await self.gate.wait()
        await super().publish(writes)


async def test_an_error_falls_back_to_the_state_being_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    half_done_poison(monkeypatch)
    store = GatedStore()
    h = Harness(store=store)
    h.put(h.web("lead-1", "/blog"), h.web("lead-1", "/blog"))
    await h.step()
    h.mono.t += WINDOW_S
    await h.loop.score_batches([])  # closed
    h.mono.t += WINDOW_S
    await h.loop.score_batches([])  # encoded, its delivery waits
    assert h.loop.writer.closed is None and h.stored("lead-1") is None
    h.put(poison(h, "lead-1"))
    await h.step()
    assert h.loop.cache["lead-1"].events_seen == 2  # the bytes being written
    store.gate.set()
    await h.loop.write_windows("a test")
    assert h.stored("lead-1").events_seen == 2
    assert lost_ranges(h) == []  # nothing applied since the state being written


async def test_a_lead_none_of_whose_states_encode_does_not_hold_the_window_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streams.core.loop as loop_module

    real_encode = loop_module.encode_state

    def encode(state: Any) -> bytes:
        if state.lead_id == "lead-1":  # its renumbered state too
            raise RecursionError("maximum recursion depth exceeded")
        return real_encode(state)

    h = Harness()
    h.put(h.web("lead-1", "/pricing"), h.web("lead-2", "/blog"))
    await h.step()
    monkeypatch.setattr(loop_module, "encode_state", encode)
    # Renumbered once, that state fails too, and the window ends instead of retrying
    # (without the once-a-window rule this never returns: pytest's timeout fails it).
    await h.loop.write_windows("a test")
    assert h.sender.failures == [] and h.stored("lead-1") is None
    assert h.stored("lead-2").events_seen == 1
    assert h.stages() == [("cold", "warm", "event"), ("warm", "cold", "restored")]


# ------------------------------------------------------------------ exactly-once


def eos() -> Harness:
    return Harness(transactions=MemoryTransactions(MemoryStore()))


async def test_exactly_once_commits_a_windows_outputs_states_and_offsets_together() -> None:
    h = eos()
    txn = h.transactions
    assert txn is not None
    h.put(h.web("lead-1", "/pricing"), h.web("lead-2", "/blog"))
    await h.step()
    # Held with the window: nothing sent, stored or acked yet.
    assert h.sender.sent == [] and txn.visible == [] and not txn.is_open
    assert h.store.changelog == [] and h.source.acked == {}
    h.mono.t += WINDOW_S
    await h.loop.score_batches([])  # closed: its transaction is open, not committed
    await asyncio.sleep(0)
    assert txn.is_open and txn.visible == [] and h.stored("lead-1") is None
    h.mono.t += WINDOW_S
    await h.loop.score_batches([])
    assert h.loop.writer.publishing is not None
    await h.loop.writer.publishing
    assert txn.commits == 1 and not txn.is_open
    assert h.stages() == [("cold", "warm", "event")]
    assert h.stored("lead-1").events_seen == 1 and h.stored("lead-2").events_seen == 1
    assert txn.offsets == h.source.acked and sum(v + 1 for v in txn.offsets.values()) == 2
    assert h.sender.sent == []  # the non-transactional producer sent nothing


async def test_exactly_once_a_window_the_group_refuses_is_aborted_and_the_worker_goes_on() -> None:
    from streams.core.loop import StaleWindow

    h = eos()
    txn = h.transactions
    assert txn is not None
    txn.fail_commit_with = StaleWindow("the group refused the window's offsets")
    h.put(h.web("lead-1", "/pricing"))
    await h.step()
    await h.loop.write_windows("a test")
    assert h.sender.failures == []  # a zombie's window, not an error
    assert txn.aborts == 1 and txn.visible == [] and txn.offsets == {}
    assert h.stored("lead-1") is None and h.source.acked == {}
    assert h.metrics.registry.get_sample_value("leadstream_events_discarded_total") == 1


async def test_exactly_once_a_failed_commit_leaves_nothing_stored_acked_or_visible() -> None:
    h = eos()
    txn = h.transactions
    assert txn is not None
    txn.fail_commit_with = RuntimeError("fenced")
    h.put(h.web("lead-1", "/pricing"))
    await h.step()
    with pytest.raises(RuntimeError, match="fenced"):
        await h.loop.write_windows("a test")
    assert txn.visible == [] and txn.offsets == {} and txn.aborts == 1
    assert h.store.changelog == [] and h.stored("lead-1") is None and h.source.acked == {}
    assert [str(e) for e in h.sender.failures] == ["fenced"]  # the worker stops


async def test_exactly_once_a_failed_changelog_write_aborts_the_window() -> None:
    h = eos()
    txn = h.transactions
    assert txn is not None
    h.store.fail_with = RuntimeError("changelog refused")
    h.put(h.web("lead-1", "/pricing"))
    await h.step()
    with pytest.raises(RuntimeError, match="changelog refused"):
        await h.loop.write_windows("a test")
    assert txn.visible == [] and txn.offsets == {} and txn.aborts == 1 and txn.commits == 0
    assert h.stored("lead-1") is None and h.source.acked == {}
    assert [str(e) for e in h.sender.failures] == ["changelog refused"]


async def test_exactly_once_a_write_that_overran_at_a_revoke_aborts_and_the_next_commits() -> None:
    h = eos()
    txn = h.transactions
    assert txn is not None
    h.put(h.web("lead-1", "/pricing"))
    await h.step()
    gate = asyncio.Event()
    publish = txn.publish

    async def stuck(writes: Any) -> None:
        await gate.wait()
        await publish(writes)

    txn.publish = stuck  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(h.loop.revoke(), 0.05)
    assert txn.aborts == 1 and not txn.is_open and txn.visible == []
    assert h.sender.failures == []  # a cancellation: the worker goes on
    txn.publish = publish  # type: ignore[method-assign]
    h.source.generation = 2  # the rebalance: its owner reads lead-1's event again
    h.put(h.web("lead-3", "/pricing"))
    await h.step()
    await h.write_window()
    assert h.stages() == [("cold", "warm", "event")] and txn.commits == 1
    assert h.stored("lead-3").events_seen == 1 and h.stored("lead-1") is None


async def test_exactly_once_a_window_gone_stale_before_its_commit_is_aborted() -> None:
    h = eos()
    txn = h.transactions
    assert txn is not None
    h.put(h.web("lead-1", "/pricing"))
    await h.step()
    h.mono.t += WINDOW_S
    await h.loop.score_batches([])
    h.source.generation = 2  # a rebalance whose revoke hook did not write it
    h.mono.t += WINDOW_S
    await h.loop.writer.finish()
    assert h.loop.writer.publishing is not None
    await h.loop.writer.publishing
    assert txn.aborts == 1 and txn.commits == 0 and txn.visible == [] and h.source.acked == {}
    assert h.sender.failures == []


@pytest.mark.parametrize("fresh_data_dir", [False, True])
async def test_exactly_once_crashes_publish_each_stage_change_once(fresh_data_dir: bool) -> None:
    model = load_model_text(FAST_MODEL.read_text().replace("[settings]", SMALL_DEDUP))
    reference = Harness(model=model, transactions=MemoryTransactions(MemoryStore()))
    log = input_log(reference, n_events=600, n_leads=12, batch=9)
    await consume(reference, log)
    await reference.loop.write_windows("the end")
    expected = states(reference.store)
    expected_ids = [orjson.loads(s.value)["event_id"] for s in reference.stages_sent()]
    assert len(expected_ids) >= 5 and len(set(expected_ids)) == len(expected_ids)

    for crash_points in ([3], [10, 11, 40], list(range(5, 100, 7))):
        broker = MemoryTransactions(MemoryStore())
        h = Harness(model=model, transactions=broker)
        h.wall.t = reference.wall.t
        for point in crash_points:
            await consume(h, log, until=point)
            store = crash(h, fresh_data_dir=fresh_data_dir)
            # The restarted worker fences the dead one: its open transaction is
            # aborted; what committed (outputs, offsets, changelog) stays.
            txn = MemoryTransactions(store, visible=broker.visible, offsets=broker.offsets)
            assert h.source.acked == broker.offsets
            h = Harness(source=h.source, model=model, transactions=txn)
            h.wall.t = reference.wall.t
        await consume(h, log)
        await h.loop.write_windows("the end")
        ids = [orjson.loads(s.value)["event_id"] for s in broker.to(h.settings.topic_qualified)]
        assert ids == expected_ids, crash_points  # each once, in order
        assert states(h.store) == expected, crash_points


async def test_exactly_once_a_revoke_after_the_group_dropped_the_member_commits_nothing() -> None:
    h = eos()
    txn = h.transactions
    assert txn is not None
    h.put(h.web("lead-1", "/pricing"))
    await h.step()
    h.mono.t += WINDOW_S
    await h.loop.score_batches([])  # one window closed, its transaction open
    h.put(h.web("lead-2", "/pricing"))
    await h.step()  # one open
    h.source.generation = -1  # the source's answer once the group dropped this member
    await h.loop.revoke()
    if h.loop.writer.publishing is not None:
        await asyncio.wait([h.loop.writer.publishing])
    assert txn.commits == 0 and txn.visible == [] and txn.offsets == {}
    assert h.store.changelog == [] and h.source.acked == {} and h.sender.failures == []
    assert not txn.is_open and txn.aborts == 1  # the closed window's, rolled back
    h.source.generation = 2  # assigned again: the next window commits
    h.put(h.web("lead-3", "/pricing"))
    await h.step()
    await h.write_window()
    assert txn.commits == 1 and h.stages() == [("cold", "warm", "event")]
