"""Throughput over the preloaded backlog: the worker's, and the two baselines it is
read against, measured in the same run over the same topics.

- ceiling: a raw aiokafka consumer + ``orjson.loads`` on the worker's event loop
  (``LEADSTREAM_EVENT_LOOP``), no scoring and no writes: what this machine and
  broker can deliver to Python at all (events/s);
- naive Faust: ``bench.naive_faust``, one event at a time and one table write per
  event: what a straightforward Faust agent does (events/s);
- pipeline: a real ``leadstream worker`` (rocksdb), sustained events/s written:
  ``leadstream_events_acked_total`` between the first window acked past 10% of the
  backlog and the last one acked before all of it was scored.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import PARTITIONS, REPO, Topics, kafka_security, say
from bench.relay import run_on_worker_loop
from bench.worker import BenchWorker
from streams.local.processes import stop_process

#: Longest the naive agent, or the worker, may take over the backlog.
NAIVE_TIMEOUT_S = 240
BACKLOG_TIMEOUT_S = 420


async def _ceiling(bootstrap: str, topics: list[str], n_events: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
        **kafka_security().aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loads = orjson.loads
        n = 0
        started = time.perf_counter()
        while n < n_events:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            for recs in batch.values():
                for r in recs:
                    loads(r.value)
                n += len(recs)
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def ceiling(bootstrap: str, topics: Topics, n_events: int) -> float:
    rate = run_on_worker_loop(_ceiling(bootstrap, topics.inputs, n_events))
    say(f"ceiling: {rate:,.0f} events/s")
    return rate


def naive(bootstrap: str, topics: Topics, n_events: int, tmp: Path) -> tuple[float, int]:
    """events/s of ``bench.naive_faust`` over ``n_events`` of the backlog, and how
    many events it handled (as the table row counts them)."""
    result = tmp / "naive.json"
    app_id = f"bench-naive-{uuid.uuid4().hex[:8]}"
    log = (tmp / "naive.log").open("wb")
    cmd = [sys.executable, "-m", "bench.naive_faust", bootstrap, app_id, str(result)]
    proc = subprocess.Popen(
        [*cmd, str(n_events), *topics.inputs],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        # It writes its result file once (by a rename) when it is done.
        deadline = time.monotonic() + NAIVE_TIMEOUT_S
        while not result.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"naive Faust exited {proc.returncode}: see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"naive Faust did not finish in {NAIVE_TIMEOUT_S} s")
            time.sleep(0.2)
        data = orjson.loads(result.read_bytes())
    finally:
        stop_process(proc, 20.0)
        log.close()
    rate = data["events"] / data["seconds"]
    say(f"naive Faust: {rate:,.0f} events/s over {data['events']} events")
    return rate, data["events"] + 1


@dataclass
class _Watch:
    """What polling the worker saw while it scored the backlog: (time, count) at the
    first ack past 10% and the last ack before the end; when the scored count passed
    10% and 90%; and when all of it was scored."""

    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None
    lo: tuple[float, int] | None = None
    hi: tuple[float, int] | None = None
    end: float = 0.0


def _watch_backlog(worker: BenchWorker, n_events: int) -> _Watch:
    lo, hi = int(n_events * 0.1), int(n_events * 0.9)
    seen = _Watch()
    deadline = time.monotonic() + BACKLOG_TIMEOUT_S
    while True:
        worker.check_alive()
        done, acked = worker.progress()
        now = time.perf_counter()
        if done >= n_events:
            seen.end = now
            return seen
        if seen.lo is None and done >= lo:
            seen.lo = (now, done)
        if seen.hi is None and done >= hi:
            seen.hi = (now, done)
        if acked >= lo:
            if seen.first is None:
                seen.first = (now, acked)
            elif acked > (seen.last or seen.first)[1]:
                seen.last = (now, acked)
        if time.monotonic() > deadline:
            raise RuntimeError(f"pipeline processed only {done} of {n_events} events")
        time.sleep(0.1)


def _say_batch_sizes(worker: BenchWorker) -> None:
    body = worker.get("/metrics")[1]
    sums = dict(re.findall(rb"^leadstream_batch_size_events_(sum|count) (\S+)$", body, re.M))
    if sums.get(b"count"):
        n_batches = float(sums[b"count"])
        say(f"pipeline: {n_batches:.0f} batches, mean {float(sums[b'sum']) / n_batches:.0f} events")


def pipeline_throughput(worker: BenchWorker, n_events: int) -> tuple[float, float]:
    """Sustained events/s, written: from the first window acked past 10% of
    ``n_events`` to the last one acked while the backlog was still being scored (each
    window's states stored, published and its offsets acked); also the time until
    the whole backlog was scored.

    Counting scored events instead reads a write-behind worker as faster than it is
    by whatever writing it defers past the end, up to a window or two (2026-12-01,
    500k events: 72.1k scored against 62.3k written per second; with 5 s windows
    88k scored, where 500k events are too few to measure written ones). The scored
    rate between 10% and 90% is printed beside it.
    """
    seen = _watch_backlog(worker, n_events)
    total = seen.end - worker.started
    _say_batch_sizes(worker)
    first, last = seen.first, seen.last
    if first is None or last is None:
        raise RuntimeError(
            f"fewer than two windows were acked past 10% of the {n_events:,}-event backlog "
            "while it was scored: too small to measure for LEADSTREAM_FLUSH_EVENTS, use a "
            "larger --events"
        )
    rate = (last[1] - first[1]) / (last[0] - first[0])
    scored = (
        (seen.hi[1] - seen.lo[1]) / (seen.hi[0] - seen.lo[0])
        if seen.hi is not None and seen.lo is not None and seen.hi[1] > seen.lo[1]
        else math.nan
    )
    say(
        f"pipeline: {rate:,.0f} events/s written ({last[1] - first[1]:,} events acked in "
        f"{last[0] - first[0]:.2f} s), {scored:,.0f} events/s scored between 10% and 90%; "
        f"backlog scored {total:.1f}s after start"
    )
    return rate, total
