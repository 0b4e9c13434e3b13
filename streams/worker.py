"""``leadstream worker``: checks the configuration, prepares topics, runs the worker.

Failing before Faust starts gives users one clear line instead of a traceback from
inside a rebalance: a broken scoring model, an unreachable broker, or input topics
whose partition counts differ from ``LEADSTREAM_PARTITIONS`` (a lead's events,
state and timers must share a partition number), or a faust, mode or aiokafka whose
internals changed (``streams.faust_adapter.compat``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from typing import Any

from scoring import ModelError
from streams.build import scoring_build
from streams.kafkasecurity import security_of
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import TopicError, prepare_topics

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


def preload(table: Any, settings: Settings) -> None:
    """Bulk-copy the table's changelog before Faust's one-record-at-a-time recovery."""
    from streams.faust_adapter.preload import PreloadError, preload_changelog

    try:
        stats = preload_changelog(
            table,
            settings.bootstrap_servers,
            security=security_of(settings),
            read_committed=settings.exactly_once,
        )
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


def fence_predecessor(settings: Settings) -> str | None:
    """Exactly-once: fence the worker's predecessor before anything reads the
    changelog (its open transaction would hold read_committed readers until it timed
    out); the reason it failed, or None."""
    from streams.faust_adapter.transactions import fence

    try:
        fence(settings)
    except Exception as exc:  # aiokafka's errors, the timeout
        return f"cannot fence the previous worker's transactions: {exc!r}"
    return None


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
    """``leadstream worker``: 0 after a graceful stop, 2 when it cannot start."""
    level = LOG_LEVEL_NUMBERS[settings.log_level]
    logging.basicConfig(level=level, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    try:
        # Before any loop exists: Faust and mode take theirs from the policy.
        asyncio.set_event_loop_policy(event_loop_policy(settings.event_loop))
    except ImportError:
        return _cannot_start(
            "uvloop is not installed (pip install uvloop, or LEADSTREAM_EVENT_LOOP=asyncio)"
        )
    build = scoring_build()
    stale = build.stale_error()
    if stale is not None:
        return _cannot_start(stale)
    from streams.faust_adapter import compat

    try:
        compat.check_installed()
    except compat.CompatError as exc:
        return _cannot_start(str(exc))
    from streams.faust_adapter.app import create_app, load_scoring_model

    try:
        model = load_scoring_model(settings)
    except ModelError as exc:
        print(f"leadstream: invalid scoring model:\n{exc}", file=sys.stderr)
        return 2
    from streams.faust_adapter.kafka_meta import BrokerAccessError

    log.info(
        "leadstream: connecting to Kafka at %s over %s",
        settings.bootstrap_servers,
        security_of(settings).describe(),
    )
    try:
        prepare_topics(settings)
    except (BrokerAccessError, TopicError, OSError, TimeoutError) as exc:
        return _cannot_start(str(exc))
    except Exception as exc:  # aiokafka raises its own hierarchy for unreachable brokers
        return _cannot_start(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc!r}")
    ls = create_app(settings, model=model)
    if settings.exactly_once and (failed := fence_predecessor(settings)) is not None:
        return _cannot_start(failed)
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
    from streams.faust_adapter import runner

    runner.run(ls, loglevel=level)
    return 0


def _cannot_start(reason: str) -> int:
    print(f"leadstream: cannot start: {reason}", file=sys.stderr)
    return 2
