"""In-memory implementations of the loop's interfaces, for tests and benchmarks.

:class:`MemorySource`, :class:`MemoryStore` and :class:`MemorySender` stand in for
Kafka and the table exactly where :class:`streams.core.loop.ScoringLoop` meets them,
so the real loop runs without a broker: unit tests drive it through rebalances,
stops, failed writes and ticks; ``bench/live_cost.py`` times it.
:class:`MemoryTransactions` is the transactional producer of exactly-once mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streams.core.loop import Batch
from streams.core.window import Write


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    """The parts of a consumer record the loop reads."""

    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


class MemorySource:
    """Batches put by the caller; acks recorded per partition (the committed view)."""

    def __init__(self, max_batches: int = 0) -> None:
        self.queue: asyncio.Queue[Batch] = asyncio.Queue(max_batches)
        self.generation = 1
        #: False while a rebalance is in progress.
        self.active = True
        #: topic-partition -> last offset acked (what a commit would store, minus one)
        self.acked: dict[TopicPartition, int] = {}
        self._next_offset: dict[TopicPartition, int] = {}

    def flowing(self) -> bool:
        return self.active

    def ack(self, tp: TopicPartition, generation: int, last_offset: int) -> None:
        if generation == self.generation:  # a revoked generation's acks are dropped
            self.acked[tp] = max(last_offset, self.acked.get(tp, -1))

    def committed(self, tp: TopicPartition, generation: int, last_offset: int) -> None:
        self.ack(tp, generation, last_offset)  # committed by a transaction: the same view

    def batch(
        self, topic: str, partition: int, values: Iterable[tuple[bytes | None, bytes]]
    ) -> Batch:
        """A batch of ``(key, value)`` records at the partition's next offsets."""
        tp = TopicPartition(topic, partition)
        start = self._next_offset.get(tp, 0)
        records = [Record(start + i, k, v) for i, (k, v) in enumerate(values)]
        self._next_offset[tp] = start + len(records)
        return Batch(tp, records, self.generation)


@dataclass
class MemoryStore:
    """Per-partition dicts for the local store, a list for the changelog."""

    data: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    changelog: list[Write] = field(default_factory=list)
    #: Raised by publish, when set: a changelog the broker refuses.
    fail_with: BaseException | None = None

    def get(self, key: bytes, partition: int) -> bytes | None:
        return self.data.get(partition, {}).get(key)

    def put(self, writes: Iterable[Write]) -> int:
        n = 0
        for key, partition, value in writes:
            self.data.setdefault(partition, {})[key] = value
            n += 1
        return n

    async def publish(self, writes: list[Write]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.changelog.extend(writes)
        self.put(writes)  # delivered: now stored locally too

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for partition in self.data.values():
            yield from partition.items()


class Sent(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None
    partition: int | None


@dataclass
class MemorySender:
    """Records every send; ``failures`` holds what would have stopped the worker."""

    sent: list[Sent] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    flushes: int = 0

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        self.sent.append(Sent(topic, key, value, headers, partition))

    async def flush(self) -> None:
        self.flushes += 1

    def fail(self, error: BaseException) -> None:
        self.failures.append(error)

    def to(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]


@dataclass
class MemoryTransactions:
    """A transactional producer over a :class:`MemoryStore`, one transaction at a time.

    ``visible`` is what a read_committed consumer sees: only what committed, in commit
    order. A commit adds its offsets to ``offsets`` (the group's committed offsets,
    last processed per topic-partition) and only then stores its state writes
    (changelog and local store); an abort leaves no trace but the count.
    """

    store: MemoryStore
    visible: list[Sent] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    #: Raised by commit, when set: a commit the broker refuses (or a fenced producer).
    fail_commit_with: BaseException | None = None
    commits: int = 0
    aborts: int = 0
    is_open: bool = False
    _records: list[Sent] = field(default_factory=list)
    _writes: list[Write] = field(default_factory=list)

    async def begin(self) -> None:
        assert not self.is_open, "one transaction at a time"
        self.is_open = True

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        assert self.is_open, "sent outside a transaction"
        self._records.append(Sent(topic, key, value, headers, None))

    async def publish(self, writes: list[Write]) -> None:
        assert self.is_open, "published outside a transaction"
        if self.store.fail_with is not None:
            raise self.store.fail_with
        self._writes.extend(writes)

    async def commit(self, last_offsets: Mapping[Any, int]) -> None:
        assert self.is_open, "committed outside a transaction"
        if self.fail_commit_with is not None:
            raise self.fail_commit_with
        self.visible.extend(self._records)
        for tp, last in last_offsets.items():
            self.offsets[tp] = max(last, self.offsets.get(tp, -1))
        self.store.changelog.extend(self._writes)
        self.store.put(self._writes)
        self._records, self._writes = [], []
        self.is_open = False
        self.commits += 1

    async def abort(self) -> None:
        if self.is_open:
            self._records, self._writes = [], []
            self.is_open = False
            self.aborts += 1

    def to(self, topic: str) -> list[Sent]:
        """What a read_committed consumer of ``topic`` sees."""
        return [s for s in self.visible if s.topic == topic]
