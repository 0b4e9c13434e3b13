"""Lead states in Faust's table, read and written without its per-key machinery.

``table[key] = value`` costs more than scoring an event: the stream-context lookup,
two serializer registry calls, the store's key index, a changelog FutureMessage that
goes through the producer buffer, and a RocksDB put of the persisted offset when each
record is acknowledged. :class:`LeadStore` does what those writes amount to, per
window: a put into the partition's store, one changelog record per lead in a record
batch of the app's aiokafka producer, and one persisted-offset update per partition
when the window's last batch is acknowledged. The data, the changelog and the offsets are the
table's own, so Faust's recovery, standby handling and ``table.get`` see the same
thing they would have written themselves.

At-least-once only (the app does not enable exactly-once): under transactions Faust
persists offsets on commit instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

from faust.types import TP

log = logging.getLogger("leadstream")


class LeadStore:
    def __init__(self, app: Any, table: Any) -> None:
        self.app = app
        self.table = table
        self.changelog = table.changelog_topic.get_topic_name()
        self._crashing: asyncio.Future[Any] | None = None

    def _db(self, partition: int) -> Any:
        store = self.table.data
        # rocksdb:// keeps one database per partition; memory:// one dict.
        open_partition = getattr(store, "_db_for_partition", None)
        return open_partition(partition) if open_partition is not None else store.data

    def get(self, key: bytes, partition: int) -> bytes | None:
        value: bytes | None = self._db(partition).get(key)
        return value

    async def write(self, writes: Iterable[tuple[bytes, int, bytes]]) -> int:
        """Store each ``(key, partition, value)`` and send it to the changelog.

        Changelog records go out as one record batch per partition (aiokafka's batch
        API; another built when one fills): per-record ``send`` calls cost several
        times the append.
        """
        producer = self.app.producer._ensure_producer()  # the app's AIOKafkaProducer
        topic = self.changelog
        dbs: dict[int, Any] = {}
        batches: dict[int, Any] = {}
        last: dict[int, tuple[Any, Any]] = {}
        n = 0
        for key, partition, value in writes:
            db = dbs.get(partition)
            if db is None:
                db = dbs[partition] = self._db(partition)
            db[key] = value
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value) is None:  # full
                sent = await producer.send_batch(batch, topic, partition=partition)
                last[partition] = (batch, sent)
                batch = batches[partition] = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=value) is None:
                    raise ValueError("a lead state is larger than the producer's batch size")
            n += 1
        for partition, batch in batches.items():
            sent = await producer.send_batch(batch, topic, partition=partition)
            last[partition] = (batch, sent)
        for partition, (batch, delivered) in last.items():
            count = batch.record_count()
            delivered.add_done_callback(partial(self._on_delivered, partition, count))
        return n

    def _on_delivered(self, partition: int, count: int, delivered: asyncio.Future[Any]) -> None:
        if delivered.cancelled():
            return
        error = delivered.exception()
        if error is not None:
            # Offsets acked after this write would commit past state that never
            # reached the changelog: stop rather than lose it on the next restart.
            log.error("leadstream: changelog write failed (%s); stopping", type(error).__name__)
            self._crashing = asyncio.ensure_future(self.app.crash(error))
            return
        # Batches of one partition are delivered in order: the last one covers all.
        # Its metadata carries the batch's base offset; Faust persists a record's own.
        last_offset = delivered.result().offset + count - 1
        self.table.data.set_persisted_offset(TP(self.changelog, partition), last_offset)
