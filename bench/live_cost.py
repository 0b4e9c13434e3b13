"""What an event costs live against in the backlog, without Kafka.

    python -m bench.live_cost [--events N] [--leads N] [--rate R] [--seconds S]

Runs the worker's own loop (``streams.core.loop.ScoringLoop``) in one process over
in-memory stand-ins for Kafka and the table (``streams.core.inmemory``), in the shapes
``bench/run.py`` gives it: first the bench's backlog (same generator, seed, sizes and
three weeks of event times) in fetch-sized batches of 4,000; then the same leads' mix
live (event times now, a new seed, as the latency points send it) at ``--rate`` for
``--seconds``, in the batches one 10 ms fetch brings. The loop's monotonic clock moves
with the events fed, so its write-behind windows close and pace their writes by the
worker's own rule (``LEADSTREAM_FLUSH_EVENTS`` or ``LEADSTREAM_FLUSH_INTERVAL_SECONDS``).
Scoring is the loop's ``handle`` (decode, validate, route, ``apply``, scheduling);
writing is what the loop does per lead per window before RocksDB and the changelog
(``next_change_at`` and ``encode_state``). The backlog is the baseline; the live phase
is printed as a ratio to it, with the hot leads' states after each phase.

This separates the work a live event adds from what the machine adds: the worker's
live event costs 1.6-2x its backlog event in ``make bench``, with the broker and the
load generator on the same two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backlog import backlog_events
from scoring import LeadState, ScoringModel, load_default_model
from streams.core.inmemory import MemorySender, MemorySource, MemoryStore, Record
from streams.core.loop import Batch, ScoringLoop
from streams.core.partitioning import Partitioner
from streams.core.pipeline import BatchResult
from streams.core.statecodec import encode_state
from streams.local.workload import generate_events
from streams.metrics import Metrics
from streams.settings import Settings

#: As bench/run.py's first live mix: other event ids than the backlog's.
LIVE_SEED = 43
#: Events per batch in the backlog (a full fetch, as make bench's worker logs them).
BACKLOG_BATCH = 4000
#: Events/s the backlog is fed at, about the worker's backlog rate: its windows close at
#: LEADSTREAM_FLUSH_EVENTS, as in make bench.
BACKLOG_RATE = 50_000.0
#: Leads whose states are described: the hottest.
HOT = 2000
#: Input kind -> Settings field of its topic.
KIND_TOPIC = {"web": "topic_web", "email": "topic_email", "webinar": "topic_webinar"}
KIND_TOPIC["profile"] = "topic_profiles"

#: (kind, partition, key, value) of one input record.
Event = tuple[str, int, bytes, bytes]


@dataclass
class Phase:
    events: int = 0
    scoring_s: float = 0.0
    writing_s: float = 0.0
    writes: int = 0
    windows: int = 0

    @property
    def window_events(self) -> float:
        """Events per write-behind window, as the loop closed them."""
        return self.events / max(1, self.windows)

    def per_event(self, seconds: float) -> float:
        return seconds / max(1, self.events)

    def row(self, name: str) -> str:
        us = 1e6
        return (
            f"{name:8} {self.events:>10,} {us * self.per_event(self.scoring_s):8.2f}"
            f" {us * self.per_event(self.writing_s):8.2f} {self.per_event(self.writes):8.3f}"
            f" {us * self.writing_s / max(1, self.writes):9.1f}"
        )


class SimulatedClock:
    """A clock the phase moves: the loop's monotonic clock advances by the events fed
    at the phase's rate, so write-behind windows close by age and pace their writes
    as in the worker; its wall clock is the phase's "now"."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class TimedLoop(ScoringLoop):
    """The worker's loop, timing its scoring (``handle``) and its state writes (the
    per-lead encode the write-behind window calls, next change included)."""

    #: what the current phase measured, and the clock it moves
    phase: Phase
    simulated: SimulatedClock

    def handle(self, batches: list[Batch]) -> BatchResult:
        started = time.perf_counter()
        result = super().handle(batches)
        self.phase.scoring_s += time.perf_counter() - started
        return result

    def _encode(self, lead_id: str, state: LeadState, partition: int) -> bytes | None:
        started = time.perf_counter()
        raw = super()._encode(lead_id, state, partition)
        self.phase.writing_s += time.perf_counter() - started
        self.phase.writes += 1
        return raw

    def _written(self, states: int, events: int, seconds: float) -> None:
        super()._written(states, events, seconds)
        self.phase.windows += 1


def new_loop(
    settings: Settings, model: ScoringModel, clock: SimulatedClock, wall: SimulatedClock
) -> TimedLoop:
    loop = TimedLoop(
        settings=settings,
        model=model,
        metrics=Metrics.create(),
        source=MemorySource(),
        store=MemoryStore(),
        sender=MemorySender(),
        clock=wall,
        monotonic=clock,
    )
    loop.phase, loop.simulated = Phase(), clock
    return loop


async def run_phase(loop: TimedLoop, events: list[Event], *, batch: int, rate: float) -> Phase:
    """Feed ``events`` to the loop in batches of ``batch``, ``rate`` events/s apart."""
    loop.phase = phase = Phase()
    settings = loop.settings
    offsets: dict[tuple[str, int], int] = {}
    for i in range(0, len(events), batch):
        by_tp: dict[tuple[str, int], list[Any]] = {}
        for kind, partition, key, value in events[i : i + batch]:
            tp = (getattr(settings, KIND_TOPIC[kind]), partition)
            offset = offsets[tp] = offsets.get(tp, -1) + 1
            by_tp.setdefault(tp, []).append(Record(offset, key, value))
        batches = [Batch(_TP(*tp), records, 1) for tp, records in by_tp.items()]
        await loop.score_batches(batches)
        n = sum(len(b.records) for b in batches)
        phase.events += n
        loop.simulated.t += n / rate
    await loop.write_windows("the end of the phase")
    return phase


@dataclass(frozen=True)
class _TP:
    topic: str
    partition: int


def hot_states(cache: dict[str, LeadState]) -> str:
    hot = sorted(cache.values(), key=lambda s: -s.events_seen)[:HOT]
    n = max(1, len(hot))
    size = sum(len(encode_state(s)) for s in hot) / n
    seen = sum(len(s.seen) for s in hot) / n
    caps = sum(len(w) for s in hot for rule in s.caps.values() for w in rule.values()) / 2 / n
    return f"{size:,.0f} B encoded, {seen:.0f} dedup ids, {caps:.0f} capped events"


def events_of(events: Iterable[tuple[str, str, bytes]], partitioner: Partitioner) -> list[Event]:
    return [
        (kind, partitioner.partition_of(lead), lead.encode(), value) for kind, lead, value in events
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_cost")
    parser.add_argument("--events", type=int, default=500_000, help="backlog events")
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=30_000.0, help="live events/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="live seconds")
    args = parser.parse_args(argv)
    return asyncio.run(measure(args.events, args.leads, args.rate, args.seconds))


async def measure(n_backlog: int, n_leads: int, rate: float, seconds: float) -> int:
    settings = Settings.from_env()
    partitioner = Partitioner(settings.partitions)
    wall = SimulatedClock()
    wall.t = now = time.time()
    backlog = events_of(backlog_events(n_backlog, n_leads, now), partitioner)
    live = events_of(
        generate_events(
            n_events=int(rate * seconds), n_leads=n_leads, seed=LIVE_SEED, start=now, span_s=seconds
        ),
        partitioner,
    )
    # The inputs are not the worker's heap: keep the collector from walking them.
    gc.collect()
    gc.freeze()
    loop = new_loop(settings, load_default_model(), SimulatedClock(), wall)
    print(
        f"{'phase':8} {'events':>10} {'score us':>8} {'write us':>8} {'writes/ev':>8}"
        f" {'us/write':>9}   (per event, but us/write)"
    )
    base = await run_phase(loop, backlog, batch=BACKLOG_BATCH, rate=BACKLOG_RATE)
    print(base.row("backlog"))
    after_backlog = hot_states(loop.cache)
    wall.t = now + seconds
    # A live batch is what one fetch wait brings.
    live_batch = max(1, round(rate * settings.fetch_max_wait_s))
    fresh = await run_phase(loop, live, batch=live_batch, rate=rate)
    print(fresh.row("live"))
    scoring = fresh.per_event(fresh.scoring_s) / base.per_event(base.scoring_s)
    writing = fresh.per_event(fresh.writing_s) / base.per_event(base.writing_s)
    both = fresh.per_event(fresh.scoring_s + fresh.writing_s) / base.per_event(
        base.scoring_s + base.writing_s
    )
    print(
        f"live / backlog per event: scoring {scoring:.2f}x, writing {writing:.2f}x,"
        f" both {both:.2f}x (batches of {live_batch:,} against {BACKLOG_BATCH:,},"
        f" windows of {fresh.window_events:,.0f} against {base.window_events:,.0f} events)"
    )
    print(f"the {HOT:,} hottest leads after the backlog: {after_backlog}")
    print(f"the {HOT:,} hottest leads after {seconds:g} s live: {hot_states(loop.cache)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
