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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import faust

from scoring import (
    LeadState,
    ScoringModel,
    load_default_model,
    load_model,
    next_change_at,
    next_change_by,
)
from streams.bulkload import next_change_from_raw
from streams.emit import Emitter
from streams.inloop import InLoopTransport
from streams.intake import Batch, Intake
from streams.leadstore import LeadStore
from streams.metrics import Metrics
from streams.partitioning import Partitioner
from streams.pipeline import (
    KIND_HEADER,
    TICK_KIND,
    BatchResult,
    Message,
    Pipeline,
    decode_state,
    encode_state,
)
from streams.schedule import DecaySchedule
from streams.settings import Settings
from streams.window import Write, WriteBehind

log = logging.getLogger("leadstream")

#: How often consumer lag and the lead gauge are refreshed.
LAG_INTERVAL_S = 5.0
#: A fetch returns once it holds this much, or after the fetch wait setting (see
#: streams.intake): full fetches at high rates, a bounded wait at low ones.
FETCH_MIN_BYTES = 64 * 1024
#: How long the producer gathers a batch (Faust's setting, seconds).
PRODUCER_LINGER_S = 0.002
#: Longest stretch of state writing between two batches (see streams.window).
WRITE_SLICE_S = 0.005
#: A closed window's writes are spread over this fraction of the time it was open,
#: finishing before the next one closes (see streams.window).
WRITE_PACE = 0.8
#: Decay changes due within this long of a batch are scheduled as the batch is
#: scored, the rest when the lead's window is written: a window and its paced write
#: may take longer than a crossing is away. Past two windows and their writes, with a
#: minute to spare for windows a loaded worker lets grow (only leads that may cross
#: by then pay for an exact solve; the bound rules out the rest).
DECAY_LOOKAHEAD_S = 60.0
#: Changelog records applied to RocksDB per write batch during recovery.
RECOVERY_BUFFER_SIZE = 10_000
#: Memtables per partition's RocksDB (see Settings.rocksdb_write_buffer_mib).
ROCKSDB_WRITE_BUFFERS = 3


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


class App(faust.App):
    """Faust's app, with hooks that run first when it stops.

    Faust's own stop closes the tables, then stops the agents, then commits; work an
    agent holds back (leadstream's state windows) must be written and acked before
    that. A hook that fails or overruns is logged and the stop goes on.
    """

    #: (name, hook, timeout in seconds), run in order
    stop_hooks: Sequence[tuple[str, Callable[[], Awaitable[None]], float]] = ()

    async def on_stop(self) -> None:
        for name, hook, timeout_s in self.stop_hooks:
            try:
                await asyncio.wait_for(hook(), timeout_s)
            except Exception as exc:  # the stop must go on: at worst events are re-read
                log.warning("leadstream: %s failed while stopping: %r", name, exc)
        await super().on_stop()


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
    app = App(
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
        producer_linger=PRODUCER_LINGER_S,
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
    tick_topic = app.topic(tick_name, partitions=settings.partitions, internal=True)
    qualified_name, dlq_name = settings.topic_qualified, settings.topic_dlq
    table = app.Table(
        "leads",
        partitions=settings.partitions,
        # bytes -> Faust's raw codec: keys hash like producers' (murmur2 of the
        # lead id) and values stay our orjson bytes.
        key_type=bytes,
        value_type=bytes,
        help="Per-lead scoring state (orjson of scoring.LeadState.to_dict()).",
        recovery_buffer_size=RECOVERY_BUFFER_SIZE,
        options={  # RocksDB's, per partition (ignored by memory://)
            "write_buffer_size": settings.rocksdb_write_buffer_mib << 20,
            "max_write_buffer_number": ROCKSDB_WRITE_BUFFERS,
            "block_cache_size": settings.rocksdb_block_cache_mib << 20,
        },
    )
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

    if settings.consumer_in_loop:
        # Before the first use of app.consumer, which the transport creates.
        app.transport = InLoopTransport(app.conf.broker_consumer, app)
    intake = Intake(app, [*settings.input_topics, repartition_name, tick_name])
    intake.install(
        fetch_min_bytes=FETCH_MIN_BYTES,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )
    emitter = Emitter(app)
    store = LeadStore(app, table, emitter)

    decay_lookahead_s = DECAY_LOOKAHEAD_S + 2 * settings.flush_interval_s * (1 + WRITE_PACE)

    def encode(lead_id: str, state: LeadState, partition: int) -> bytes:
        # Rescheduled here, once per lead per window (changes due soon were scheduled
        # as they were scored) -- unless a later batch changed the lead (it is dirty
        # again): this is then the closed window's copy, and the lead's newer state
        # schedules its own.
        if not writer.is_dirty(lead_id):
            schedule.set(partition, lead_id, next_change_at(state, model))
        return encode_state(state)

    def ack(generation: int, last_offsets: Mapping[Any, int]) -> None:
        for tp, last_offset in last_offsets.items():
            intake.ack(tp, generation, last_offset)

    def written(states: int, events: int, seconds: float) -> None:
        metrics.state_writes.inc(states)
        metrics.events_acked.inc(events)
        metrics.flush_duration.observe(seconds)
        if len(cache) > settings.state_cache_leads:
            # Every state outside the open window is written: those may go.
            for lead_id in [k for k in cache if not writer.is_dirty(k)]:
                del cache[lead_id]
        metrics.state_cache.set(len(cache))

    async def publish(writes: list[Write]) -> None:
        try:
            await store.publish(writes)
        except Exception as exc:
            emitter.fail(exc)
            raise

    writer = WriteBehind(
        encode=encode,
        put=store.put,
        publish=publish,
        ack=ack,
        written=written,
        max_events=settings.flush_events,
        max_age_s=settings.flush_interval_s,
        slice_s=WRITE_SLICE_S,
        pace=WRITE_PACE,
    )

    def handle(batches: list[Batch]) -> BatchResult:
        """Score the batches, emit what they cause, leave their states to the writer."""
        started = time.perf_counter()
        # Faust's monitor warns of a stalled stream unless it sees events arrive.
        inbound = app.monitor.stream_inbound_time
        arrived = time.monotonic()
        messages: list[Message] = []
        append = messages.append
        last_offsets = {}
        for batch in batches:
            inbound[batch.tp] = arrived
            topic, partition = batch.tp.topic, batch.tp.partition
            kind = kinds.get(topic)
            for r in batch.records:
                k = kind or _header(r.headers, KIND_HEADER) or "unknown"
                append(Message(topic, partition, r.offset, r.key, r.value, k))
            last_offsets[batch.tp] = batch.records[-1].offset
        claim = writer.claim

        def load(lead_id: str, index: int) -> LeadState | None:
            claim(lead_id)  # the batch is about to change it
            state = cache.get(lead_id)
            if state is not None:
                return state
            raw = store.get(lead_id.encode(), messages[index].partition)
            if raw is None:
                metrics.leads.inc()  # first event of a lead this worker owns
                return None
            return decode_state(raw)

        now = time.time()
        result = pipeline.process(messages, now=now, load=load)
        soon = now + decay_lookahead_s
        for lead_id, (state, partition, _index) in result.touched.items():
            cache[lead_id] = state
            due = next_change_by(state, model, soon)
            if due is not None:
                schedule.set(partition, lead_id, due)
        writer.record(result.touched, last_offsets, len(messages), time.monotonic())
        metrics.batch_size.observe(len(messages))
        metrics.batch_duration.observe(time.perf_counter() - started)
        return result

    async def emit(result: BatchResult) -> None:
        """Hand what a batch caused to the producer."""
        send = emitter.send
        for key, value in result.qualified:
            await send(qualified_name, key, value)
        for dkey, value, headers in result.dead:
            await send(dlq_name, dkey, value, headers)
        for key, value, headers in result.reroute:
            await send(repartition_name, key, value, headers)

    batch_size = settings.batch_size
    linger = settings.batch_linger_s
    queue = intake.queue
    flow = app.flow_control

    async def take() -> list[Batch]:
        """Batches up to ``batch_size`` events; none when the writer has work first."""
        loop = asyncio.get_running_loop()
        if queue.empty():
            wait = writer.seconds_left(time.monotonic())
            if wait is None:
                first = await queue.get()
            elif wait <= 0:
                return []
            else:
                try:
                    first = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    return []
        else:
            first = queue.get_nowait()
        batches = [first]
        n = len(first.records)
        deadline = loop.time() + linger
        while n < batch_size:
            while n < batch_size and not queue.empty():
                batch = queue.get_nowait()
                batches.append(batch)
                n += len(batch.records)
            left = deadline - loop.time()
            if n >= batch_size or left <= 0:
                break
            # More may be on the way: give the fetcher a slice of the linger.
            await asyncio.sleep(min(left, 0.001))
        return batches

    @app.agent(source, name="leadstream.score")
    async def score(stream: Any) -> None:
        # Records reach this agent through ``intake`` (whole fetches per partition),
        # not through the stream; iterating the channel once only registers the
        # topics' subscription with Faust, as streams do.
        aiter(stream.channel)
        while True:
            batches = await take()
            async with scoring_turn:
                if stopping:
                    continue  # written and acked already; the next owner reads these
                await score_batches(batches)
            # Nothing above suspends while batches are queued, so without this the
            # drain task and the consumer thread's replies would wait until the queue
            # is empty, and the next fetch with them: fetch age p99 80-150 ms -> 40-65
            # ms at 15k events/s (bench).
            await asyncio.sleep(0)

    async def score_batches(batches: list[Batch]) -> None:
        if not sync_generation():
            return  # mid-rebalance: not acked, fetched again after it
        generation = writer.open.generation
        batches = [b for b in batches if b.generation == generation]
        if batches:
            await emit(handle(batches))
        if writer.due(time.monotonic()):
            await writer.close()
        await writer.work()

    def sync_generation() -> bool:
        """Drop windows a rebalance made stale; False while one is in progress."""
        generation = intake.generation
        if generation != writer.open.generation:
            discarded = writer.discard(generation)
            if discarded:
                # A rebalance came and writing the windows at its revoke failed or
                # overran: none of it was acked, the partitions' owners read it again.
                metrics.discarded.inc(discarded)
                cache.clear()
        return flow.is_active()

    # Between two batches (never inside one), a graceful stop writes both windows and
    # acks them before Faust commits and closes the table, so a restart or rolling
    # deploy re-reads nothing: with 2 s windows that would be ~4 s of events and
    # their stage changes sent again. A rebalance does the same before the revoked
    # partitions move, so their next owners start where this worker stopped.
    scoring_turn = asyncio.Lock()
    stopping = False

    async def write_windows(before: str) -> None:
        async with scoring_turn:
            if not sync_generation() or not writer.pending_events:
                return
            started = time.perf_counter()
            if writer.open.events:
                await writer.close()
            await writer.finish()
            if writer.publishing is not None:
                await writer.publishing  # the last step acks the window
            log.info(
                "leadstream: wrote the state windows before %s in %.2fs",
                before,
                time.perf_counter() - started,
            )

    async def write_windows_on_stop() -> None:
        nonlocal stopping
        stopping = True  # the agent skips what it takes from now on: see score()
        await write_windows("stopping")

    async def write_windows_on_revoke() -> None:
        await write_windows("the rebalance")

    app.stop_hooks = [("writing state windows", write_windows_on_stop, settings.stop_timeout_s / 2)]
    # The same bound as at a stop: what writing both windows may take.
    intake.before_revoke(write_windows_on_revoke, settings.stop_timeout_s / 2)

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
                schedule.set(partition, lead_id, next_change_from_raw(raw, model))
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
