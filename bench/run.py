"""End-to-end benchmark of the leadstream worker against a real Kafka broker.

    .venv/bin/python -m bench.run [--events N] [--leads N] [--recovery-leads N] [--quick]

Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set, else starts a throwaway ``LocalKafka`` on
free ports in a temp dir (stopped at the end). Measures, over the same preloaded,
uniquely-named input topics (4 partitions, keyed by lead id):

- ceiling: a raw aiokafka consumer + ``orjson.loads`` on the worker's event loop
  (``LEADSTREAM_EVENT_LOOP``; events/s);
- naive Faust: one event at a time, one table write per event (events/s);
- pipeline: a real ``leadstream worker`` (rocksdb), sustained events/s written:
  ``leadstream_events_acked_total`` between the first window acked past 10% of the
  backlog and the last one acked before all of it was scored;
- latency: the backlog's mix (same generator and leads, live event times) offered at
  a tenth, a quarter and half the pipeline throughput (or ``--latency-rate``; that
  target point for four times as long as the others: 60 s against 15 s),
  produce time of an event -> the broker's append of the ``lead.qualified`` message
  it triggered (p50/p99; also to its arrival at this process's consumer); and, at a
  quarter of it, a burst of new leads that each qualify (every event creates or
  changes a lead's stage); with the CPU share of the worker, the broker and this
  generator at each point, and with nothing offered;
- latency floor: the target point's load through ``bench.relay`` (raw aiokafka,
  one event in sixteen passed straight to an output topic), timed the same way:
  what the machine, the broker and the generator cost before the worker adds any;
- memory: worker RSS after the backlog, and its growth per 100k leads when, at the
  end, leads never seen before arrive (the one-off part, fetch and producer buffers,
  is paid by then);
- recovery: seconds until a fresh worker (empty data dir) is ready over a changelog
  holding R lead states.

Prints a table and appends it to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import platform
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.relay import run_on_worker_loop
from scoring import load_default_model
from streams.build import scoring_build
from streams.core.contract import right_sized
from streams.core.partitioning import Partitioner
from streams.local.kafka import LocalKafka, free_ports
from streams.local.processes import stop_process
from streams.local.settings import LocalSettings
from streams.local.workload import EventFactory, generate_events, great_fit_persona, sample_states
from streams.settings import Settings, topic_env, topic_roles
from streams.topics import ensure_topics

REPO = Path(__file__).resolve().parent.parent
PARTITIONS = 4
KIND_TOPIC = {"web": "web", "email": "email", "webinar": "webinar", "profile": "profiles"}
#: aiokafka's ``ConsumerRecord.timestamp_type`` of a time the broker set.
LOG_APPEND_TIME = 1
QUALIFIED_CONFIGS = {"message.timestamp.type": "LogAppendTime"}
#: Longest wait for bench.relay to be positioned on its topics, and how long it
#: relays before it is timed.
RELAY_START_S = 60.0
RELAY_WARMUP_S = 3.0
#: Number of the first lead of the memory phase: far above any backlog's leads.
NEW_LEADS_FIRST = 10_000_000


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- topics


class Topics:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names = {role: f"{prefix}.{name}" for role, name in topic_roles().items()}

    @property
    def inputs(self) -> list[str]:
        return [self.names[k] for k in ("web", "email", "webinar", "profiles")]

    def env(self, app_id: str) -> dict[str, str]:
        return {"LEADSTREAM_APP_ID": app_id, **topic_env(self.names)}


def create_topics(bootstrap: str, topics: Topics) -> None:
    """Create the run's topics. lead.qualified keeps the time the broker appended each
    record (LogAppendTime): the latency points time a stage change by it."""
    qualified = topics.names["qualified"]
    ensure_topics(bootstrap, {qualified: PARTITIONS}, 60, configs=QUALIFIED_CONFIGS)
    ensure_topics(bootstrap, dict.fromkeys(topics.names.values(), PARTITIONS), 60)


async def produce_all(
    bootstrap: str, records: Iterator[tuple[str, bytes, bytes, int | None]], chunk: int = 20000
) -> int:
    """Send (topic, key, value, partition) records with large batches; wait for all acks."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=1 << 20,
        max_request_size=8 << 20,
        acks=1,
    )
    await producer.start()
    n = 0
    try:
        pending: list[Any] = []
        for topic, key, value, partition in records:
            pending.append(await producer.send(topic, value, key=key, partition=partition))
            n += 1
            if len(pending) >= chunk:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


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


# ---------------------------------------------------------------------------- ceiling


async def _ceiling(bootstrap: str, topics: list[str], n_events: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
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


# ------------------------------------------------------------------------ naive Faust


def naive(bootstrap: str, topics: Topics, n_events: int, tmp: Path) -> tuple[float, int]:
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
        deadline = time.monotonic() + 240
        while not result.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"naive Faust exited {proc.returncode}: see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError("naive Faust did not finish in 240 s")
            time.sleep(0.2)
        data = orjson.loads(result.read_bytes())
    finally:
        stop_process(proc, 20.0)
        log.close()
    rate = data["events"] / data["seconds"]
    say(f"naive Faust: {rate:,.0f} events/s over {data['events']} events")
    return rate, data["events"] + 1


# ---------------------------------------------------------------------------- workers


def parse_histogram(body: bytes, name: str, where: str = "") -> dict[float, float]:
    """Cumulative bucket counts (upper bound -> count) of histogram ``name`` in a
    Prometheus text page, summed over the series whose labels include ``where``."""
    pattern = rb"^" + name.encode() + rb'_bucket\{([^}]*le="([^"]+)"[^}]*)\} (\S+)$'
    out: dict[float, float] = {}
    for labels, le, n in re.findall(pattern, body, re.M):
        if where.encode() in labels:
            out[float(le)] = out.get(float(le), 0.0) + float(n)
    return out


class WorkerProc:
    def __init__(self, bootstrap: str, topics: Topics, app_id: str, data_dir: Path) -> None:
        self.port = free_ports(1)[0]
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **topics.env(app_id),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "LEADSTREAM_STORE": "rocksdb://",
            "LEADSTREAM_DATA_DIR": str(data_dir),
            "LEADSTREAM_WEB_PORT": str(self.port),
            "LEADSTREAM_WEB_HOST": "127.0.0.1",
            "LEADSTREAM_PARTITIONS": str(PARTITIONS),
            "LEADSTREAM_LOG_LEVEL": "info",  # "warn" makes Faust set the root logger to DEBUG
        }
        self.log_path = data_dir / "worker.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started = time.perf_counter()

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, b""
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return 0, b""

    def alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-30:]
            raise RuntimeError(f"worker exited {self.proc.returncode}:\n" + "\n".join(tail))

    def wait_ready(self, timeout: float = 300.0) -> float:
        deadline = time.monotonic() + timeout
        while self.get("/ready")[0] != 200:
            self.alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready within {timeout:.0f}s")
            time.sleep(0.05)
        return time.perf_counter() - self.started

    def events_done(self) -> int:
        return self.progress()[0]

    def progress(self) -> tuple[int, int]:
        """(input messages handled, of which acked: their window written), -1 if the
        metrics page does not answer."""
        status, body = self.get("/metrics")
        if status != 200:
            return -1, -1
        total = 0.0
        for m in re.finditer(rb"^leadstream_(?:events|dlq)_total\{[^}]*\} (\S+)$", body, re.M):
            total += float(m.group(1))
        acked = re.search(rb"^leadstream_events_acked_total (\S+)$", body, re.M)
        return int(total), int(float(acked.group(1))) if acked else 0

    def histogram(self, name: str, where: str = "") -> dict[float, float]:
        """:func:`parse_histogram` of the worker's metrics page."""
        return parse_histogram(self.get("/metrics")[1], name, where)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        stop_process(self.proc, 30.0)


def pipeline_throughput(worker: WorkerProc, n_events: int) -> tuple[float, float]:
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
    lo, hi = int(n_events * 0.1), int(n_events * 0.9)
    first: tuple[float, int] | None = None  # (time, acked) at the first ack past lo
    last: tuple[float, int] | None = None  # ... at the last ack seen while scoring
    t_lo = t_hi = None
    n_lo = n_hi = 0
    deadline = time.monotonic() + 420
    while True:
        worker.alive()
        done, acked = worker.progress()
        now = time.perf_counter()
        if done >= n_events:
            break
        if t_lo is None and done >= lo:
            t_lo, n_lo = now, done
        if t_hi is None and done >= hi:
            t_hi, n_hi = now, done
        if acked >= lo:
            if first is None:
                first = (now, acked)
            elif acked > (last or first)[1]:
                last = (now, acked)
        if time.monotonic() > deadline:
            raise RuntimeError(f"pipeline processed only {done} of {n_events} events")
        time.sleep(0.1)
    total = now - worker.started
    body = worker.get("/metrics")[1]
    sums = dict(re.findall(rb"^leadstream_batch_size_events_(sum|count) (\S+)$", body, re.M))
    if sums.get(b"count"):
        n_batches = float(sums[b"count"])
        say(f"pipeline: {n_batches:.0f} batches, mean {float(sums[b'sum']) / n_batches:.0f} events")
    if first is None or last is None:
        raise RuntimeError(
            f"fewer than two windows were acked past 10% of the {n_events:,}-event backlog "
            "while it was scored: too small to measure for LEADSTREAM_FLUSH_EVENTS, use a "
            "larger --events"
        )
    rate = (last[1] - first[1]) / (last[0] - first[0])
    scored = (
        (n_hi - n_lo) / (t_hi - t_lo)
        if t_hi is not None and t_lo is not None and n_hi > n_lo
        else math.nan
    )
    say(
        f"pipeline: {rate:,.0f} events/s written ({last[1] - first[1]:,} events acked in "
        f"{last[0] - first[0]:.2f} s), {scored:,.0f} events/s scored between 10% and 90%; "
        f"backlog scored {total:.1f}s after start"
    )
    return rate, total


def wait_events_done(
    worker: WorkerProc, n: int, timeout: float = 420.0, *, written: bool = False
) -> None:
    """Poll the worker's counters until it has consumed ``n`` events in all (and,
    with ``written``, written and acked their windows)."""
    deadline = time.monotonic() + timeout
    while (done := worker.progress()[1 if written else 0]) < n:
        worker.alive()
        if time.monotonic() > deadline:
            what = "written" if written else "consumed"
            raise RuntimeError(f"the worker {what} only {done} of {n} events")
        time.sleep(0.1)


def marginal_memory(
    worker: WorkerProc, bootstrap: str, topics: Topics, n_leads: int
) -> tuple[str, int]:
    """RSS per 100k leads the worker had never seen (as a table cell), and how many
    such leads arrived.

    The backlog's mix over ``n_leads`` new lead numbers, three events per number: the
    Zipf draw leaves some numbers out, so the leads that did arrive are counted.
    """
    rss_before = worker.rss_kib()
    done_before = worker.events_done()
    new_leads = preload(
        bootstrap, topics, 3 * n_leads, n_leads, seed=44, first_lead=NEW_LEADS_FIRST
    )
    wait_events_done(worker, done_before + 3 * n_leads)
    time.sleep(0.5)  # as after the backlog: the last batch's window write starts
    grown_mib = (worker.rss_kib() - rss_before) / 1024
    say(f"memory: {grown_mib:+.0f} MiB for {new_leads} new leads")
    # A few thousand leads can weigh less than what the allocator hands back meanwhile.
    cell = (
        f"{grown_mib * 100_000 / max(new_leads, 1):.0f} MiB"
        if grown_mib > 0
        else f"not measurable at this size (RSS {grown_mib:+.0f} MiB)"
    )
    return cell, new_leads


# ---------------------------------------------------------------------------- latency


_LATENCY_RUNS = itertools.count()

#: A message to offer live: (topic role, key, value, event id to time or None).
Live = tuple[str, bytes, bytes, str | None]


def mix_messages(n_events: int, n_leads: int, duration: float, seed: int) -> Iterator[Live]:
    """The backlog's mix (same generator and leads, a new seed), with live event times."""
    for kind, lead, value in generate_events(
        n_events=n_events, n_leads=n_leads, seed=seed, start=time.time(), span_s=duration
    ):
        yield KIND_TOPIC[kind], lead.encode(), value, orjson.loads(value)["event_id"]


def live_mix(rate: float, seconds: float, n_leads: int) -> list[Live]:
    """``seconds`` of the backlog's mix at ``rate``. A new seed per call: the same seed
    would replay the same event ids, which the worker drops as duplicates."""
    n = int(rate * seconds) + 1
    return list(itertools.islice(mix_messages(n, n_leads, seconds, 43 + next(_LATENCY_RUNS)), n))


def burst_messages(seed: int) -> Iterator[Live]:
    """Per new lead: great-fit profile, /pricing, /demo (-> warm), webinar attended (-> mql):
    every lead is new and half the events change a stage (a campaign's worst case)."""
    rng = random.Random(seed)
    factory = EventFactory(rng, seed)
    for i in range(10_000_000):
        lead = f"bench-lat-{seed}-{i:07d}"
        steps: list[tuple[str, dict[str, Any], bool]] = [
            ("profiles", {"attributes": great_fit_persona(rng)}, False),
            ("web", factory.web("/pricing"), False),
            ("web", factory.web("/demo"), True),
            ("webinar", factory.webinar("attended", 45), True),
        ]
        for topic, body, trigger in steps:
            eid = str(uuid.uuid4())
            value = right_sized(
                orjson.dumps(
                    {
                        "event_id": eid,
                        "lead_id": lead,
                        "occurred_at": int(time.time() * 1000),
                        **body,
                    }
                )
            )
            yield topic, lead.encode(), value, eid if trigger else None


async def _latency(
    bootstrap: str,
    topics: Topics,
    rate: float,
    duration: float,
    messages: list[Live],
    trace: list[tuple[float, float]] | None = None,
) -> tuple[list[float], list[float], int]:
    """Offer ``messages`` at ``rate``; match lead.qualified triggers to their send time.

    Returns the latencies to the stage change's append on lead.qualified (its record
    timestamp: the topic keeps LogAppendTime, to millisecond precision), the latencies
    to its arrival here, and how many messages were sent. Arrival adds this consumer's
    fetch, in a process that is also offering the load: not part of the worker's
    latency, but what a downstream consumer on this machine might see.

    ``trace``, if given, gets each stage change's (produce time, latency to the append).

    Messages are built before the clock starts: the load generator shares the
    machine's two cores with the worker and the broker, so it must cost as little as
    it can while offering.
    """
    qualified = topics.names["qualified"]
    partitioner = Partitioner(PARTITIONS)

    def partition_of(key: bytes) -> int:
        return partitioner.partition_of(key.decode())

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks=1)
    await producer.start()
    sent_at: dict[str, tuple[float, float]] = {}
    to_append: list[float] = []
    to_arrival: list[float] = []
    try:
        tps = [TopicPartition(qualified, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        stop = asyncio.Event()

        async def collect() -> None:
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                arrived = time.perf_counter()
                for recs in batch.values():
                    for r in recs:
                        trigger = orjson.loads(r.value).get("trigger_event_id")
                        t0 = sent_at.pop(trigger, None)
                        if t0 is not None:
                            if r.timestamp_type != LOG_APPEND_TIME:
                                raise RuntimeError(f"{qualified} does not keep LogAppendTime")
                            to_append.append(r.timestamp / 1000 - t0[1])
                            if trace is not None:
                                trace.append((t0[1], to_append[-1]))
                            to_arrival.append(arrived - t0[0])
                if stop.is_set() and (not batch or time.perf_counter() > deadline_drain):
                    return

        deadline_drain = float("inf")
        reader = asyncio.create_task(collect())
        tick = 0.005
        per_tick = rate * tick
        start = time.perf_counter()
        sent = 0
        credit = 0.0
        pending = iter(messages)
        timed: list[str] = []
        while time.perf_counter() - start < duration:
            credit += per_tick
            batches: dict[tuple[str, int], Any] = {}
            while credit >= 1:
                credit -= 1
                item = next(pending, None)
                if item is None:
                    break
                role, key, value, eid = item
                if eid is not None:
                    timed.append(eid)
                dest = (topics.names[role], partition_of(key))
                builder = batches.get(dest)
                if builder is None:
                    builder = batches[dest] = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is None:
                    break  # full: the rest of this tick's credit waits for the next tick
                sent += 1
            # One record batch per partition per tick, all handed over at once (a
            # tracker fleet batches too); per-record sends would cost the generator
            # CPU the worker needs on this two-core machine.
            await asyncio.gather(
                *(producer.send_batch(b, t, partition=p) for (t, p), b in batches.items())
            )
            # Produce time: when the producer took the batch (it waits while the
            # partition's previous batch is in flight; that wait is not the worker's).
            handed = (time.perf_counter(), time.time())
            for eid in timed:
                sent_at[eid] = handed
            timed.clear()
            target = start + (tick * (1 + (time.perf_counter() - start) // tick))
            await asyncio.sleep(max(0.0, target - time.perf_counter()))
        await producer.flush()
        deadline_drain = time.perf_counter() + 15
        stop.set()
        await reader
        return to_append, to_arrival, sent
    finally:
        await producer.stop()
        await consumer.stop()


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds ``pid`` has used so far (0 when unknown or gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of proc(5) (utime, stime), counted after the ")" of comm.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShares(dict[str, float]):
    """Within ``with``: each process's CPU time over the wall time (1.0 = a core)."""

    def __init__(self, worker_pid: int, broker_pid: int | None, worker: str = "worker") -> None:
        super().__init__()
        self.pids = {worker: worker_pid, "broker": broker_pid, "generator": os.getpid()}

    def __enter__(self) -> CpuShares:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.started
        for name, pid in self.pids.items():
            self[name] = (cpu_seconds(pid) - self.before[name]) / wall

    def __str__(self) -> str:
        return ", ".join(f"{name} {share:.0%}" for name, share in self.items())


GC_PAUSE = "leadstream_gc_pause_seconds"
GENERATIONS = (0, 1, 2)


def gc_pauses(before: list[dict[float, float]], after: list[dict[float, float]]) -> str:
    """Per generation collected between two scrapes: how many, and the bound of the
    longest (its histogram bucket)."""
    parts = []
    for b, a in zip(before, after, strict=True):
        n = a.get(float("inf"), 0.0) - b.get(float("inf"), 0.0)
        longest = bucket_quantile(b, a, 1.0) * 1000 if n else 0.0
        parts.append(f"{n:.0f} (<= {longest:g} ms)")
    return ", ".join(parts)


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Upper bound of the bucket holding the q-quantile of what was observed in between."""
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    for le in sorted(after):
        if after[le] - before.get(le, 0.0) >= q * total:
            return le
    return float("nan")


def percentile_ms(ordered: list[float], p: float) -> float:
    """The ``p`` quantile of sorted seconds, in ms (nan when empty)."""
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else math.nan


def latency(
    worker: WorkerProc,
    broker_pid: int | None,
    bootstrap: str,
    topics: Topics,
    rate: float,
    duration: float,
    workload: str,
    n_leads: int,
    trace_to: str | None = None,
) -> dict[str, float]:
    messages = (
        live_mix(rate, duration, n_leads)
        if workload == "mix"
        else list(itertools.islice(burst_messages(int(time.time())), int(rate * duration) + 1))
    )
    names = ("leadstream_batch_duration_seconds", "leadstream_state_flush_duration_seconds")
    before = [worker.histogram(name) for name in names]
    gc_before = [worker.histogram(GC_PAUSE, f'generation="{g}"') for g in GENERATIONS]
    # Who used the two cores while the load was offered: the answer to "is the worker
    # at capacity?" when p99 grows.
    with CpuShares(worker.proc.pid, broker_pid) as cpu:
        trace: list[tuple[float, float]] | None = [] if trace_to else None
        timed = asyncio.run(_latency(bootstrap, topics, rate, duration, messages, trace))
    after = [worker.histogram(name) for name in names]
    gc_after = [worker.histogram(GC_PAUSE, f'generation="{g}"') for g in GENERATIONS]
    batch_p99, flush_p99 = (bucket_quantile(b, a, 0.99) for b, a in zip(before, after, strict=True))
    gcs = gc_pauses(gc_before, gc_after)
    out = latency_stats(*timed, cpu)
    out["seconds"] = duration
    say(
        f"latency ({workload}) at {rate:,.0f} ev/s offered, {out['matched']:,.0f} stage changes "
        f"of {out['sent']:,.0f} events, p50 / p99 to the append: {latency_cell(out, 'worker')}; "
        f"in the worker, p99 of a batch <= {batch_p99 * 1000:g} ms, of a state flush <= "
        f"{flush_p99 * 1000:g} ms; GC pauses by generation {gcs}"
    )
    if trace_to and trace is not None:
        path = Path(f"{trace_to}.{workload}.{rate:.0f}.json")
        path.write_bytes(orjson.dumps(trace))
        say(f"  trace in {path}; slowest half-seconds: {slowest_spans(trace)}")
    return out


def slowest_spans(trace: list[tuple[float, float]], span_s: float = 0.5, n: int = 3) -> str:
    """The ``n`` spans of produce time with the highest latency, as "at: p50/max ms":
    periodic stalls show as evenly spaced spans (a window's close, say), an overload
    as adjacent ones.

    >>> slowest_spans([(100.0, 0.010), (100.2, 0.020), (101.1, 0.300), (102.6, 0.050)], n=2)
    '1.0 s: 300/300 ms, 2.5 s: 50/50 ms'
    """
    if not trace:
        return "none"
    start = min(t for t, _ in trace)
    spans: dict[int, list[float]] = {}
    for t, latency_s in trace:
        spans.setdefault(int((t - start) / span_s), []).append(latency_s)
    worst = sorted(spans.items(), key=lambda kv: max(kv[1]), reverse=True)[:n]
    return ", ".join(
        f"{k * span_s:.1f} s: {sorted(v)[len(v) // 2] * 1000:.0f}/{max(v) * 1000:.0f} ms"
        for k, v in sorted(worst)
    )


def latency_stats(
    to_append: list[float], to_arrival: list[float], sent: int, cpu: CpuShares
) -> dict[str, float]:
    """p50/p99 in ms of what :func:`_latency` timed, with the CPU shares meanwhile."""
    to_append.sort()
    to_arrival.sort()
    return {
        "p50": percentile_ms(to_append, 0.5),
        "p99": percentile_ms(to_append, 0.99),
        "arrival_p50": percentile_ms(to_arrival, 0.5),
        "arrival_p99": percentile_ms(to_arrival, 0.99),
        "matched": len(to_append),
        "sent": sent,
        **cpu,
    }


def latency_cell(point: dict[str, float], process: str) -> str:
    """A latency row's result: p50 / p99 to the append, then arrival and CPU."""
    return (
        f"{point['p50']:.1f} / {point['p99']:.1f} ms (arrival at a consumer: "
        f"{point['arrival_p50']:.0f} / {point['arrival_p99']:.0f} ms; CPU: {process} "
        f"{point[process]:.0%}, broker {point['broker']:.0%}, generator "
        f"{point['generator']:.0%})"
    )


def latency_floor(
    broker_pid: int | None, bootstrap: str, prefix: str, rate: float, duration: float, n_leads: int
) -> dict[str, float]:
    """The latency point's load and timing with ``bench.relay`` in the worker's place.

    Topics of its own (the worker never sees this load); what the relay's p99 leaves
    to the target is what the worker may add on this machine.
    """
    topics = Topics(prefix)
    create_topics(bootstrap, topics)
    warmup = live_mix(rate, RELAY_WARMUP_S, n_leads)
    messages = live_mix(rate, duration, n_leads)
    args = ["--bootstrap", bootstrap, "--inputs", ",".join(topics.inputs)]
    args += ["--partitions", str(PARTITIONS), "--output", topics.names["qualified"]]
    relay = subprocess.Popen(
        [sys.executable, "-m", "bench.relay", *args], cwd=REPO, stdout=subprocess.PIPE
    )
    try:
        assert relay.stdout is not None
        # "ready", or nothing if it died first (its stderr shows why) or hangs.
        started, _, _ = select.select([relay.stdout], [], [], RELAY_START_S)
        if not started or relay.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"bench.relay did not start (exit code {relay.poll()})")
        # New topics' first second is slow end to end (70-190 ms); the worker's are warm.
        asyncio.run(_latency(bootstrap, topics, rate, RELAY_WARMUP_S, warmup))
        with CpuShares(relay.pid, broker_pid, worker="relay") as cpu:
            timed = asyncio.run(_latency(bootstrap, topics, rate, duration, messages))
    finally:
        stop_process(relay, grace_s=10)
    out = latency_stats(*timed, cpu)
    say(
        f"latency floor (bench.relay, no scoring) at {rate:,.0f} ev/s offered, "
        f"{out['matched']:,.0f} relayed of {out['sent']:,.0f} events, p50 / p99 to the append: "
        f"{latency_cell(out, 'relay')}"
    )
    return out


# --------------------------------------------------------------------------- recovery


@contextlib.contextmanager
def py_spy(pid: int, out: str | None) -> Iterator[None]:
    """Within ``with``: py-spy (installed next to this Python, for profiling only)
    records ``pid`` into ``out`` as collapsed stacks; nothing when ``out`` is None."""
    if out is None:
        yield
        return
    exe = str(Path(sys.executable).with_name("py-spy"))
    spy = subprocess.Popen(
        [exe, "record", "-p", str(pid), "-f", "raw", "-o", out, "-r", "200"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(timeout=30)


def recovery(bootstrap: str, n_leads: int, tmp: Path, profile: str | None = None) -> float:
    uid = uuid.uuid4().hex[:8]
    app_id = f"bench-rec-{uid}"
    topics = Topics(f"bench-rec-{uid}")
    changelog = f"{app_id}-leads-changelog"
    ensure_topics(bootstrap, {changelog: PARTITIONS}, timeout=60)
    partitioner = Partitioner(PARTITIONS)
    samples = [
        st.to_dict()
        for st in sample_states(64, seed=7, now=time.time(), model=load_default_model())
    ]

    def records() -> Iterator[tuple[str, bytes, bytes, int | None]]:
        for i in range(n_leads):
            lead = f"lead-r{i:08d}"
            state = samples[i % len(samples)]
            state["lead_id"] = lead
            yield changelog, lead.encode(), orjson.dumps(state), partitioner.partition_of(lead)

    started = time.perf_counter()
    n = asyncio.run(produce_all(bootstrap, records(), chunk=5000))
    say(f"wrote {n} lead states to {changelog} in {time.perf_counter() - started:.1f}s")
    worker = WorkerProc(bootstrap, topics, app_id, tmp / "rec-data")
    try:
        with py_spy(worker.proc.pid, profile):
            seconds = worker.wait_ready(timeout=400)
    finally:
        worker.stop()
    say(f"recovery of {n_leads:,} leads: ready after {seconds:.1f}s")
    return seconds


# ---------------------------------------------------------------------------- results


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def kafka_version(local: bool) -> str:
    if not local:
        return "external broker (KAFKA_BOOTSTRAP_SERVERS)"
    found = sorted(Path(LocalSettings.from_env().cache_dir).glob("kafka-*"))
    return f"Apache Kafka {found[-1].name.removeprefix('kafka-')} (LocalKafka)" if found else "?"


def git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, check=True
        )
        dirty = subprocess.run(
            # RESULTS.md is what a run appends to: it does not make the code dirty.
            [
                "git",
                "status",
                "--porcelain",
                "--",
                "scoring",
                "streams",
                "bench",
                ":!bench/RESULTS.md",
            ],
            cwd=REPO,
            capture_output=True,
        )
        return out.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, help="preloaded backlog (default 500000)")
    parser.add_argument("--leads", type=int, help="distinct leads in the backlog (default 50000)")
    parser.add_argument("--recovery-leads", type=int, help="lead states to recover (1000000)")
    parser.add_argument("--naive-events", type=int, help="events the naive agent handles")
    parser.add_argument(
        "--new-leads", type=int, help="lead numbers of the last memory phase (default 100000)"
    )
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument(
        "--target-seconds",
        type=float,
        help="how long the target point (half the rate, or --latency-rate) is offered "
        "(default: four times --latency-seconds)",
    )
    parser.add_argument(
        "--latency-rate", type=float, help="events/s offered for latency (default: half the rate)"
    )
    parser.add_argument(
        "--latency-trace",
        metavar="PREFIX",
        help="write each latency point's (produce time, latency) pairs to PREFIX.<point>.json",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes")
    parser.add_argument("--no-record", action="store_true", help="do not append RESULTS.md")
    parser.add_argument(
        "--py-spy",
        metavar="OUT",
        help="profile the worker (collapsed stacks): backlog to OUT, the target latency "
        "point to OUT.latency, recovery to OUT.recovery",
    )
    parser.add_argument("--skip", default="", help="comma list of: naive,latency,memory,recovery")
    args = parser.parse_args(argv)
    # A SIGTERM (timeout, pkill) unwinds like Ctrl-C, so the finally blocks stop the
    # workers and the broker instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    quick = args.quick
    n_events = args.events or (60_000 if quick else 500_000)
    n_leads = args.leads or (10_000 if quick else 50_000)
    rec_leads = args.recovery_leads or (100_000 if quick else 1_000_000)
    new_leads = args.new_leads or (20_000 if quick else 100_000)
    naive_events = min(n_events, args.naive_events or (15_000 if quick else 40_000))
    lat_seconds = 8.0 if quick and args.latency_seconds == 15.0 else args.latency_seconds
    if quick:
        # The throughput counts acked windows: at LEADSTREAM_FLUSH_EVENTS' default
        # (50k, twice that while the writer is behind) a 60k-event backlog acks fewer
        # than two. Windows a tenth of the backlog keep a small run measuring.
        os.environ.setdefault("LEADSTREAM_FLUSH_EVENTS", str(max(1_000, n_events // 10)))
    # Held for 60 s, the half point's p99 read 426 ms where 15 s points had read
    # 60-331 ms (2026-12-01): the target is a sustained load, not a short one.
    target_seconds = args.target_seconds or 4 * lat_seconds

    tmp = Path(tempfile.mkdtemp(prefix="leadstream-bench-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    broker: LocalKafka | None = None
    t_all = time.perf_counter()
    try:
        if not bootstrap:
            port, cport = free_ports(2)
            cache_dir = LocalSettings.from_env().cache_dir
            broker = LocalKafka(cache_dir, tmp / "kafka", port, cport, heap="1g")
            say(f"starting LocalKafka on 127.0.0.1:{port}")
            broker.start()
            bootstrap = broker.bootstrap
        uid = uuid.uuid4().hex[:8]
        topics = Topics(f"bench-{uid}")
        create_topics(bootstrap, topics)
        active = preload(bootstrap, topics, n_events, n_leads)

        ceil = ceiling(bootstrap, topics, n_events)
        skip = set(args.skip.split(","))
        naive_rate, naive_n = (
            (float("nan"), 0) if "naive" in skip else naive(bootstrap, topics, naive_events, tmp)
        )

        worker = WorkerProc(bootstrap, topics, f"bench-{uid}-app", tmp / "data")
        try:
            ready_s = worker.wait_ready()
            rss_ready = worker.rss_kib()
            with py_spy(worker.proc.pid, args.py_spy):
                rate, backlog_s = pipeline_throughput(worker, n_events)
            time.sleep(0.5)
            rss_loaded = worker.rss_kib()
            grown_mib = (rss_loaded - rss_ready) / 1024
            # A small run's leads can weigh less than what the worker frees after its
            # start (fetch buffers, the preload): then there is no figure to scale up.
            memory = f"{rss_ready / 1024:.0f} -> {rss_loaded / 1024:.0f} MiB" + (
                f" ({grown_mib * 100_000 / max(active, 1):.0f} MiB per 100k leads)"
                if grown_mib > 0
                else " (not measurable at this size)"
            )
            say(
                f"memory: RSS {rss_ready / 1024:.0f} MiB at ready, {rss_loaded / 1024:.0f} MiB "
                f"after {active} leads -> {memory}"
            )
            # What the broker and the worker cost with nothing offered (fetch polling,
            # the log cleaner compacting the changelog the backlog wrote, ...).
            broker_pid = broker.pid if broker is not None else None
            with CpuShares(worker.proc.pid, broker_pid) as idle:
                time.sleep(5.0)
            say(f"idle for 5 s after the backlog: CPU {idle}")
            # The target point (half the throughput, or --latency-rate) and, to show
            # where p99 stays low, a tenth and a quarter of the throughput.
            lat_rate = args.latency_rate or rate / 2
            lat_points: list[tuple[str, float, dict[str, float]]] = []
            if "latency" not in skip:
                rates = [lat_rate] if args.latency_rate else [rate / 10, rate / 4, lat_rate]
                points = [("mix", offered) for offered in rates] + [("burst", lat_rate / 2)]
                for workload, offered in points:
                    target = workload == "mix" and offered == lat_rate
                    seconds = target_seconds if target else lat_seconds
                    done_before = worker.events_done()
                    profile = args.py_spy + ".latency" if args.py_spy and target else None
                    with py_spy(worker.proc.pid, profile):
                        result = latency(
                            worker,
                            broker_pid,
                            bootstrap,
                            topics,
                            offered,
                            seconds,
                            workload,
                            n_leads,
                            args.latency_trace,
                        )
                    lat_points.append((workload, offered, result))
                    # Each point starts on a drained worker, its events scored and
                    # their windows written: a point that overloads it must not leave
                    # its queue or its writes to the next (the burst's first second
                    # read p50 180-270 ms after the 60 s point, 2026-12-01).
                    wait_events_done(worker, done_before + int(result["sent"]), written=True)
            floor = (
                None
                if "latency" in skip
                else latency_floor(
                    broker_pid, bootstrap, f"bench-{uid}-floor", lat_rate, lat_seconds, n_leads
                )
            )
            marginal = (
                None if "memory" in skip else marginal_memory(worker, bootstrap, topics, new_leads)
            )
        finally:
            worker.stop()
        rec_s = (
            float("nan")
            if "recovery" in skip
            else recovery(bootstrap, rec_leads, tmp, args.py_spy and args.py_spy + ".recovery")
        )
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # A skipped measure (--skip) leaves its rows out rather than printing nan.
    naive_rows = [
        (f"naive Faust (per event + table write, {naive_n:,} ev)", f"{naive_rate:,.0f} ev/s", ""),
        ("pipeline / naive", f"{rate / naive_rate:.1f}x", ">= 5x"),
    ]
    rows = [
        ("ceiling (aiokafka getmany + orjson.loads)", f"{ceil:,.0f} events/s", ""),
        ("pipeline (leadstream worker, rocksdb, written and acked)", f"{rate:,.0f} events/s", ""),
        ("pipeline / ceiling", f"{rate / ceil:.0%}", ">= 50%"),
        *(naive_rows if "naive" not in skip else []),
        ("CPU with nothing offered, after the backlog", str(idle), ""),
        *(
            (
                (
                    f"latency p50 / p99, backlog's mix live at {offered:,.0f} ev/s"
                    if workload == "mix"
                    else f"latency p50 / p99, all-new qualifying leads at {offered:,.0f} ev/s"
                )
                + f" for {point['seconds']:g} s ({point['matched']:,.0f} stage changes)",
                latency_cell(point, "worker"),
                "p99 <= 100 ms" if workload == "mix" and offered == lat_rate else "",
            )
            for workload, offered, point in lat_points
        ),
        *(
            [
                (
                    f"latency floor p50 / p99, the mix at {lat_rate:,.0f} ev/s through "
                    f"bench.relay, raw aiokafka and no scoring ({floor['matched']:,.0f} events)",
                    latency_cell(floor, "relay"),
                    "",
                )
            ]
            if floor is not None
            else []
        ),
        (f"memory: RSS at ready -> after the backlog ({active:,} leads)", memory, ""),
        *(
            [
                (
                    f"memory: RSS per 100k more leads, after the backlog ({marginal[1]:,} new)",
                    marginal[0],
                    "stated",
                )
            ]
            if marginal is not None
            else []
        ),
        *(
            [(f"recovery of {rec_leads:,} leads (empty data dir)", f"{rec_s:.1f} s", "1M <= 60 s")]
            if "recovery" not in skip
            else []
        ),
    ]
    worker_settings = Settings.from_env()  # as the worker read them
    head = (
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — "
        f"`{git_head()}`{' (--quick)' if quick else ''}\n\n"
        f"- Machine: {machine()}\n- Kafka: {kafka_version(broker is not None)}\n"
        f"- Scoring: {scoring_build().kind}; event loop of the worker, the ceiling and the"
        f" relay: {worker_settings.event_loop}\n"
        f"- Backlog: {n_events:,} events, {active:,} leads, 4 partitions x 4 topics; "
        f"worker ready {ready_s:.1f}s, backlog done {backlog_s:.1f}s after start; "
        f"windows of {worker_settings.flush_events:,} events or"
        f" {worker_settings.flush_interval_s:g} s\n\n"
    )
    table = "| measure | result | target |\n|---|---|---|\n"
    table += "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)
    text = head + table
    print("\n" + text)
    if not args.no_record:
        results = REPO / "bench" / "RESULTS.md"
        if not results.exists():
            results.write_text("# leadstream benchmark results\n\n`make bench` appends here.\n\n")
        with results.open("a") as f:
            f.write(text + "\n")
    say(f"total {time.perf_counter() - t_all:.0f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as err:  # the bench's own failures: one line, not a traceback
        print(f"bench: {err}", file=sys.stderr)
        sys.exit(1)
