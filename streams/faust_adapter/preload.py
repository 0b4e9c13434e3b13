"""Fast start for a fresh worker: bulk-copy the table changelog before Faust starts.

:func:`preload_changelog` copies ``<app_id>-leads-changelog`` into the RocksDB files
Faust will open for the ``leads`` table, for a worker whose data dir is empty (or
behind). Faust's own recovery then finds each partition's persisted offset at the
end of the changelog and replays nothing, instead of pushing every record one at a
time through its consumer, conductor and recovery buffers.

What :func:`preload_changelog` writes is exactly what Faust's
``faust.stores.rocksdb.Store.apply_changelog_batch`` writes for the same records:
the record's key and value bytes (a ``None`` value deletes the key), in the
per-partition database at ``Store.partition_path(partition)``, opened with the
store's own ``RocksDBOptions.open``, and after each batch the persisted offset
``Store.offset_key`` = ``str(offset).encode()`` of the last record applied, written
in the same ``WriteBatch`` as the data it covers (a crash leaves a store whose offset
matches its contents). Faust's recovery reads that offset, counts ``end offset - 1 -
persisted`` records remaining per partition and, when none remain, skips replay.

Under exactly-once the changelog is read ``read_committed`` and ends, after each
transaction, in a commit marker (and after a crash in aborted records and an abort
marker) that no consumer is ever given: the copy runs until the consumer's position
reaches the end offset and then persists ``position - 1``, the last offset it has
covered, rather than the offset of the last record it received.

Every changelog partition is loaded, not only those this worker will own (it cannot
know before it joins the group). An unowned partition's database is never opened by
Faust (it opens databases only for assigned changelog partitions, and reads and
iterates only those); if the partition is assigned later, Faust's recovery seeks to
its persisted offset and replays what was written since. The cost is disk space and
preload time for the other workers' share.

Example (the worker, after topics exist and before ``faust.Worker`` starts)::

    ls = create_app(settings, model=model)
    stats = preload_changelog(
        ls.table, settings.bootstrap_servers, security=security_of(settings)
    )
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import Rdict, WriteBatch, WriteOptions

from streams.faust_adapter import kafka_meta
from streams.kafkasecurity import PLAINTEXT, KafkaSecurity

__all__ = [
    "ChangelogStore",
    "PreloadError",
    "PreloadStats",
    "changelog_store",
    "preload",
    "preload_changelog",
    "read_offsets",
]

log = logging.getLogger("leadstream.bulkload")

#: Records per RocksDB write batch (each batch also carries its persisted offset).
BATCH_RECORDS = 10_000
#: Records one ``getmany`` may return across partitions.
MAX_RECORDS = 50_000
#: Per partition per fetch (aiokafka's default is 1 MiB). At 1M states of ~2.5 KB on
#: 2 cores, 4 MiB loaded in 10.8-14.3 s, 16 MiB in 13.1-13.5 s: large enough, with a
#: quarter of the fetch buffers.
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024
#: No record and no progress for this long while records remain: the broker is stuck.
IDLE_TIMEOUT_S = 60.0


class PreloadError(RuntimeError):
    """The preload could not finish; what it wrote so far is consistent (see module)."""


@dataclass(frozen=True)
class ChangelogStore:
    """Where and how one table's changelog lands on disk (from Faust's own store)."""

    #: The changelog topic, e.g. ``<app_id>-leads-changelog``.
    topic: str
    #: Partition -> the RocksDB directory Faust opens for it.
    partition_path: Callable[[int], Path]
    #: Opens a partition's database exactly as Faust does (options, raw mode).
    open_db: Callable[[Path], Rdict]
    #: The key Faust keeps its persisted changelog offset under.
    offset_key: bytes = b"__faust\0offset__"
    #: Read only committed records (leadstream's exactly-once mode).
    read_committed: bool = False


@dataclass(frozen=True)
class PreloadStats:
    records: int = 0
    #: Of ``records``: tombstones (keys deleted).
    tombstones: int = 0
    #: Changelog partitions whose store is now at the end read at the start.
    partitions: int = 0
    seconds: float = 0.0
    #: Partition -> persisted offset after the preload (absent: empty partition).
    offsets: Mapping[int, int] = field(default_factory=dict)
    #: Partitions left to Faust: the local store is ahead of the changelog.
    skipped: tuple[int, ...] = ()

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def changelog_store(table: Any, *, read_committed: bool = False) -> ChangelogStore | None:
    """The on-disk layout Faust uses for ``table``; None unless it is rocksdict-backed.

    Builds a throwaway instance of the store class Faust would build for the table
    (same URL, app, name and options) and borrows its ``partition_path`` and
    ``rocksdb_options.open``, so paths and options cannot drift from Faust's.
    """
    from faust import stores
    from faust.stores.rocksdb import Store as RocksDBStore

    # Collection keeps a per-table store URL in ``_store``; ``_new_store`` falls back
    # to the app's ``store`` setting the same way.
    url = getattr(table, "_store", None) or table.app.conf.store
    store_class = stores.by_url(url)
    if not (isinstance(store_class, type) and issubclass(store_class, RocksDBStore)):
        return None
    store = store_class(
        url,
        table.app,
        table,
        table_name=table.name,
        # A copy: the store pops keys from the mapping it is given (Faust aliases
        # ``table.options``), and Faust's own store must still see them.
        options=dict(table.options or {}),
    )
    if not store.use_rocksdict:
        log.warning("preload: table store is not rocksdict-backed; Faust recovers it")
        return None
    return ChangelogStore(
        topic=table.changelog_topic.get_topic_name(),
        partition_path=store.partition_path,
        open_db=store.rocksdb_options.open,
        offset_key=store.offset_key,
        read_committed=read_committed,
    )


def preload_changelog(
    table: Any,
    bootstrap_servers: str,
    *,
    security: KafkaSecurity = PLAINTEXT,
    read_committed: bool = False,
    **options: Any,
) -> PreloadStats:
    """Copy ``table``'s changelog into its RocksDB store before Faust starts.

    A no-op (empty stats) for a ``memory://`` store. Call it from synchronous code
    with no running event loop, before Faust opens the store: RocksDB allows one open
    handle per database. ``security`` and ``options`` go to :func:`preload`;
    ``read_committed`` for a changelog written in transactions (exactly-once).
    """
    store = changelog_store(table, read_committed=read_committed)
    if store is None:
        return PreloadStats()
    # A private loop, closed afterwards, that never becomes the thread's current loop:
    # ``asyncio.run`` would leave "no current loop" behind, and the Faust app built by
    # ``create_app`` is already bound to the current one.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(preload(store, bootstrap_servers, security=security, **options))


async def preload(
    store: ChangelogStore,
    bootstrap_servers: str,
    *,
    security: KafkaSecurity = PLAINTEXT,
    batch_records: int = BATCH_RECORDS,
    max_records: int = MAX_RECORDS,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    connect_timeout_s: float = 30.0,
) -> PreloadStats:
    """Bring every partition's store up to the changelog's end offset read at start.

    Incremental: a partition continues after its persisted offset. Raises
    :class:`PreloadError` (never with keys or values in the message).
    """
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        # Below the log start (retention, deleteRecords): Faust starts at the earliest
        # offset in that case too (``Recovery._build_offsets``).
        auto_offset_reset="earliest",
        isolation_level="read_committed" if store.read_committed else "read_uncommitted",
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        fetch_max_bytes=4 * MAX_PARTITION_FETCH_BYTES,
        request_timeout_ms=int(connect_timeout_s * 1000),
        **security.aiokafka_kwargs(),
    )
    dbs: dict[int, Rdict] = {}
    try:
        try:
            await asyncio.wait_for(consumer.start(), connect_timeout_s)
        except Exception as exc:  # aiokafka has its own error hierarchy
            raise PreloadError(f"cannot reach Kafka at {bootstrap_servers}: {exc!r}") from exc
        try:
            stats = await _preload(consumer, store, dbs, batch_records, max_records, idle_timeout_s)
        except PreloadError:
            raise
        except Exception as exc:
            raise PreloadError(f"preload of {store.topic} failed: {exc!r}") from exc
    finally:
        _close_all(dbs)  # flushes: part of the cost
        await consumer.stop()
    stats = replace(stats, seconds=time.perf_counter() - started)
    log.info(
        "preload: %d changelog records (%d deletions) into %d partitions of %s in %.1fs",
        stats.records,
        stats.tombstones,
        stats.partitions,
        store.topic,
        stats.seconds,
    )
    return stats


async def _preload(
    consumer: AIOKafkaConsumer,
    store: ChangelogStore,
    dbs: dict[int, Rdict],
    batch_records: int,
    max_records: int,
    idle_timeout_s: float,
) -> PreloadStats:
    partitions = await _partitions_of(consumer, store.topic)
    if not partitions:
        # A brand-new app: Faust creates the changelog (compacted) when it starts.
        log.info("preload: %s does not exist yet, nothing to load", store.topic)
        return PreloadStats()
    tps = [TopicPartition(store.topic, p) for p in partitions]
    consumer.assign(tps)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    offsets: dict[int, int] = {}
    skipped: list[int] = []
    pending: list[TopicPartition] = []
    from_start: list[TopicPartition] = []
    for tp in tps:
        db = dbs[tp.partition] = _open(store, tp.partition)
        persisted = _persisted_offset(db, store.offset_key)
        end = ends[tp]
        if persisted is not None:
            offsets[tp.partition] = persisted
        if persisted is not None and persisted >= end:
            # Not this changelog's data (the topic was recreated?); Faust's recovery
            # consistency check reports it, a preload must not mix two histories.
            log.warning(
                "preload: %s[%d] local offset %d is past the changelog end %d; left to Faust",
                store.topic,
                tp.partition,
                persisted,
                end,
            )
            skipped.append(tp.partition)
        elif persisted is None and end > 0:
            from_start.append(tp)
        elif persisted is not None and persisted + 1 < end:
            # Faust's offset is the last record applied: continue after it.
            consumer.seek(tp, persisted + 1)
            pending.append(tp)
    if from_start:
        await consumer.seek_to_beginning(*from_start)
        pending += from_start
    for tp in tps:
        if tp not in pending:
            consumer.pause(tp)
    records, tombstones = await _copy(
        consumer, store, dbs, pending, ends, offsets, batch_records, max_records, idle_timeout_s
    )
    return PreloadStats(
        records=records,
        tombstones=tombstones,
        partitions=len(tps) - len(skipped),
        offsets=dict(offsets),
        skipped=tuple(skipped),
    )


async def _partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    # Only the all-topics metadata the consumer already has (or a forced refresh of it):
    # asking for the topic by name would auto-create it on brokers that allow that,
    # uncompacted and with the broker's partition count.
    return sorted(await kafka_meta.partitions_for(consumer, topic))


async def _copy(
    consumer: AIOKafkaConsumer,
    store: ChangelogStore,
    dbs: Mapping[int, Rdict],
    pending: list[TopicPartition],
    ends: Mapping[TopicPartition, int],
    offsets: dict[int, int],
    batch_records: int,
    max_records: int,
    idle_timeout_s: float,
) -> tuple[int, int]:
    """Fetch and apply until every pending partition's position reaches its end."""
    records = tombstones = 0
    left = set(pending)
    loop = asyncio.get_running_loop()
    idle_since = loop.time()
    while left:
        fetched = await consumer.getmany(*left, timeout_ms=500, max_records=max_records)
        for tp, batch in fetched.items():
            if not batch:
                continue
            db = dbs[tp.partition]
            for start in range(0, len(batch), batch_records):
                chunk = batch[start : start + batch_records]
                tombstones += _apply(db, chunk, store.offset_key)
            records += len(batch)
            offsets[tp.partition] = batch[-1].offset
        done = []
        for tp in list(left):
            position = await consumer.position(tp)
            if position < ends[tp]:
                continue
            done.append(tp)
            left.discard(tp)
            consumer.pause(tp)
            if store.read_committed and position - 1 > offsets.get(tp.partition, -1):
                # Transaction markers (or aborted records) end the partition, and no
                # record carries their offsets: Faust would wait for them forever.
                _persist(dbs[tp.partition], store.offset_key, position - 1)
                offsets[tp.partition] = position - 1
        if fetched or done:
            idle_since = loop.time()
        elif loop.time() - idle_since > idle_timeout_s:
            raise PreloadError(
                f"no changelog records for {idle_timeout_s:.0f}s with "
                f"{len(left)} partition(s) of {store.topic} not at their end offset"
            )
    return records, tombstones


def _apply(db: Rdict, records: Sequence[Any], offset_key: bytes) -> int:
    """Write ``records`` (one partition, offset order) and their offset atomically.

    Same writes as Faust's ``apply_changelog_batch``: key -> value, a None value
    deletes the key, then ``str(offset).encode()`` of the last record applied.
    Returns the number of deletions.
    """
    batch = WriteBatch(raw_mode=True)
    put, delete = batch.put, batch.delete
    deleted = 0
    for record in records:
        key = record.key
        if key is None:
            continue  # no key, no table entry (Faust's table never writes one)
        value = record.value
        if value is None:
            delete(key)
            deleted += 1
        else:
            put(key, value)
    batch.put(offset_key, str(records[-1].offset).encode())
    db.write(batch)
    return deleted


def _persist(db: Rdict, offset_key: bytes, offset: int) -> None:
    batch = WriteBatch(raw_mode=True)
    batch.put(offset_key, str(offset).encode())
    db.write(batch)


def _open(store: ChangelogStore, partition: int) -> Rdict:
    path = store.partition_path(partition)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = store.open_db(path)
    except Exception as exc:  # rocksdict raises plain Exceptions ("IO error: lock ...")
        raise PreloadError(
            f"cannot open table store {path} (is a worker running on this data dir?): {exc}"
        ) from exc
    # Bulk writes skip the write-ahead log; ``_preload`` flushes before closing. A crash
    # in between loses whole unflushed batches (memtables flush in order), so what is on
    # disk is still a prefix of the changelog with its matching offset. The option is
    # this handle's only: Faust reopens with its own defaults.
    options = WriteOptions()
    # A property at runtime (rocksdict 0.3.x); the bundled stub declares a method.
    options.disable_wal = True  # type: ignore[method-assign,assignment]
    db.set_write_options(options)
    return db


def _persisted_offset(db: Rdict, offset_key: bytes) -> int | None:
    raw = db.get(offset_key)
    return None if raw is None else int(raw)


def _close_all(dbs: Mapping[int, Rdict]) -> None:
    for partition, db in dbs.items():
        try:
            # The writes skipped the WAL (see _open): make them durable, also after an
            # error (every batch written is consistent), before Faust opens the files.
            try:
                db.flush()
            finally:
                db.close()
        except Exception:  # closing must not hide the error that got us here
            log.warning("preload: closing the store of partition %d failed", partition)


def read_offsets(store: ChangelogStore, partitions: Iterable[int]) -> dict[int, int | None]:
    """Persisted offset per partition as Faust will read it (for checks and tests)."""
    out: dict[int, int | None] = {}
    for partition in partitions:
        db = store.open_db(store.partition_path(partition))
        try:
            out[partition] = _persisted_offset(db, store.offset_key)
        finally:
            db.close()
    return out
