"""The backlog every throughput measure reads: the same generated workload, seed and
sizes for ``bench.run`` (preloaded into Kafka) and for the Kafka-free scripts
(``bench.state_writes``, ``bench.live_cost``) that replay it in one process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from bench.common import KIND_TOPIC, Topics, produce_all, say
from streams.local.workload import generate_events

#: Days the backlog's event times spread over, ending a day before the run: weeks of
#: history give hot leads the cap windows (one per rule and day) and dedup ids a
#: worker holds in steady state; it stays inside the model's 30-day lateness.
BACKLOG_SPAN_DAYS = 21
#: Seed of the backlog's workload (latency points use others: new event ids).
BACKLOG_SEED = 42


def backlog_events(
    n_events: int, n_leads: int, now: float, *, seed: int = BACKLOG_SEED, first_lead: int = 1
) -> Iterator[tuple[str, str, bytes]]:
    """The backlog's workload: ``(kind, lead_id, value)`` with event times over
    ``BACKLOG_SPAN_DAYS`` ending a day before ``now``."""
    return generate_events(
        n_events=n_events,
        n_leads=n_leads,
        seed=seed,
        start=now - (BACKLOG_SPAN_DAYS + 1) * 86400,
        span_s=BACKLOG_SPAN_DAYS * 86400,
        first_lead=first_lead,
    )


def preload(
    bootstrap: str,
    topics: Topics,
    n_events: int,
    n_leads: int,
    *,
    seed: int = BACKLOG_SEED,
    first_lead: int = 1,
) -> int:
    """Produce the backlog's workload; return the number of distinct leads."""
    leads: set[str] = set()
    now = time.time()

    def records() -> Iterator[tuple[str, bytes, bytes, int | None]]:
        for kind, lead, value in backlog_events(
            n_events, n_leads, now, seed=seed, first_lead=first_lead
        ):
            leads.add(lead)
            yield topics.names[KIND_TOPIC[kind]], lead.encode(), value, None

    started = time.perf_counter()
    n = asyncio.run(produce_all(bootstrap, records()))
    say(f"preloaded {n} events over {len(leads)} leads in {time.perf_counter() - started:.1f}s")
    return len(leads)
