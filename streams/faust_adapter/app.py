"""The Faust app around the scoring loop: topics, the lead table, the agent, timers.

Faust provides group membership, partition assignment, the ``leads`` table (RocksDB
plus its changelog topic), recovery, commits and the web server. Everything the
worker does with records is :class:`streams.core.loop.ScoringLoop`; this module only
wires it to Faust's parts:

- the agent's body is ``ScoringLoop.run``, fed by :class:`~streams.faust_adapter.
  intake.Intake` (the loop's batch source) over the four input topics plus two
  internal ones: ``<app_id>-events-repartition`` (inputs that reached the wrong
  partition, re-sent keyed by lead) and ``<app_id>-decay-ticks``;
- states go through :class:`~streams.faust_adapter.leadstore.LeadStore` (the table's
  own store and changelog), everything else through :class:`~streams.faust_adapter.
  emitter.Emitter` (the app's producer); under exactly-once, a window's states and
  outputs go through :class:`~streams.faust_adapter.transactions.WindowTransactions`
  (a transactional producer of its own), the consumer reads ``read_committed`` and
  table recovery ends by position (:mod:`streams.faust_adapter.recovery`);
- a graceful stop and each rebalance write the loop's windows first; each recovery
  rebuilds its decay schedule; a timer fires its decay ticks.

All topics have ``settings.partitions`` partitions; the table's changelog too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types.auth import CredentialsT

from scoring import ScoringModel, load_default_model, load_model
from streams.core.loop import LoopTopics, ScoringLoop
from streams.faust_adapter import groupfencing
from streams.faust_adapter.emitter import Emitter
from streams.faust_adapter.inloop import InLoopTransport
from streams.faust_adapter.intake import Intake
from streams.faust_adapter.leadstore import LeadStore
from streams.faust_adapter.recovery import install as install_recovery
from streams.faust_adapter.transactions import WindowTransactions
from streams.http.views import register_views
from streams.kafkasecurity import KafkaSecurity, security_of
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger("leadstream")

#: How often consumer lag and the lead gauge are refreshed.
LAG_INTERVAL_S = 5.0
#: A fetch returns once it holds this much, or after the fetch wait setting (see
#: streams.faust_adapter.intake): full fetches at high rates, a bounded wait at low ones.
FETCH_MIN_BYTES = 64 * 1024
#: How long the producer gathers a batch (Faust's setting, seconds).
PRODUCER_LINGER_S = 0.002
#: Changelog records applied to RocksDB per write batch during recovery.
RECOVERY_BUFFER_SIZE = 10_000
#: Memtables per partition's RocksDB (see Settings.rocksdb_write_buffer_mib).
ROCKSDB_WRITE_BUFFERS = 3


def load_scoring_model(settings: Settings) -> ScoringModel:
    return load_model(settings.model_path) if settings.model_path else load_default_model()


def exit_after(seconds: float) -> None:
    """Hard-exit (code 1) if the process is still running in ``seconds``: a stop's
    deadline. With the broker gone, Faust's stop waits on tasks that retry it forever
    ("Gathering all futures..."), and a worker that never exits holds its RocksDB
    lock, its CPU and, still answering /ready, its place in the group. Nothing is
    lost by exiting: what was not committed is read again by the next owner."""

    def expire() -> None:
        time.sleep(seconds)
        log.error("leadstream: still stopping after %.0fs; exiting now", seconds)
        logging.shutdown()
        os._exit(1)

    threading.Thread(target=expire, name="leadstream-stop-watchdog", daemon=True).start()


class App(faust.App):
    """Faust's app, with hooks that run first when it stops, and a deadline on the
    stop that follows a crash (a signal's stop has one from the runner).

    Faust's own stop closes the tables, then stops the agents, then commits; work an
    agent holds back (leadstream's state windows) must be written and acked before
    that. A hook that fails or overruns is logged and the stop goes on.
    """

    #: (name, hook, timeout in seconds), run in order
    stop_hooks: Sequence[tuple[str, Callable[[], Awaitable[None]], float]] = ()
    #: How long a stop may take (``LEADSTREAM_STOP_TIMEOUT_SECONDS``).
    stop_timeout_s: float = 30.0
    #: Starts a stop's deadline (tests record it instead of exiting).
    deadline: Callable[[float], None] = staticmethod(exit_after)

    async def crash(self, reason: BaseException) -> None:
        # A crash stops the worker as a signal does, and can hang the same way (seen
        # in bench.chaos: stuck stopping the consumer thread, still in the group).
        if not self.crashed:
            self.deadline(self.stop_timeout_s)
        await super().crash(reason)

    async def on_stop(self) -> None:
        for name, hook, timeout_s in self.stop_hooks:
            try:
                await asyncio.wait_for(hook(), timeout_s)
            except Exception as exc:  # the stop must go on: at worst events are re-read
                log.warning("leadstream: %s failed while stopping: %r", name, exc)
        await super().on_stop()


@dataclass
class Leadstream:
    """The assembled worker: the Faust app, its table and the scoring loop."""

    app: App
    settings: Settings
    model: ScoringModel
    metrics: Metrics
    table: Any
    loop: ScoringLoop


def create_app(
    settings: Settings,
    *,
    model: ScoringModel | None = None,
    metrics: Metrics | None = None,
) -> Leadstream:
    """Build the Faust app and wire a :class:`ScoringLoop` into it (nothing runs yet)."""
    model = model if model is not None else load_scoring_model(settings)
    metrics = metrics if metrics is not None else Metrics.create()
    app = faust_app(settings)
    topics = LoopTopics.of(settings)
    source = app.topic(
        *topics.sources,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    table = lead_table(app, settings)
    if settings.consumer_in_loop:
        # Before the first use of app.consumer, which the transport creates.
        app.transport = InLoopTransport(app.conf.broker_consumer, app)
    intake = Intake(app, topics.sources)
    intake.install(
        fetch_min_bytes=FETCH_MIN_BYTES,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        exactly_once=settings.exactly_once,
    )
    emitter = Emitter(app)
    store = LeadStore(app, table, emitter)
    transactions = exactly_once(app, store, settings, intake) if settings.exactly_once else None
    loop = ScoringLoop(
        settings=settings,
        model=model,
        metrics=metrics,
        source=intake,
        store=store,
        sender=emitter,
        transactions=transactions,
    )

    @app.agent(source, name="leadstream.score")
    async def score(stream: Any) -> None:
        # Records reach the loop through ``intake`` (whole fetches per partition), not
        # through the stream; iterating the channel once only registers the topics'
        # subscription with Faust, as streams do.
        aiter(stream.channel)
        await loop.run()

    # Both bounded by what writing both windows may take.
    app.stop_timeout_s = settings.stop_timeout_s
    app.stop_hooks = [("writing state windows", loop.stop, settings.stop_timeout_s / 2)]
    if transactions is not None:  # after the windows' last transaction
        app.stop_hooks = [
            *app.stop_hooks,
            ("closing the transactional producer", transactions.stop, settings.stop_timeout_s / 4),
        ]
    intake.before_revoke(loop.revoke, settings.stop_timeout_s / 2)
    table.on_recover(TableRecovery(app, table, loop))
    app.timer(interval=settings.tick_interval_s)(loop.fire_decay_ticks)
    app.timer(interval=LAG_INTERVAL_S)(ConsumerLag(app, settings, loop).refresh)

    ls = Leadstream(app, settings, model, metrics, table, loop)
    register_views(ls)
    return ls


def exactly_once(
    app: App, store: LeadStore, settings: Settings, intake: Intake
) -> WindowTransactions:
    """The windows' transactions, whose offsets the group checks against the member
    (``groupfencing``), and a table recovery that ends by position under
    read_committed (the consumer's isolation is set by ``Intake.install``)."""
    install_recovery(app, store, settings)
    groupfencing.install()
    return WindowTransactions(settings, store, group_id=app.conf.id, member=intake.member)


def broker_credentials(security: KafkaSecurity) -> CredentialsT | None:
    """Faust's ``broker_credentials`` for ``security`` (from ``streams.kafkasecurity``).

    Faust hands these to every client it makes (consumer, producer, topic creation)
    through ``credentials_to_aiokafka_auth``, which turns them into exactly
    ``security.aiokafka_kwargs()``; a wrapper of the same fields, not a second
    translation of the settings.
    """
    if security.sasl:
        return faust.SASLCredentials(
            username=security.username,
            password=security.password,
            mechanism=security.mechanism,
            # With a context the protocol is SASL_SSL, without SASL_PLAINTEXT.
            ssl_context=security.ssl_context,
        )
    if security.ssl_context is not None:
        return faust.SSLCredentials(security.ssl_context)
    return None


def faust_app(settings: Settings) -> App:
    return App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=broker_credentials(security_of(settings)),
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
        # /table would list every lead's profile: personal data stays private;
        # /stats and /graph show internals. /router (the workers' URLs and partitions)
        # stays, behind the API token (streams.http.views): table_route needs it.
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        broker_session_timeout=settings.session_timeout_s,
        consumer_group_instance_id=settings.group_instance_id or None,
    )


def lead_table(app: App, settings: Settings) -> Any:
    return app.Table(
        "leads",
        partitions=settings.partitions,
        # bytes -> Faust's raw codec: keys hash like producers' (murmur2 of the
        # lead id) and values stay the bytes of streams.core.statecodec.
        key_type=bytes,
        value_type=bytes,
        help="Per-lead scoring state (streams.core.statecodec).",
        recovery_buffer_size=RECOVERY_BUFFER_SIZE,
        options={  # RocksDB's, per partition (ignored by memory://)
            "write_buffer_size": settings.rocksdb_write_buffer_mib << 20,
            "max_write_buffer_number": ROCKSDB_WRITE_BUFFERS,
            "block_cache_size": settings.rocksdb_block_cache_mib << 20,
        },
    )


class TableRecovery:
    """Faust's recovery callback: hands the owned partitions' states to the loop."""

    def __init__(self, app: App, table: Any, loop: ScoringLoop) -> None:
        self.app, self.table, self.loop = app, table, loop

    async def __call__(self) -> None:
        changelog = self.table.changelog_topic.get_topic_name()
        owned = {
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == changelog
        }
        await self.loop.recovered(owned, self.table.items())


class ConsumerLag:
    """Refreshes the lag and schedule gauges (Faust exports no consumer lag)."""

    def __init__(self, app: App, settings: Settings, loop: ScoringLoop) -> None:
        self.app, self.loop = app, loop
        self.inputs = frozenset(settings.input_topics)

    async def refresh(self) -> None:
        metrics = self.loop.metrics
        metrics.scheduled.set(len(self.loop.schedule))
        consumer = self.app.consumer
        committed = consumer._committed_offset  # type: ignore[attr-defined]  # no public accessor
        for tp in consumer.assignment():
            if tp.topic in self.inputs:
                high = consumer.highwater(tp)
                done = committed.get(tp)
                if high is not None:
                    lag = high - (done + 1 if done is not None else 0)
                    metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, lag))
