"""The preview's replay scores as the worker does: the same records, in the same
order, through the worker's own loop (``ScoringLoop`` over the in-memory fakes, each
decay tick sent when its lead is due) and through ``streams.modelpreview.replay``
give the same stage changes, the same leads at the end and the same counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from scoring import ScoringModel, Transition, load_default_model, load_model, snapshot
from streams.core.contract import encode_transition
from streams.core.inmemory import MemorySender, MemorySource, MemoryStore, Record, TopicPartition
from streams.core.loop import Batch, LoopTopics, ScoringLoop
from streams.core.partitioning import Partitioner
from streams.metrics import Metrics
from streams.modelpreview.order import Entry, scan
from streams.modelpreview.replay import ModelReplay, RecordReplay
from streams.settings import Settings
from tests.modelpreview.exports import PARTITIONS, workload, write

FAST_MODEL = Path(__file__).resolve().parents[1] / "integration" / "fast_model.toml"
START = 1_764_547_200.0  # 2025-12-01T00:00:00Z
#: What a published stage change is compared by (all but emitted_at).
FIELDS = ("lead_id", "sequence", "event_id", "from_stage", "to_stage", "cause", "changed_at")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class LoopDriver:
    """The worker's loop, handed each record at the time it was handled, and each
    decay tick when the earliest one is due; what it sends itself (reroutes, ticks)
    comes back to it at once."""

    def __init__(self, model: ScoringModel, leads: set[str]) -> None:
        # The decay lookahead (two windows and more) covers any test: every change
        # is scheduled as it is scored.
        self.settings = Settings.from_env(
            {}, app_id="faithful", partitions=PARTITIONS, flush_interval_s=1e7, flush_events=10**9
        )
        self.source, self.sender = MemorySource(), MemorySender()
        self.metrics = Metrics.create()
        self.wall = Clock(0.0)
        self.loop = ScoringLoop(
            settings=self.settings,
            model=model,
            metrics=self.metrics,
            source=self.source,
            store=MemoryStore(),
            sender=self.sender,
            clock=self.wall,
            monotonic=lambda: 0.0,
        )
        self.topics = LoopTopics.of(self.settings)
        self.partition_of = Partitioner(PARTITIONS).partition_of
        self.leads = leads
        self.fed_back = 0

    async def record(self, entry: Entry) -> None:
        await self.ticks(until=entry.handled_at)
        self.wall.t = entry.handled_at
        tp = TopicPartition(entry.topic, entry.partition)
        await self._score(tp, Record(entry.offset, None, entry.value))

    async def ticks(self, until: float, *, inclusive: bool = False) -> None:
        schedule = self.loop.schedule
        while True:
            dues = [schedule.due_at(self.partition_of(lead), lead) for lead in self.leads]
            due = min((d for d in dues if d is not None), default=None)
            if due is None or due > until or (due == until and not inclusive):
                return
            self.wall.t = max(self.wall.t, due)
            assert await self.loop.fire_decay_ticks() > 0
            await self._feed_back()

    async def _score(self, tp: TopicPartition, record: Record) -> None:
        await self.loop.score_batches([Batch(tp, [record], self.source.generation)])
        # Written at once, as if every window were this short: a written state sets
        # its lead's decay timer to the state's next change, which drops a timer a
        # newer event made moot (the replay never fires those, and in the worker
        # such a tick only moves the lead's clock to the time it is handled).
        await self.loop.write_windows("the next record")
        await self._feed_back()

    async def _feed_back(self) -> None:
        while self.fed_back < len(self.sender.sent):
            sent = self.sender.sent[self.fed_back]
            self.fed_back += 1
            if sent.topic not in (self.topics.repartition, self.topics.ticks):
                continue
            assert sent.key is not None
            partition = sent.partition
            if partition is None:
                partition = self.partition_of(sent.key.decode())
            record = Record(self.fed_back, sent.key, sent.value, sent.headers)
            await self._score(TopicPartition(sent.topic, partition), record)

    def published(self) -> list[tuple[Any, ...]]:
        changes = [orjson.loads(s.value) for s in self.sender.to(self.topics.qualified)]
        return sorted(tuple(c[f] for f in FIELDS) for c in changes)

    def counts(self) -> tuple[Counter[str], Counter[str], Counter[str]]:
        """Outcomes, dead letters by reason, bots filtered by reason (over topics)."""
        return tuple(  # type: ignore[return-value]
            self._summed(counter, label)
            for counter, label in (
                (self.metrics.events, "outcome"),
                (self.metrics.dlq, "reason"),
                (self.metrics.bots, "reason"),
            )
        )

    @staticmethod
    def _summed(counter: Any, label: str) -> Counter[str]:
        out: Counter[str] = Counter()
        for family in counter.collect():
            for s in family.samples:
                if s.name.endswith("_total") and s.value:
                    out[s.labels[label]] += int(s.value)
        return out


def lead_named(value: bytes) -> str | None:
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return event.get("lead_id") if isinstance(event, dict) else None


def replay(entries: list[Entry], model: ScoringModel, now: float) -> tuple[Any, ...]:
    changes: list[Transition] = []
    model_replay = ModelReplay(model, changes.append)
    records = RecordReplay((model_replay,), PARTITIONS, 300.0)
    for e in entries:
        records.handle(e.kind, e.topic, e.partition, e.offset, e.value, e.handled_at)
    leads = {lead.lead_id: lead[1:] for lead in model_replay.finish(now)}
    encoded = [orjson.loads(encode_transition(c, emitted_at=now)) for c in changes]
    published = sorted(tuple(c[f] for f in FIELDS) for c in encoded)
    counts = (+model_replay.outcomes, +model_replay.dead_letters, +model_replay.bots)
    return published, leads, counts


@pytest.mark.parametrize(
    ("model_file", "span_s", "n_leads"),
    [(None, 120 * 86400.0, 300), (FAST_MODEL, 900.0, 40)],
    ids=["default-model-120-days", "fast-model-15-minutes"],
)
async def test_the_replay_publishes_and_ends_as_the_worker_loop_does(
    tmp_path: Path, model_file: Path | None, span_s: float, n_leads: int
) -> None:
    model = load_default_model() if model_file is None else load_model(model_file)
    export = write(
        tmp_path / "input.jsonl",
        workload(
            n_events=2500, n_leads=n_leads, seed=11, start=START, span_s=span_s, trouble_every=50
        ),
    )
    entries = scan(export, 0, 1)
    leads = {lead for e in entries if (lead := lead_named(e.value))}
    now = entries[-1].handled_at + span_s / 3  # decay after the last event, too

    driver = LoopDriver(model, leads)
    for entry in entries:
        await driver.record(entry)
    await driver.ticks(until=now, inclusive=True)
    loop_leads = {
        lead: (view["stage"], view["grade"], view["score"])
        for lead, state in driver.loop.cache.items()
        if (view := snapshot(state, model, now))
    }
    published, replay_leads, counts = replay(entries, model, now)
    assert published == driver.published()
    assert replay_leads == loop_leads
    assert counts == driver.counts()
    outcomes, dead, bots = counts
    # The workload exercises what the replay must get right, not just the easy path.
    causes = Counter(change[5] for change in published)
    assert causes["decay"] > 10 and causes["event"] > 10 and causes["disqualifier"] > 0
    assert outcomes["tick"] > 10 and outcomes["rerouted"] > 0 and outcomes["duplicate"] > 0
    assert outcomes["late"] > 0 and outcomes["replayed"] > 0
    assert set(dead) == {"invalid_json", "not_an_object", "unknown_event_type", "bad_timestamp"}
    if model.bots.enabled and model.bots.known_user_agents:
        assert outcomes["bot"] > 0 and bots["user_agent"] == outcomes["bot"]
