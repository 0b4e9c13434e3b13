"""``leadstream demo``: live demo traffic to the four input topics, and the outcomes a
CRM sync would publish on ``lead.outcomes``.

A thin I/O shell, :class:`DemoRun`, around :class:`streams.local.workload.DemoTraffic`,
:class:`streams.local.crm.CrmSync` and :class:`Pacing` (which decide what to send and
when, and are unit-tested): connect with a deadline, send at about ``rate`` messages
per second keyed by lead id, follow the stage changes on ``lead.qualified`` (as
``leadstream tail`` reads them) and publish each SQL's sales outcomes when they are due,
log a one-line count summary every 10 s, and on Ctrl-C/SIGTERM or after ``duration``
seconds flush and exit cleanly.
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
from dataclasses import dataclass
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
    demo = DemoRun(
        settings,
        producer,
        rate=rate,
        leads=leads,
        duration=duration,
        seed=seed,
        log_every_s=log_every_s,
        out=out,
        outcomes=outcomes,
        outcome_delay_scale=outcome_delay_scale,
        outcomes_since=outcomes_since,
    )
    return await demo.run()


@dataclass(frozen=True, slots=True)
class Pacing:
    """About ``rate`` messages a second from ``start``, the first one at once; a run
    that fell behind catches up at once rather than staying behind."""

    rate: float
    start: float

    def due(self, sent: int, now: float) -> int:
        """How many to send at ``now`` when ``sent`` have been sent."""
        return max(0, int((now - self.start) * self.rate) + 1 - sent)

    def wait(self, sent: int, now: float) -> float:
        """How long to sleep at ``now`` before the next one, at most MAX_SLEEP_S."""
        return min(MAX_SLEEP_S, max(0.0, sent / self.rate - (now - self.start)))


class DemoRun:
    """One demo on a started ``producer``, which it stops: paced traffic to the input
    topics, the CRM sync's outcomes when ``outcomes``, and the count summaries."""

    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        *,
        rate: float,
        leads: int,
        duration: float,
        seed: int,
        log_every_s: float = LOG_EVERY_S,
        out: TextIO = sys.stdout,
        outcomes: bool = True,
        outcome_delay_scale: float = 1.0,
        outcomes_since: float | None = None,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.rate = rate
        self.leads = leads
        self.duration = duration
        self.seed = seed
        self.log_every_s = log_every_s
        self.out = out
        self.outcomes = outcomes
        self.outcome_delay_scale = outcome_delay_scale
        self.outcomes_since = outcomes_since
        self.topics = {
            "web": settings.topic_web,
            "email": settings.topic_email,
            "webinar": settings.topic_webinar,
            "profile": settings.topic_profiles,
        }
        self.start = time.time()
        self.pacing = Pacing(rate, self.start)
        self.traffic = DemoTraffic(n_leads=leads, seed=seed, start=self.start)
        self.counts: Counter[str] = Counter()
        self.sent = 0
        self.stopping = asyncio.Event()
        self._main: asyncio.Task[Any] | None = None
        self._signals: list[signal.Signals] = []
        self._follower: asyncio.Task[None] | None = None

    async def run(self) -> int:
        """Until stopped or ``duration`` is over; 0, or 1 on a Kafka error. The final
        summary is printed either way."""
        self._main = asyncio.current_task()
        assert self._main is not None
        self._install_signal_handlers()
        self._announce()
        if self.outcomes:
            self._start_follower()
        try:
            await self._send_until_stopped()
        except KafkaError as exc:
            print(f"leadstream demo: Kafka error: {exc}", file=sys.stderr)
            return 1
        except asyncio.CancelledError:
            if not self.stopping.is_set():
                raise
        finally:
            await self._stop()
        return 0

    def stop(self) -> None:
        """What Ctrl-C and SIGTERM call."""
        # Cancelled too, not only told: with the broker gone, a send waits for room in
        # the producer's buffer and would never look at ``stopping`` again.
        self.stopping.set()
        if self._main is not None:  # None: not running yet
            self._main.cancel()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
                self._signals.append(sig)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()

    def _announce(self) -> None:
        print(
            f"leadstream demo: {self.rate:g} events/s to {self.settings.bootstrap_servers}, "
            f"{self.leads} leads, seed {self.seed}, "
            f"hot leads {', '.join(self.traffic.hot_lead_ids)}; "
            + (
                f"outcomes to {self.settings.topic_outcomes} for leads reaching sql; "
                if self.outcomes
                else ""
            )
            + (f"{self.duration:g}s" if self.duration else "Ctrl-C to stop"),
            file=self.out,
            flush=True,
        )

    def _start_follower(self) -> None:
        crm = CrmSync(seed=self.seed, delay_scale=self.outcome_delay_scale)
        since = self.start if self.outcomes_since is None else self.outcomes_since
        self._follower = asyncio.create_task(
            _crm_sync(self.settings, self.producer, crm, since, self.counts, self._delivered),
            name="crm-sync",
        )

    async def _send_until_stopped(self) -> None:
        next_log = self.start + self.log_every_s
        while not self.stopping.is_set():
            now = time.time()
            elapsed = now - self.start
            if self.duration and elapsed >= self.duration:
                break
            await self._send_due(now)
            if now >= next_log:
                self._summary(elapsed)
                next_log += self.log_every_s
            wait = self.pacing.wait(self.sent, time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=wait)

    async def _send_due(self, now: float) -> None:
        for _ in range(self.pacing.due(self.sent, now)):
            msg = self.traffic.next_message(now)
            fut = await self.producer.send(
                self.topics[msg.kind], msg.value, key=msg.lead_id.encode()
            )
            fut.add_done_callback(self._delivered)
            self.counts[msg.kind] += 1
            self.counts["invalid" if msg.label in INVALID_KINDS else "valid"] += 1
            self.sent += 1

    def _delivered(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self.counts["failed"] += 1

    async def _stop(self) -> None:
        self._remove_signal_handlers()
        # The follower first: it sends through the producer about to be flushed.
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._follower, FOLLOW_STOP_S)
        # Bounded: with the broker gone, neither would ever finish.
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(self.producer.flush(), STOP_GRACE_S)
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(self.producer.stop(), STOP_GRACE_S)
        self._summary(time.time() - self.start, final=True)

    def _summary(self, elapsed: float, *, final: bool = False) -> None:
        counts = self.counts
        rate = self.sent / elapsed if elapsed > 0 else 0.0
        print(
            f"leadstream demo: {'done, ' if final else ''}sent {self.sent} ({rate:.1f}/s): "
            f"web {counts['web']}, email {counts['email']}, webinar {counts['webinar']}, "
            f"profile {counts['profile']}; invalid {counts['invalid']}, "
            f"failed {counts['failed']}; outcomes {counts['outcome']}",
            file=self.out,
            flush=True,
        )


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
