"""Lead states in Faust's table, read and written without its per-key machinery.

``table[key] = value`` costs more than scoring an event: the stream-context lookup,
two serializer registry calls, the store's key index, a changelog FutureMessage that
goes through the producer buffer, and a RocksDB put of the persisted offset when each
record is acknowledged. :class:`LeadStore` does what those writes amount to, per
slice of a window: one changelog record per lead in a record batch of the app's
aiokafka producer and, once delivered, a put into the partition's store and one
persisted-offset update per partition. The data, the changelog and the offsets are the
table's own, so Faust's recovery, standby handling and ``table.get`` see the same
thing they would have written themselves.

Faust's own exactly-once mode is not used (it persists offsets on commit, per
partition producer); leadstream's (:mod:`streams.faust_adapter.transactions`) sends
the changelog records in the window's transaction and, once it commits, stores them
here with :meth:`LeadStore.put` and :meth:`LeadStore.persist_offset`; recovery under
read_committed writes what it reads with :meth:`LeadStore.apply_changelog`. A failed
changelog delivery stops the worker (see :mod:`streams.faust_adapter.emitter`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from faust.types import TP
from rocksdict import WriteBatch

from streams.core.contract import right_sized
from streams.faust_adapter.emitter import Emitter
from streams.faust_adapter.preload import _apply


class LeadStore:
    def __init__(self, app: Any, table: Any, emitter: Emitter) -> None:
        self.app = app
        self.table = table
        self.emitter = emitter
        self.changelog = table.changelog_topic.get_topic_name()

    @property
    def _rocksdb(self) -> bool:
        return hasattr(self.table.data, "_db_for_partition")

    def _db(self, partition: int) -> Any:
        store = self.table.data
        # rocksdb:// keeps one database per partition; memory:// one dict.
        return store._db_for_partition(partition) if self._rocksdb else store.data

    def get(self, key: bytes, partition: int) -> bytes | None:
        value: bytes | None = self._db(partition).get(key)
        return value

    def put(self, writes: Iterable[tuple[bytes, int, bytes]]) -> int:
        """Store each ``(key, partition, value)`` in the partition's store.

        RocksDB gets one write batch per partition: a put each would append to the
        write-ahead log (a syscall) per state.
        """
        batches: dict[int, Any] = {}
        n = 0
        # memory:// keeps the values themselves (RocksDB copies them anyway).
        trim = not self._rocksdb
        for key, partition, value in writes:
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self._new_batch(partition)
            batch[key] = right_sized(value) if trim else value
            n += 1
        for partition, batch in batches.items():
            self._commit_batch(partition, batch)
        return n

    def _new_batch(self, partition: int) -> Any:
        if self._rocksdb:
            return WriteBatch(raw_mode=True)  # Faust opens its databases in raw mode
        return {}

    def _commit_batch(self, partition: int, batch: Any) -> None:
        db = self._db(partition)
        if self._rocksdb:
            db.write(batch)
        else:
            db.update(batch)

    async def publish(self, writes: list[tuple[bytes, int, bytes]]) -> None:
        """Send the writes to the changelog, one record batch per partition (another
        when one fills): per-record ``send`` calls cost several times the append.
        Once every batch is delivered, store the writes locally and persist each
        partition's changelog offset: the local store is never ahead of the
        changelog (see :mod:`streams.core.window`)."""
        producer = self.emitter.producer
        topic = self.changelog
        batches: dict[int, Any] = {}
        sent: list[tuple[int, Any, asyncio.Future[Any]]] = []
        for key, partition, value in writes:
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value) is None:  # full
                # Waits until the partition's previous batch is on its way.
                delivery = await producer.send_batch(batch, topic, partition=partition)
                sent.append((partition, batch, delivery))
                batch = batches[partition] = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=value) is None:
                    raise ValueError("a lead state is larger than the producer's batch size")
        for partition, batch in batches.items():
            delivery = await producer.send_batch(batch, topic, partition=partition)
            sent.append((partition, batch, delivery))
        last_offsets: dict[int, int] = {}
        for partition, batch, delivery in sent:
            try:
                metadata = await delivery
            except Exception:
                self.emitter.check_delivered(delivery)  # stops the worker
                raise
            # Faust persists a record's own offset; the metadata has the batch's base.
            last_offsets[partition] = metadata.offset + batch.record_count() - 1
        self.put(writes)
        for partition, last_offset in last_offsets.items():
            self.table.data.set_persisted_offset(TP(self.changelog, partition), last_offset)

    def persist_offset(self, partition: int, offset: int) -> None:
        """Record that the partition's store holds the changelog through ``offset``."""
        self.table.data.set_persisted_offset(TP(self.changelog, partition), offset)

    def apply_changelog(self, partition: int, records: Sequence[Any]) -> int:
        """Write changelog ``records`` (one partition, offset order) as Faust's recovery
        would, with the last one's offset persisted; returns the deletions."""
        if self._rocksdb:
            # The preload's write: data and offset in one batch, Faust's raw format.
            deleted: int = _apply(self._db(partition), records, self.table.data.offset_key)
            return deleted
        data, deleted = self._db(partition), 0
        for record in records:
            if record.key is None:
                continue
            if record.value is None:
                deleted += data.pop(record.key, None) is not None
            else:
                data[record.key] = record.value
        return deleted
