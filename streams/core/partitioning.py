"""Which partition a lead belongs to.

Kafka's Java client, aiokafka and Faust's producer all pick a keyed record's
partition as ``murmur2(key) & 0x7fffffff % n``. leadstream keeps one lead's state,
its decay timer and its input events in that partition number of every topic, so a
record keyed by ``lead_id`` with the default partitioner needs no extra hop. Records
keyed otherwise (or placed by librdkafka's CRC32 default) are detected here and
re-sent keyed by lead.

aiokafka's ``murmur2`` is pure Python (a few microseconds a key), so results are
memoised; the memo is bounded by clearing it when full, which is cheap and keeps
hot leads cached in steady state.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

#: Leads remembered; ~100 bytes each.
_MEMO_LIMIT = 500_000


class Partitioner:
    __slots__ = ("_memo", "partitions")

    def __init__(self, partitions: int) -> None:
        if partitions <= 0:
            raise ValueError("partitions must be positive")
        self.partitions = partitions
        self._memo: dict[str, int] = {}

    def partition_of(self, lead_id: str) -> int:
        """The partition Kafka's default partitioner gives the key ``lead_id``.

        >>> Partitioner(4).partition_of("lead-000001")
        2
        """
        memo = self._memo
        partition = memo.get(lead_id)
        if partition is None:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            partition = memo[lead_id] = (murmur2(lead_id.encode()) & 0x7FFFFFFF) % self.partitions
        return partition
