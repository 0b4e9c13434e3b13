"""``leadstream worker``: checks the configuration, prepares topics, runs Faust.

Failing before Faust starts gives users one clear line instead of a traceback from
inside a rebalance: a broken scoring model, an unreachable broker, or input topics
whose partition counts differ from ``LEADSTREAM_PARTITIONS`` (a lead's events,
state and timers must share a partition number).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from scoring import ModelError
from streams.build import scoring_build
from streams.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger("leadstream")

#: Allocations between young-generation collections (CPython's default is 700).
GC_GEN0_THRESHOLD = 20_000
#: How often survivors are frozen out of collections, and how often everything is
#: thawed and fully collected (see tune_gc). Freezing is O(1); often enough, a live
#: worker's young generation never reaches its threshold.
GC_FREEZE_INTERVAL_S = 0.1
GC_FULL_INTERVAL_S = 900.0

LOG_LEVEL_NUMBERS = {
    "crit": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


class TopicLayoutError(RuntimeError):
    pass


async def check_partitions(settings: Settings, wait_s: float = 30.0) -> None:
    """Raise TopicLayoutError unless every topic has ``settings.partitions`` partitions."""
    from streams.app import all_topics

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=int(wait_s * 1000)
    )
    await asyncio.wait_for(consumer.start(), wait_s)
    try:
        wrong = []
        for topic in all_topics(settings):
            parts = consumer.partitions_for_topic(topic)
            if parts is None:
                await consumer._client.force_metadata_update()  # fresh after creation
                parts = consumer.partitions_for_topic(topic)
            if parts is not None and len(parts) != settings.partitions:
                wrong.append(f"{topic} has {len(parts)}")
        if wrong:
            raise TopicLayoutError(
                f"partition counts differ from LEADSTREAM_PARTITIONS={settings.partitions}: "
                + ", ".join(wrong)
                + ". Set LEADSTREAM_PARTITIONS to match, or repartition the topics."
            )
    finally:
        await consumer.stop()


def prepare(settings: Settings) -> None:
    from streams.app import all_topics
    from streams.localkafka import ensure_topics

    ensure_topics(settings.bootstrap_servers, all_topics(settings), timeout=60.0)
    asyncio.run(check_partitions(settings))


def preload(table: Any, settings: Settings) -> None:
    """Bulk-copy the table's changelog before Faust's one-record-at-a-time recovery."""
    from streams.bulkload import PreloadError, preload_changelog

    try:
        stats = preload_changelog(table, settings.bootstrap_servers)
    except PreloadError as exc:
        # Nothing is lost: what was copied is consistent and Faust replays the rest.
        log.warning("leadstream: changelog preload stopped (%s); Faust replays the rest", exc)
        return
    if stats.records or stats.tombstones:
        log.info(
            "leadstream: preloaded %d changelog records of %d partitions in %.1fs",
            stats.records + stats.tombstones,
            stats.partitions,
            stats.seconds,
        )


def observe_gc(metrics: Metrics) -> None:
    """Time every collection into ``leadstream_gc_pause_seconds``."""
    started = [0.0]
    pause = {str(g): metrics.gc_pause.labels(str(g)) for g in range(3)}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pause[str(info["generation"])].observe(time.perf_counter() - started[0])

    gc.callbacks.append(on_gc)


def _exit_after(seconds: float) -> None:
    """Hard-exit if a graceful stop has not finished within ``seconds``."""

    def expire() -> None:
        time.sleep(seconds)
        log.error("leadstream: still stopping after %.0fs; exiting now", seconds)
        logging.shutdown()
        os._exit(1)

    threading.Thread(target=expire, name="leadstream-stop-watchdog", daemon=True).start()


def _worker_with_deadline(faust_worker: type, stop_timeout_s: float) -> type:
    class Worker(faust_worker):
        """Faust's worker with a deadline on graceful stops.

        With the broker gone, Faust's stop waits on tasks that retry the broker
        forever ("Gathering all futures..."), and a worker that ignores SIGTERM holds
        its RocksDB lock and its CPU. Nothing is lost by exiting: what was not
        committed is read again by the next owner.
        """

        def _on_sigint(self) -> None:
            _exit_after(stop_timeout_s)
            super()._on_sigint()

        def _on_sigterm(self) -> None:
            _exit_after(stop_timeout_s)
            super()._on_sigterm()

    return Worker


def tune_gc(app: Any) -> None:
    """Keep Python's cyclic GC from pausing the worker.

    A worker holds millions of long-lived objects (every cached lead state is a few
    hundred) and allocates short-lived ones per event. With CPython's defaults the
    collector ran every 700 allocations and its older-generation passes walked the
    state cache: a tenth of the worker's time, and pauses of 0.3-0.6 s whenever the
    middle or oldest generation came due. So: young collections every
    ``GC_GEN0_THRESHOLD`` allocations, and every ``GC_FREEZE_INTERVAL_S`` what
    survived is frozen (``gc.freeze``: moved out of the generations the collector
    walks; refcounting still frees it). A young collection walks what the young
    objects point to, scattered over the state cache: 10-20 ms each at 21k events/s,
    1.5 a second, while finding almost no garbage (362 objects over a whole bench
    run). Freezing every 0.1 s keeps the young generation under the threshold at
    live rates, so those pauses mostly stop; a backlog still triggers them. Lead
    states hold no reference cycles; cyclic garbage frozen while still alive would
    stay, so every ``GC_FULL_INTERVAL_S`` everything is thawed and collected once.
    """
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 10, 10)
    ticks_per_full = max(1, round(GC_FULL_INTERVAL_S / GC_FREEZE_INTERVAL_S))
    ticks = 0

    @app.timer(interval=GC_FREEZE_INTERVAL_S)
    async def freeze_survivors() -> None:
        nonlocal ticks
        ticks += 1
        if ticks % ticks_per_full == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()


def event_loop_policy(name: str) -> asyncio.AbstractEventLoopPolicy:
    """The policy of ``LEADSTREAM_EVENT_LOOP`` (``uvloop`` or ``asyncio``); ImportError
    if uvloop is asked for and not installed."""
    if name == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


def run_worker(settings: Settings) -> int:
    import faust

    from streams.app import create_app, load_scoring_model

    level = LOG_LEVEL_NUMBERS[settings.log_level]
    logging.basicConfig(
        level=level,
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
    )
    try:
        policy = event_loop_policy(settings.event_loop)
    except ImportError:
        print(
            "leadstream: cannot start: uvloop is not installed "
            "(pip install uvloop, or LEADSTREAM_EVENT_LOOP=asyncio)",
            file=sys.stderr,
        )
        return 2
    # Before any loop exists: Faust and mode take theirs from the policy.
    asyncio.set_event_loop_policy(policy)
    build = scoring_build()
    stale = build.stale_error()
    if stale is not None:
        print(f"leadstream: cannot start: {stale}", file=sys.stderr)
        return 2
    try:
        model = load_scoring_model(settings)
    except ModelError as exc:
        print(f"leadstream: invalid scoring model:\n{exc}", file=sys.stderr)
        return 2
    try:
        prepare(settings)
    except (TopicLayoutError, OSError, TimeoutError) as exc:
        print(f"leadstream: cannot start: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # aiokafka raises its own hierarchy for unreachable brokers
        print(
            f"leadstream: cannot reach Kafka at {settings.bootstrap_servers}: {exc!r}",
            file=sys.stderr,
        )
        return 2
    ls = create_app(settings, model=model)
    if settings.preload_changelog:
        preload(ls.table, settings)
    tune_gc(ls.app)
    observe_gc(ls.metrics)
    log.info(
        "leadstream: consuming %s with model %s v%s, scoring %s, event loop %s",
        ", ".join(settings.input_topics),
        model.id,
        model.version,
        build.kind,
        # The policy's package, not the setting: what the loop really is.
        type(asyncio.get_event_loop_policy()).__module__.partition(".")[0],
    )
    # The same numeric level for our logging and mode's: the bench saw the root
    # logger at DEBUG with the name "warn", and log records cost hot-path CPU.
    worker_class = _worker_with_deadline(faust.Worker, settings.stop_timeout_s)
    worker = worker_class(ls.app, loglevel=level, quiet=True)
    worker.execute_from_commandline()  # handles SIGINT/SIGTERM: graceful stop, then exit
    return 0
