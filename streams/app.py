"""The Faust app: topics, the lead table, the scoring agent and the decay timer.

Everything here only moves data: Kafka records go through :class:`streams.pipeline.
Pipeline` (which calls ``scoring``), and what comes back is produced or written to
the table. One agent consumes all four input topics plus two internal ones:

- ``<app_id>-events-repartition``: inputs that arrived in another partition than
  their lead's (keyed otherwise), re-sent keyed by ``lead_id``;
- ``<app_id>-decay-ticks``: one record per lead whose stage changes by decay alone,
  produced by the timer into the lead's own partition, so the state change happens
  inside stream iteration (Faust allows table writes only there) and in order with
  the lead's events.

All topics have ``settings.partitions`` partitions; the table's changelog too.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.streams import _current_event  # the context Faust's tables read

from scoring import LeadState, ScoringModel, load_default_model, load_model, next_change_at
from streams import fastpath
from streams.metrics import Metrics
from streams.partitioning import Partitioner
from streams.pipeline import (
    KIND_HEADER,
    TICK_KIND,
    Message,
    Pipeline,
    decode_state,
    encode_state,
)
from streams.schedule import DecaySchedule
from streams.settings import Settings

log = logging.getLogger("leadstream")

#: Decoded states kept in memory in front of the table (hot leads skip a decode).
STATE_CACHE_LIMIT = 200_000
#: How often consumer lag and the lead gauge are refreshed.
LAG_INTERVAL_S = 5.0
#: Messages Faust's producer buffer may hold before the conductor stops delivering
#: events until it drains. Faust's default (100) is below one batch's table writes
#: (one changelog record per touched lead), so every batch stalled the stream while
#: the buffer was flushed one record per loop iteration ("producer buffer full").
PRODUCER_BUFFER_MAX = 50_000
#: Changelog records applied to RocksDB per write batch during recovery.
RECOVERY_BUFFER_SIZE = 10_000


def internal_topics(settings: Settings) -> tuple[str, str]:
    """Names of the repartition and tick topics."""
    return (f"{settings.app_id}-events-repartition", f"{settings.app_id}-decay-ticks")


def all_topics(settings: Settings) -> dict[str, int]:
    """Every topic the worker reads or writes (Faust creates its changelog itself)."""
    names = [*settings.input_topics, *internal_topics(settings)]
    names += [settings.topic_qualified, settings.topic_dlq]
    return dict.fromkeys(names, settings.partitions)


def load_scoring_model(settings: Settings) -> ScoringModel:
    return load_model(settings.model_path) if settings.model_path else load_default_model()


@dataclass
class Leadstream:
    """The assembled worker: the Faust app plus the pieces tests and views reach."""

    app: faust.App
    settings: Settings
    model: ScoringModel
    metrics: Metrics
    pipeline: Pipeline
    table: Any
    schedule: DecaySchedule
    cache: dict[str, LeadState]
    ready: bool = False


def create_app(
    settings: Settings,
    *,
    model: ScoringModel | None = None,
    metrics: Metrics | None = None,
) -> Leadstream:
    model = model if model is not None else load_scoring_model(settings)
    metrics = metrics if metrics is not None else Metrics.create()
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store=settings.store,
        datadir=settings.data_dir,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.partitions,
        key_serializer="raw",
        value_serializer="raw",
        # A new group starts at the beginning: events produced before the first
        # worker came up are still scored.
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        table_standby_replicas=0,
        producer_linger=0.002,
        broker_max_poll_records=5000,
        stream_buffer_maxsize=20000,
        # Per partition per fetch: 4 MiB keeps a backlog (and a recovering changelog
        # of ~2 KB states) streaming in large fetches.
        consumer_max_fetch_size=4 * 1024 * 1024,
        producer_max_batch_size=1024 * 1024,
        producer_max_request_size=8 * 1024 * 1024,
        # /table would list every lead's profile: personal data stays private.
        web_tables_enabled=False,
    )
    repartition_name, tick_name = internal_topics(settings)
    kinds = {
        settings.topic_web: "web",
        settings.topic_email: "email",
        settings.topic_webinar: "webinar",
        settings.topic_profiles: "profile",
        tick_name: TICK_KIND,
    }
    source = app.topic(
        *settings.input_topics,
        repartition_name,
        tick_name,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    repartition_topic = app.topic(repartition_name, partitions=settings.partitions, internal=True)
    tick_topic = app.topic(tick_name, partitions=settings.partitions, internal=True)
    qualified_topic = app.topic(settings.topic_qualified)
    dlq_topic = app.topic(settings.topic_dlq)
    table = app.Table(
        "leads",
        partitions=settings.partitions,
        # bytes -> Faust's raw codec: keys hash like producers' (murmur2 of the
        # lead id) and values stay our orjson bytes.
        key_type=bytes,
        value_type=bytes,
        help="Per-lead scoring state (orjson of scoring.LeadState.to_dict()).",
        recovery_buffer_size=RECOVERY_BUFFER_SIZE,
    )
    app.producer.buffer.max_messages = PRODUCER_BUFFER_MAX
    partitioner = Partitioner(settings.partitions)
    pipeline = Pipeline(
        model=model,
        metrics=metrics,
        partitioner=partitioner,
        max_future_skew_s=settings.max_future_skew_s,
    )
    schedule = DecaySchedule()
    cache: dict[str, LeadState] = {}
    ls = Leadstream(app, settings, model, metrics, pipeline, table, schedule, cache)

    def enter(event: Any) -> None:
        # Table reads/writes take their partition from the current event.
        _current_event.set(weakref.ref(event))

    def handle_batch(events: Sequence[Any]) -> None:
        started = time.perf_counter()
        messages = []
        for event in events:
            m = event.message
            kind = kinds.get(m.topic)
            if kind is None:
                kind = _header(m.headers, KIND_HEADER) or "unknown"
            messages.append(Message(m.topic, m.partition, m.offset, m.key, m.value, kind))

        def load(lead_id: str, index: int) -> LeadState | None:
            state = cache.get(lead_id)
            if state is not None:
                return state
            enter(events[index])
            raw = table.get(lead_id)
            if raw is None:
                metrics.leads.inc()  # first event of a lead this worker owns
                return None
            return decode_state(raw)

        result = pipeline.process(messages, now=time.time(), load=load)
        for key, value in result.qualified:
            qualified_topic.send_soon(key=key, value=value)
        for dkey, value, headers in result.dead:
            dlq_topic.send_soon(key=dkey, value=value, headers=headers)
        for key, value, headers in result.reroute:
            repartition_topic.send_soon(key=key, value=value, headers=headers)
        if len(cache) + len(result.touched) > STATE_CACHE_LIMIT:
            cache.clear()
        for lead_id, (state, _partition, index) in result.touched.items():
            enter(events[index])
            table[lead_id] = encode_state(state)
            cache[lead_id] = state
        for partition, lead_id, due in result.schedule:
            schedule.set(partition, lead_id, due)
        metrics.batch_size.observe(len(events))
        metrics.batch_duration.observe(time.perf_counter() - started)

    batch_size = settings.batch_size
    linger = settings.batch_linger_s

    @app.agent(source, name="leadstream.score")
    async def score(stream: Any) -> None:
        # Batches come straight off the channel's queue, where Faust's conductor puts
        # each decoded event: iterating the stream (``take_events``) added Faust's
        # per-event stream machinery (processors, sensors, a loop round trip each) on
        # top of the conductor's. Same events, same order; each event is acked after
        # its batch is handled, as ``take_events`` did, so offsets commit the same.
        # What remains per event is Faust's consumer (a ``wait_first`` task pair per
        # message in ``Consumer._drain_messages``) and, per touched lead, the table
        # write (RocksDB put + changelog record + persisted-offset put).
        fastpath.install(app.consumer)
        channel = aiter(stream.channel)  # registers the subscription, as streams do
        queue = channel.queue
        get, get_nowait, qsize = queue.get, queue.get_nowait, queue.qsize
        loop = asyncio.get_running_loop()
        while True:
            events = [await get()]
            deadline = loop.time() + linger
            while True:
                room = min(batch_size - len(events), qsize())
                events.extend([get_nowait() for _ in range(room)])
                if len(events) >= batch_size:
                    break
                left = deadline - loop.time()
                if left <= 0:
                    break
                # More may be on the way: give the conductor a slice of the linger.
                await asyncio.sleep(min(left, 0.001))
            handle_batch(events)
            for event in events:
                event.ack()

    @table.on_recover
    async def rebuild_schedule() -> None:
        """After each rebalance: drop cached states, re-index owned leads' timers."""
        cache.clear()
        owned = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == table.changelog_topic.get_topic_name()
        }
        schedule.drop_partitions_except(owned)
        for partition in owned:
            schedule.reset(partition)
        leads = 0
        for key, raw in table.items():
            lead_id = key.decode() if isinstance(key, bytes) else str(key)
            partition = partitioner.partition_of(lead_id)
            if partition in owned:
                leads += 1
                schedule.set(partition, lead_id, next_change_at(decode_state(raw), model))
        metrics.leads.set(leads)
        metrics.scheduled.set(len(schedule))
        ls.ready = True
        log.info("leadstream: %d leads recovered, %d decay timers", leads, len(schedule))

    @app.timer(interval=settings.tick_interval_s)
    async def fire_decay_ticks() -> None:
        now = time.time()
        for partition in schedule.partitions():
            for lead_id in schedule.pop_due(partition, now):
                await tick_topic.send(
                    key=lead_id.encode(), value=b"%.3f" % now, partition=partition
                )

    @app.timer(interval=LAG_INTERVAL_S)
    async def refresh_gauges() -> None:
        metrics.scheduled.set(len(schedule))
        consumer = app.consumer
        committed = consumer._committed_offset  # type: ignore[attr-defined]  # no public accessor
        inputs = set(settings.input_topics)
        for tp in consumer.assignment():
            if tp.topic in inputs:
                high = consumer.highwater(tp)
                done = committed.get(tp)
                if high is not None:
                    lag = high - (done + 1 if done is not None else 0)
                    metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, lag))

    from streams.web import register_views

    register_views(ls)
    return ls


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None
