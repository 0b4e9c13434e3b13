"""Faust's table recovery under exactly-once: a catch-up that ends by position.

Faust's recovery (``faust.tables.recovery.Recovery``) counts a changelog partition
as recovered once it has applied the record at ``end offset - 1``. A changelog
written in transactions ends in a commit marker, and after a crash in aborted
records and an abort marker: offsets no consumer is ever given, so that count never
completes (faust-streaming issue #47; 0.15.3 only gives up after two 5 s timeouts,
and only under its own exactly-once mode, which leadstream does not use).

:func:`install` wraps the recovery service's ``_build_highwaters``, which Faust
calls at the start of each recovery, before it decides what is left to replay. For
the table's assigned (active) changelog partitions the wrapper first reads, with a
``read_committed`` consumer of its own, from each partition's persisted offset
until the consumer's *position* reaches the partition's high watermark, writing
what it reads into Faust's own store (:meth:`LeadStore.apply_changelog`) and
persisting ``position - 1``. Waiting for the high watermark, not the stable end,
also waits out a transaction still open on the partition (a killed worker's,
aborted by the broker at its timeout), so no committed record behind it is missed.
Faust then finds nothing left to replay. Everything but the active table partitions
is Faust's as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from streams.faust_adapter.leadstore import LeadStore
from streams.faust_adapter.preload import BATCH_RECORDS, MAX_PARTITION_FETCH_BYTES
from streams.kafkasecurity import security_of
from streams.settings import Settings

log = logging.getLogger("leadstream")

#: Broker wait per fetch: at the end of a partition a fetch returns after this long,
#: and recovery after a restart waits for one such fetch per read.
FETCH_MAX_WAIT_MS = 20
#: Faust gives ``_build_highwaters`` its request timeout (90 s) and, past it, stops
#: its recovery service for good: the catch-up gives up (and fails loudly) before.
MAX_CATCH_UP_S = 75.0
#: Beyond the transaction timeout, how long a killed worker's open transaction may
#: take to be aborted: the broker checks for timed-out ones every 10 s by default.
ABORT_CHECK_S = 30.0


class CatchUpError(RuntimeError):
    """The changelog could not be read to its end in time."""


def install(app: Any, store: LeadStore, settings: Settings) -> None:
    """Make the app's table recovery catch up by position (see the module)."""
    recovery = app.tables.recovery
    original = recovery._build_highwaters
    timeout_s = min(MAX_CATCH_UP_S, settings.transaction_timeout_ms / 1000 + ABORT_CHECK_S)

    async def build_highwaters(consumer: Any, tps: Any, destination: Any, title: str) -> None:
        if title == "active":
            offsets = recovery.active_offsets
            mine = {tp.partition: offsets.get(tp) for tp in tps if tp.topic == store.changelog}
            if mine:
                done = await catch_up(settings, store, mine, timeout_s)
                for partition, offset in done.items():
                    offsets[TP(store.changelog, partition)] = offset
        await original(consumer, tps, destination, title)

    recovery._build_highwaters = build_highwaters


async def catch_up(
    settings: Settings,
    store: LeadStore,
    persisted: Mapping[int, int | None],
    timeout_s: float,
) -> dict[int, int]:
    """Read each partition of ``store``'s changelog after its ``persisted`` offset
    (None: from the start) to its high watermark; return the offsets now persisted."""
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        **security_of(settings).aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        tps = {TopicPartition(store.changelog, p): offset for p, offset in persisted.items()}
        consumer.assign(list(tps))
        for tp, offset in tps.items():
            if offset is None or offset < 0:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset + 1)
        done = await _read_to_highwater(consumer, store.apply_changelog, started + timeout_s)
    finally:
        await consumer.stop()
    for partition, offset in done.items():
        if offset >= 0:  # -1: an empty partition, nothing to record
            store.persist_offset(partition, offset)
    log.info(
        "leadstream: changelog caught up to %s in %.2fs",
        dict(sorted(done.items())),
        time.monotonic() - started,
    )
    return done


async def _read_to_highwater(
    consumer: AIOKafkaConsumer,
    apply: Callable[[int, list[Any]], int],
    deadline: float,
) -> dict[int, int]:
    """Apply what the assigned partitions hold until each position reaches the high
    watermark of a fetch; return ``position - 1`` per partition (-1: empty)."""
    left = set(consumer.assignment())
    done: dict[int, int] = {}
    while left:
        fetched = await consumer.getmany(*left, timeout_ms=100, max_records=BATCH_RECORDS)
        for tp, records in fetched.items():
            for start in range(0, len(records), BATCH_RECORDS):
                apply(tp.partition, records[start : start + BATCH_RECORDS])
        for tp in list(left):
            highwater = consumer.highwater(tp)  # None until a fetch has answered
            position = await consumer.position(tp)
            if highwater is not None and position >= highwater:
                left.discard(tp)
                consumer.pause(tp)
                done[tp.partition] = position - 1
        if left and time.monotonic() > deadline:
            stuck = {tp.partition: consumer.last_stable_offset(tp) for tp in left}
            raise CatchUpError(
                f"changelog partitions {sorted(stuck)} did not reach their end in time "
                f"(stable end {stuck}): a transaction stays open on them"
            )
    return done
