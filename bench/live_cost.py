"""What an event costs live against in the backlog, without Kafka.

    python -m bench.live_cost [--events N] [--leads N] [--rate R] [--seconds S]

Runs the worker's per-event code in one process, in the shapes ``bench/run.py`` gives
it: first the bench's backlog (same generator, seed, sizes and three weeks of event
times) in fetch-sized batches of 4,000 and write-behind windows of
``LEADSTREAM_FLUSH_EVENTS``; then the same leads' mix live (event times now, a new
seed, as the latency points send it) at ``--rate`` for ``--seconds``, in the batches
one 10 ms fetch brings and windows of ``LEADSTREAM_FLUSH_INTERVAL_SECONDS`` (or
``LEADSTREAM_FLUSH_EVENTS``, whichever fills first, as the worker closes them). Scoring
is ``Pipeline.process`` (decode, validate, route, ``apply``); writing is what the
worker does per lead per window before RocksDB and the changelog (``next_change_at``
and ``encode_state``). The backlog is the baseline; the live phase is printed as a
ratio to it, with the hot leads' states after each phase.

This separates the work a live event adds from what the machine adds: the worker's
live event costs 1.6-2x its backlog event in ``make bench``, with the broker and the
load generator on the same two cores.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import backlog_events
from scoring import LeadState, load_default_model, next_change_at
from streams.core.partitioning import Partitioner
from streams.core.pipeline import Message, Pipeline
from streams.core.statecodec import encode_state
from streams.local.workload import generate_events
from streams.metrics import Metrics
from streams.settings import Settings

#: As bench/run.py's first live mix: other event ids than the backlog's.
LIVE_SEED = 43
#: Events per batch in the backlog (a full fetch, as make bench's worker logs them).
BACKLOG_BATCH = 4000
#: Leads whose states are described: the hottest.
HOT = 2000


@dataclass
class Phase:
    events: int = 0
    scoring_s: float = 0.0
    writing_s: float = 0.0
    writes: int = 0

    def per_event(self, seconds: float) -> float:
        return seconds / max(1, self.events)

    def row(self, name: str) -> str:
        us = 1e6
        return (
            f"{name:8} {self.events:>10,} {us * self.per_event(self.scoring_s):8.2f}"
            f" {us * self.per_event(self.writing_s):8.2f} {self.per_event(self.writes):8.3f}"
            f" {us * self.writing_s / max(1, self.writes):9.1f}"
        )


def run_phase(
    pipeline: Pipeline,
    cache: dict[str, LeadState],
    messages: list[Message],
    *,
    batch: int,
    window: int,
    now: float,
) -> Phase:
    phase = Phase()
    model = pipeline.model
    open_window: dict[str, LeadState] = {}
    in_window = 0

    def load(lead_id: str, _index: int) -> LeadState | None:
        return cache.get(lead_id)

    def write() -> None:
        started = time.perf_counter()
        for state in open_window.values():
            next_change_at(state, model)
            encode_state(state)
        phase.writing_s += time.perf_counter() - started
        phase.writes += len(open_window)
        open_window.clear()

    for i in range(0, len(messages), batch):
        chunk = messages[i : i + batch]
        started = time.perf_counter()
        touched = pipeline.process(chunk, now=now, load=load).touched
        for lead_id, (state, _partition, _index) in touched.items():
            cache[lead_id] = state
        phase.scoring_s += time.perf_counter() - started
        open_window.update((lead_id, entry[0]) for lead_id, entry in touched.items())
        phase.events += len(chunk)
        in_window += len(chunk)
        if in_window >= window:
            write()
            in_window = 0
    if open_window:
        write()
    return phase


def hot_states(cache: dict[str, LeadState]) -> str:
    hot = sorted(cache.values(), key=lambda s: -s.events_seen)[:HOT]
    n = max(1, len(hot))
    size = sum(len(encode_state(s)) for s in hot) / n
    seen = sum(len(s.seen) for s in hot) / n
    caps = sum(len(w) for s in hot for rule in s.caps.values() for w in rule.values()) / 2 / n
    return f"{size:,.0f} B encoded, {seen:.0f} dedup ids, {caps:.0f} capped events"


def messages_of(
    events: Iterable[tuple[str, str, bytes]], partitioner: Partitioner
) -> list[Message]:
    return [
        Message(kind, partitioner.partition_of(lead), offset, lead.encode(), value, kind)
        for offset, (kind, lead, value) in enumerate(events)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_cost")
    parser.add_argument("--events", type=int, default=500_000, help="backlog events")
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=30_000.0, help="live events/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="live seconds")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    model = load_default_model()
    partitioner = Partitioner(settings.partitions)
    pipeline = Pipeline(
        model=model,
        metrics=Metrics.create(),
        partitioner=partitioner,
        max_future_skew_s=settings.max_future_skew_s,
    )
    now = time.time()
    backlog = messages_of(backlog_events(args.events, args.leads, now), partitioner)
    n_live = int(args.rate * args.seconds)
    live = messages_of(
        generate_events(
            n_events=n_live, n_leads=args.leads, seed=LIVE_SEED, start=now, span_s=args.seconds
        ),
        partitioner,
    )
    # The inputs are not the worker's heap: keep the collector from walking them.
    gc.collect()
    gc.freeze()
    cache: dict[str, LeadState] = {}
    print(
        f"{'phase':8} {'events':>10} {'score us':>8} {'write us':>8} {'writes/ev':>8}"
        f" {'us/write':>9}   (per event, but us/write)"
    )
    base = run_phase(
        pipeline, cache, backlog, batch=BACKLOG_BATCH, window=settings.flush_events, now=now
    )
    print(base.row("backlog"))
    after_backlog = hot_states(cache)
    # A live batch is what one fetch wait brings.
    live_batch = max(1, round(args.rate * settings.fetch_max_wait_s))
    # The worker closes a window at its age or its size, whichever comes first.
    live_window = max(1, min(settings.flush_events, round(args.rate * settings.flush_interval_s)))
    fresh = run_phase(
        pipeline, cache, live, batch=live_batch, window=live_window, now=now + args.seconds
    )
    print(fresh.row("live"))
    scoring = fresh.per_event(fresh.scoring_s) / base.per_event(base.scoring_s)
    writing = fresh.per_event(fresh.writing_s) / base.per_event(base.writing_s)
    both = fresh.per_event(fresh.scoring_s + fresh.writing_s) / base.per_event(
        base.scoring_s + base.writing_s
    )
    print(
        f"live / backlog per event: scoring {scoring:.2f}x, writing {writing:.2f}x,"
        f" both {both:.2f}x (batches of {live_batch:,} against {BACKLOG_BATCH:,},"
        f" windows of {live_window:,} against {settings.flush_events:,} events)"
    )
    print(f"the {HOT:,} hottest leads after the backlog: {after_backlog}")
    print(f"the {HOT:,} hottest leads after {args.seconds:g} s live: {hot_states(cache)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
