"""Exactly-once: each state window as one Kafka transaction of the worker's own producer.

:class:`WindowTransactions` is the :class:`streams.core.loop.Transactions` of the
scoring loop when ``LEADSTREAM_PROCESSING_GUARANTEE=exactly_once``. It owns an
aiokafka producer with a transactional id (``Settings.transactional_id``: the app id
and the worker's group instance id), separate from Faust's producer, which keeps
sending decay ticks outside transactions. One transaction is open at a time: the
window's stage changes, dead letters and reroutes, its changelog records (one record
batch per partition, as :class:`~streams.faust_adapter.leadstore.LeadStore` sends
them) and its input offsets (``send_offsets_to_transaction``). Only once it commits
are the states stored locally, with the changelog offset of each partition's last
record as the persisted offset (the commit marker after it is covered by the
position-based reads of :mod:`~streams.faust_adapter.preload` and
:mod:`~streams.faust_adapter.recovery`).

Fencing comes from two sides. A restarted worker (same instance id, so the same
transactional id) fences its predecessor when its producer starts, which aborts the
transaction the predecessor left open; :func:`fence` does that before the changelog
is preloaded, so the preload reads a changelog without an open transaction. And the
offsets go with the consumer's generation and member id (KIP-447, through
:mod:`~streams.faust_adapter.groupfencing`): a worker the group dropped while it was
alive (a *zombie*, whose partitions another worker took) has its window refused, and
aborts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams.core.window import Write
from streams.faust_adapter.groupfencing import GroupMember
from streams.faust_adapter.leadstore import LeadStore
from streams.kafkasecurity import security_of
from streams.settings import Settings

log = logging.getLogger("leadstream")

#: How long the producer gathers a batch (ms): Faust's producer linger, as the
#: at-least-once path uses.
LINGER_MS = 2
#: The producer's batch and request sizes: Faust's, as the app sets them.
MAX_BATCH_BYTES = 1024 * 1024
MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: Longest the fence at start may take (InitProducerId waits while the coordinator
#: completes the predecessor's transaction).
FENCE_TIMEOUT_S = 60.0


def transactional_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        transactional_id=settings.transactional_id,
        transaction_timeout_ms=settings.transaction_timeout_ms,
        linger_ms=LINGER_MS,
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=MAX_REQUEST_BYTES,
        **security_of(settings).aiokafka_kwargs(),
    )


def fence(settings: Settings) -> None:
    """Fence the worker's predecessor (same transactional id), before the preload.

    Its open transaction is aborted, or its committing one completed, so that a
    read_committed reader of the changelog is not held at it until it times out.
    Blocking; call it with no running event loop.
    """

    async def init() -> None:
        producer = transactional_producer(settings)
        try:
            await asyncio.wait_for(producer.start(), FENCE_TIMEOUT_S)
        finally:
            await producer.stop()

    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        runner.run(init())


class WindowTransactions:
    """One transaction per state window, over the worker's transactional producer."""

    def __init__(
        self,
        settings: Settings,
        store: LeadStore,
        *,
        group_id: str,
        member: Callable[[], tuple[int, str] | None] = lambda: None,
    ) -> None:
        """``member()``: the consumer's (generation, member id) at a commit."""
        self.settings = settings
        self.store = store
        self.group_id = group_id
        self.member = member
        self._producer: AIOKafkaProducer | None = None
        #: idle, open (records may be added) or committing (the outcome is the
        #: coordinator's: aiokafka shields the commit from cancellation)
        self._state = "idle"
        self._deliveries: list[asyncio.Future[Any]] = []
        self._changelog: list[tuple[int, Any, asyncio.Future[Any]]] = []
        self._writes: list[Write] = []

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = transactional_producer(self.settings)
            await producer.start()  # InitProducerId: fences a predecessor
            self._producer = producer
        return self._producer

    async def begin(self) -> None:
        producer = await self._started()
        await producer.begin_transaction()
        self._state = "open"

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        assert self._producer is not None and self._state == "open"
        delivery = await self._producer.send(topic, value, key=key, headers=headers)
        self._deliveries.append(delivery)

    async def publish(self, writes: list[Write]) -> None:
        """The writes' changelog records, one record batch per partition (another
        when one fills), in the transaction; stored locally at the commit."""
        producer = self._producer
        assert producer is not None and self._state == "open"
        topic = self.store.changelog
        batches: dict[int, Any] = {}
        for key, partition, value in writes:
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value) is None:  # full
                await self._send_batch(batch, topic, partition)
                batch = batches[partition] = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=value) is None:
                    raise ValueError("a lead state is larger than the producer's batch size")
        for partition, batch in batches.items():
            await self._send_batch(batch, topic, partition)
        self._writes.extend(writes)

    async def _send_batch(self, batch: Any, topic: str, partition: int) -> None:
        assert self._producer is not None
        delivery = await self._producer.send_batch(batch, topic, partition=partition)
        self._changelog.append((partition, batch, delivery))

    async def commit(self, last_offsets: Mapping[Any, int]) -> None:
        producer = self._producer
        assert producer is not None and self._state == "open"
        # aiokafka would commit a transaction one of whose batches failed (it only
        # fails the batch's future): every delivery is checked first.
        for delivery in self._deliveries:
            await delivery
        changelog_ends: dict[int, int] = {}
        for partition, batch, delivery in self._changelog:
            metadata = await delivery
            # The metadata has the batch's base offset.
            last = metadata.offset + batch.record_count() - 1
            changelog_ends[partition] = max(last, changelog_ends.get(partition, -1))
        offsets = {
            TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(last + 1, "")
            for tp, last in last_offsets.items()
        }
        if offsets:
            await producer.send_offsets_to_transaction(offsets, self._group())
        self._state = "committing"
        await producer.commit_transaction()
        writes = self._writes
        self._reset()
        # Committed: from now on a restart skips these events as replays, so the
        # states may be stored (never before: a store ahead of the commit would skip
        # events whose stage changes a read_committed consumer never saw).
        self.store.put(writes)
        for partition, offset in changelog_ends.items():
            self.store.persist_offset(partition, offset)

    def _group(self) -> str:
        """The group id, with the member's identity when the consumer has one."""
        member = self.member()
        if member is None:
            return self.group_id
        generation, member_id = member
        return GroupMember(
            self.group_id,
            generation=generation,
            member_id=member_id,
            instance_id=self.settings.group_instance_id or None,
        )

    async def abort(self) -> None:
        state, producer = self._state, self._producer
        self._reset()
        if state == "committing":
            # Its outcome is the coordinator's now; either way the loop neither acks
            # nor stores it, and a commit shows up in the changelog and the group.
            log.warning("leadstream: a transaction was interrupted while committing")
            return
        if state == "open" and producer is not None:
            await producer.abort_transaction()

    def _reset(self) -> None:
        self._state = "idle"
        self._deliveries, self._changelog, self._writes = [], [], []

    async def stop(self) -> None:
        """At the worker's stop, after the windows are written: close the producer."""
        if self._producer is not None:
            await self._producer.stop()
