"""``leadstream demo``: live demo traffic to the four input topics, and the outcomes a
CRM sync would publish on ``lead.outcomes``.

A thin I/O shell around :class:`streams.local.workload.DemoTraffic` and
:class:`streams.local.crm.CrmSync` (which decide what to send and are unit-tested):
connect with a deadline, send at about ``rate`` messages per second keyed by lead id,
follow the stage changes on ``lead.qualified`` (as ``leadstream tail`` reads them) and
publish each SQL's sales outcomes when they are due, log a one-line count summary
every 10 s, and on Ctrl-C/SIGTERM or after ``duration`` seconds flush and exit cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams.faust_adapter.kafka_meta import BrokerAccessError, check_access, partitions_for
from streams.kafkasecurity import KafkaSecurity, security_of
from streams.local.crm import CrmSync
from streams.local.workload import INVALID_KINDS, DemoTraffic
from streams.settings import Settings
from streams.topics import ensure_topics_async

CONNECT_TIMEOUT_S = 30.0
LOG_EVERY_S = 10.0
#: Longest sleep between sends: bounds how late a Ctrl-C or a due message is noticed.
MAX_SLEEP_S = 0.25
#: How long a stop may spend delivering what is buffered (nothing, if the broker is gone).
STOP_GRACE_S = 5.0
#: How long a stop may spend closing the CRM sync's consumer.
FOLLOW_STOP_S = 2.0
#: How often the CRM sync looks again for a lead.qualified not created yet.
TOPIC_RETRY_S = 0.5


def pick_seed(seed: int | None) -> int:
    """``seed``, or a new one when None.

    Event ids come from the seed, and a local broker keeps its topics between runs:
    a second run with the same seed would send the first run's ids again, and the
    worker would count them as duplicates.
    """
    return seed if seed is not None else random.SystemRandom().getrandbits(32)


def run_demo_cli(
    settings: Settings, *, rate: float, leads: int, duration: float, seed: int | None
) -> int:
    """Entry point of ``leadstream demo``; returns the process exit code."""
    if rate <= 0 or leads <= 0 or duration < 0:
        print("leadstream demo: need --rate > 0, --leads > 0, --duration >= 0", file=sys.stderr)
        return 2
    try:
        return asyncio.run(
            run_demo(settings, rate=rate, leads=leads, duration=duration, seed=pick_seed(seed))
        )
    except KeyboardInterrupt:  # before the signal handlers were installed
        return 130


async def run_demo(
    settings: Settings,
    *,
    rate: float,
    leads: int,
    duration: float,
    seed: int,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    log_every_s: float = LOG_EVERY_S,
    out: TextIO = sys.stdout,
    outcomes: bool = True,
    outcome_delay_scale: float = 1.0,
    outcomes_since: float | None = None,
) -> int:
    """The demo until stopped or ``duration`` is over. ``outcomes``: also act as a CRM
    sync, for the stage changes published from ``outcomes_since`` (default: now) on."""
    producer = await _connect(settings.bootstrap_servers, security_of(settings), connect_timeout_s)
    if producer is None:
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None

    def stop_now() -> None:
        # Cancelled too, not only told: with the broker gone, a send waits for room in
        # the producer's buffer and would never look at ``stop`` again.
        stop.set()
        main.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop_now)
            installed.append(sig)
    topics = {
        "web": settings.topic_web,
        "email": settings.topic_email,
        "webinar": settings.topic_webinar,
        "profile": settings.topic_profiles,
    }
    start = time.time()
    traffic = DemoTraffic(n_leads=leads, seed=seed, start=start)
    counts: Counter[str] = Counter()
    print(
        f"leadstream demo: {rate:g} events/s to {settings.bootstrap_servers}, {leads} leads, "
        f"seed {seed}, "
        f"hot leads {', '.join(traffic.hot_lead_ids)}; "
        + (f"outcomes to {settings.topic_outcomes} for leads reaching sql; " if outcomes else "")
        + (f"{duration:g}s" if duration else "Ctrl-C to stop"),
        file=out,
        flush=True,
    )

    def delivered(fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            counts["failed"] += 1

    follower: asyncio.Task[None] | None = None
    if outcomes:
        crm = CrmSync(seed=seed, delay_scale=outcome_delay_scale)
        since = start if outcomes_since is None else outcomes_since
        follower = asyncio.create_task(
            _crm_sync(settings, producer, crm, since, counts, delivered), name="crm-sync"
        )
    sent = 0
    next_log = start + log_every_s
    try:
        while not stop.is_set():
            now = time.time()
            elapsed = now - start
            if duration and elapsed >= duration:
                break
            due = int(elapsed * rate) + 1 - sent
            for _ in range(max(0, due)):
                msg = traffic.next_message(now)
                fut = await producer.send(topics[msg.kind], msg.value, key=msg.lead_id.encode())
                fut.add_done_callback(delivered)
                counts[msg.kind] += 1
                counts["invalid" if msg.label in INVALID_KINDS else "valid"] += 1
                sent += 1
            if now >= next_log:
                _summary(counts, sent, elapsed, out)
                next_log += log_every_s
            wait = min(MAX_SLEEP_S, max(0.0, (sent / rate) - (time.time() - start)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
    except KafkaError as exc:
        print(f"leadstream demo: Kafka error: {exc}", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        if follower is not None:
            await _stop_follower(follower)
        # Bounded: with the broker gone, neither would ever finish.
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(producer.flush(), STOP_GRACE_S)
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(producer.stop(), STOP_GRACE_S)
        _summary(counts, sent, time.time() - start, out, final=True)
    return 0


async def _crm_sync(
    settings: Settings,
    producer: AIOKafkaProducer,
    crm: CrmSync,
    since: float,
    counts: Counter[str],
    delivered: Callable[[asyncio.Future[Any]], None],
) -> None:
    """Follow ``lead.qualified`` from ``since`` on and send each outcome when due, until
    cancelled. A failure ends the outcomes (said in one line), not the demo."""
    security = security_of(settings)
    try:
        # Keyed like every input: the worker wants LEADSTREAM_PARTITIONS partitions.
        await ensure_topics_async(
            settings.bootstrap_servers,
            {settings.topic_outcomes: settings.partitions},
            security=security,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            enable_auto_commit=False,
            **security.aiokafka_kwargs(),
        )
        await consumer.start()
        try:
            await _follow_from(consumer, settings.topic_qualified, since)
            await _publish_outcomes(
                consumer, producer, crm, settings.topic_outcomes, counts, delivered
            )
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), FOLLOW_STOP_S)
    except (KafkaError, OSError, TimeoutError, RuntimeError) as exc:
        print(f"leadstream demo: outcomes stopped: {type(exc).__name__}: {exc}", file=sys.stderr)


async def _follow_from(consumer: AIOKafkaConsumer, topic: str, since: float) -> None:
    """Read every partition of ``topic`` from the first record at ``since`` (no group:
    nothing committed), once the worker has created it."""
    while True:
        parts = await partitions_for(consumer, topic)
        if parts:
            break
        await asyncio.sleep(TOPIC_RETRY_S)  # a fresh broker: the worker creates it
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    found = await consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
    for tp in tps:
        at = found.get(tp)
        if at is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, at.offset)


async def _publish_outcomes(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    crm: CrmSync,
    topic: str,
    counts: Counter[str],
    delivered: Callable[[asyncio.Future[Any]], None],
) -> None:
    while True:
        due = crm.next_due()
        wait = MAX_SLEEP_S if due is None else min(MAX_SLEEP_S, max(0.0, due - time.time()))
        batches = await consumer.getmany(timeout_ms=round(wait * 1000))
        now = time.time()
        for records in batches.values():
            for record in records:
                with contextlib.suppress(orjson.JSONDecodeError):
                    crm.observe(orjson.loads(record.value or b""), now)
        for message in crm.due(time.time()):
            fut = await producer.send(topic, message.value, key=message.lead_id.encode())
            fut.add_done_callback(delivered)
            counts["outcome"] += 1


async def _stop_follower(follower: asyncio.Task[None]) -> None:
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(follower, FOLLOW_STOP_S)


async def _connect(
    bootstrap: str, security: KafkaSecurity, timeout_s: float
) -> AIOKafkaProducer | None:
    """A started producer, retrying until ``timeout_s``; None (with a message) on failure."""
    try:
        # Refused credentials or an untrusted certificate: one line, no retrying.
        await check_access(bootstrap, security, timeout=timeout_s)
    except BrokerAccessError as exc:
        print(f"leadstream demo: {exc}", file=sys.stderr)
        return None
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while True:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=5, acks=1, **security.aiokafka_kwargs()
        )
        remaining = deadline - time.monotonic()
        try:
            await asyncio.wait_for(producer.start(), timeout=max(0.1, remaining))
            return producer
        except (KafkaError, OSError, TimeoutError) as exc:
            last = exc
            with contextlib.suppress(Exception):
                await producer.stop()
        if time.monotonic() + 1.0 >= deadline:
            break
        await asyncio.sleep(1.0)
    print(
        f"leadstream demo: cannot reach Kafka at {bootstrap} within {timeout_s:g}s "
        f"({type(last).__name__}: {last}). Is it running? Try `leadstream kafka start` "
        "or set KAFKA_BOOTSTRAP_SERVERS.",
        file=sys.stderr,
    )
    return None


def _summary(
    counts: Counter[str], sent: int, elapsed: float, out: TextIO, *, final: bool = False
) -> None:
    rate = sent / elapsed if elapsed > 0 else 0.0
    print(
        f"leadstream demo: {'done, ' if final else ''}sent {sent} ({rate:.1f}/s): "
        f"web {counts['web']}, email {counts['email']}, webinar {counts['webinar']}, "
        f"profile {counts['profile']}; invalid {counts['invalid']}, failed {counts['failed']}; "
        f"outcomes {counts['outcome']}",
        file=out,
        flush=True,
    )
