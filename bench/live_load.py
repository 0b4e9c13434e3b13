"""The live load the latency points offer, and how each stage change is timed.

Two workloads, with event times of now: the backlog's mix (same generator and
leads, a new seed per point) and a burst of new leads that each qualify. They are
offered at a steady rate in one record batch per partition every 5 ms; each event
that should change a lead's stage is matched to the ``lead.qualified`` message it
triggered, and timed from its produce time to the broker's append of that message
(and to its arrival at this process's consumer).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import KIND_TOPIC, PARTITIONS, Topics, kafka_security
from streams.core.contract import right_sized
from streams.core.partitioning import Partitioner
from streams.local.workload import EventFactory, generate_events, great_fit_persona
from streams.settings import Settings

#: aiokafka's ``ConsumerRecord.timestamp_type`` of a time the broker set.
LOG_APPEND_TIME = 1
#: The generator's pace: a batch per partition every this many seconds.
TICK_S = 0.005
#: Longest wait, once all is sent, for the last stage changes to arrive.
DRAIN_S = 15

_LATENCY_RUNS = itertools.count()

#: A message to offer live: (topic role, key, value, event id to time or None).
Live = tuple[str, bytes, bytes, str | None]
#: What :func:`offer_and_time` measured: latencies (s) to the append and to the
#: arrival here, and the number of messages sent.
Timed = tuple[list[float], list[float], int]


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


class _StageChanges:
    """Reads lead.qualified from its end and matches each message to the send time
    of the event that triggered it."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        qualified: str,
        trace: list[tuple[float, float]] | None,
        quiet_s: float = 0.0,
    ) -> None:
        """``quiet_s``: once all is sent, stop after this long without a match (0: at
        the first empty fetch)."""
        self.consumer = consumer
        self.qualified = qualified
        self.trace = trace
        self.quiet_s = quiet_s
        self.last_match = 0.0
        #: Event id -> (perf_counter, time.time()) when the producer took its batch.
        self.sent_at: dict[str, tuple[float, float]] = {}
        self.to_append: list[float] = []
        self.to_arrival: list[float] = []
        self.stop = asyncio.Event()
        self.drain_until = float("inf")

    async def position(self) -> None:
        tps = [TopicPartition(self.qualified, p) for p in range(PARTITIONS)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)

    async def collect(self) -> None:
        """Match until :meth:`finish`, then until a fetch is empty or the drain ends."""
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            arrived = time.perf_counter()
            for recs in batch.values():
                for r in recs:
                    trigger = orjson.loads(r.value).get("trigger_event_id")
                    t0 = self.sent_at.pop(trigger, None)
                    if t0 is not None:
                        if r.timestamp_type != LOG_APPEND_TIME:
                            raise RuntimeError(f"{self.qualified} does not keep LogAppendTime")
                        self.to_append.append(r.timestamp / 1000 - t0[1])
                        if self.trace is not None:
                            self.trace.append((t0[1], self.to_append[-1]))
                        self.to_arrival.append(arrived - t0[0])
                        self.last_match = arrived
            now = time.perf_counter()
            quiet = not batch if not self.quiet_s else now - self.last_match > self.quiet_s
            if self.stop.is_set() and (quiet or now > self.drain_until):
                return

    def finish(self) -> None:
        self.drain_until = time.perf_counter() + DRAIN_S
        self.stop.set()


async def _offer(
    producer: AIOKafkaProducer,
    topics: Topics,
    rate: float,
    duration: float,
    messages: list[Live],
    sent_at: dict[str, tuple[float, float]],
) -> int:
    """Send ``messages`` at ``rate`` for ``duration``; note the timed ones' send time
    in ``sent_at``. Returns how many were sent."""
    partitioner = Partitioner(PARTITIONS)
    per_tick = rate * TICK_S
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
            dest = (topics.names[role], partitioner.partition_of(key.decode()))
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
        target = start + (TICK_S * (1 + (time.perf_counter() - start) // TICK_S))
        await asyncio.sleep(max(0.0, target - time.perf_counter()))
    await producer.flush()
    return sent


async def offer_and_time(
    bootstrap: str,
    topics: Topics,
    rate: float,
    duration: float,
    messages: list[Live],
    trace: list[tuple[float, float]] | None = None,
) -> Timed:
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
    security = kafka_security().aiokafka_kwargs()
    settings = Settings.from_env()  # as the worker reads them
    # Exactly-once: a stage change counts once a read_committed consumer sees it (its
    # window's commit); its append time is earlier, inside the open transaction.
    isolation = "read_committed" if settings.exactly_once else "read_uncommitted"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation,
        **security,
    )
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks=1, **security)
    await producer.start()
    try:
        # Exactly-once: the last window's stage changes come with its commit, up to a
        # window and its paced write after the last event.
        quiet_s = 2 * settings.flush_interval_s + 1 if settings.exactly_once else 0.0
        changes = _StageChanges(consumer, topics.names["qualified"], trace, quiet_s)
        await changes.position()
        reader = asyncio.create_task(changes.collect())
        sent = await _offer(producer, topics, rate, duration, messages, changes.sent_at)
        changes.finish()
        await reader
        return changes.to_append, changes.to_arrival, sent
    finally:
        await producer.stop()
        await consumer.stop()
