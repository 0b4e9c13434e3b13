"""Recovery: seconds until a fresh worker (empty data dir) is ready over a table
changelog already holding R lead states, written straight to the changelog."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson

from bench.common import PARTITIONS, Topics, kafka_security, produce_all, say
from bench.worker import BenchWorker, py_spy
from scoring import load_default_model
from streams.core.partitioning import Partitioner
from streams.local.workload import sample_states
from streams.topics import ensure_topics

#: Longest wait for the fresh worker to be ready.
RECOVERY_TIMEOUT_S = 400.0


def recovery(bootstrap: str, n_leads: int, tmp: Path, profile: str | None = None) -> float:
    """Seconds from spawning a worker to its ``/ready`` over ``n_leads`` states;
    ``profile``, if given, gets a py-spy profile of that time."""
    uid = uuid.uuid4().hex[:8]
    app_id = f"bench-rec-{uid}"
    topics = Topics(f"bench-rec-{uid}")
    changelog = f"{app_id}-leads-changelog"
    ensure_topics(bootstrap, {changelog: PARTITIONS}, timeout=60, security=kafka_security())
    partitioner = Partitioner(PARTITIONS)
    samples = [
        st.to_dict()
        for st in sample_states(64, seed=7, now=time.time(), model=load_default_model())
    ]

    def records() -> Iterator[tuple[str, bytes, bytes, int | None]]:
        # Each state on its lead's partition, as the worker writes it.
        for i in range(n_leads):
            lead = f"lead-r{i:08d}"
            state = samples[i % len(samples)]
            state["lead_id"] = lead
            yield changelog, lead.encode(), orjson.dumps(state), partitioner.partition_of(lead)

    started = time.perf_counter()
    n = asyncio.run(produce_all(bootstrap, records(), chunk=5000))
    say(f"wrote {n} lead states to {changelog} in {time.perf_counter() - started:.1f}s")
    worker = BenchWorker(bootstrap, topics, app_id, tmp / "rec-data")
    try:
        with py_spy(worker.pid, profile):
            seconds = worker.wait_ready(timeout=RECOVERY_TIMEOUT_S)
    finally:
        worker.stop()
    say(f"recovery of {n_leads:,} leads: ready after {seconds:.1f}s")
    return seconds
