"""Per-partition schedule of decay-driven stage changes.

Each lead's state carries ``next_change_at`` (computed by ``scoring``), so this
schedule is only an index over the table: after every rebalance it is rebuilt from
the table of the partitions this worker owns, and between rebalances every state
write updates it. The timer asks it for what is due; nothing scans the table on a
tick.

Superseded entries stay in the heap and are skipped when popped (``_due`` holds the
one that counts) — cheaper than deleting from a heap.

>>> s = DecaySchedule()
>>> s.set(0, "lead-1", 10.0); s.set(0, "lead-2", 5.0); s.set(0, "lead-1", 20.0)
>>> s.pop_due(0, now=15.0)
['lead-2']
>>> s.pop_due(0, now=25.0)
['lead-1']
"""

from __future__ import annotations

import heapq
from collections.abc import Set as AbstractSet


class DecaySchedule:
    __slots__ = ("_due", "_heaps")

    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[float, str]]] = {}
        self._due: dict[int, dict[str, float]] = {}

    def set(self, partition: int, lead_id: str, due: float | None) -> None:
        """Record when ``lead_id`` next changes stage by decay alone (None: never)."""
        dues = self._due.get(partition)
        if dues is None:
            dues = self._due[partition] = {}
            self._heaps[partition] = []
        if due is None:
            dues.pop(lead_id, None)
            return
        if dues.get(lead_id) == due:
            return
        dues[lead_id] = due
        heapq.heappush(self._heaps[partition], (due, lead_id))

    def pop_due(self, partition: int, now: float, limit: int = 10_000) -> list[str]:
        """Leads of ``partition`` due at or before ``now``, removed from the schedule."""
        heap = self._heaps.get(partition)
        if not heap:
            return []
        dues = self._due[partition]
        out: list[str] = []
        while heap and heap[0][0] <= now and len(out) < limit:
            due, lead_id = heapq.heappop(heap)
            if dues.get(lead_id) == due:
                del dues[lead_id]
                out.append(lead_id)
        return out

    def due_at(self, partition: int, lead_id: str) -> float | None:
        return self._due.get(partition, {}).get(lead_id)

    def drop_partitions_except(self, keep: AbstractSet[int]) -> None:
        """Forget partitions this worker no longer owns."""
        for partition in [p for p in self._heaps if p not in keep]:
            del self._heaps[partition]
            del self._due[partition]

    def reset(self, partition: int) -> None:
        self._heaps[partition] = []
        self._due[partition] = {}

    def __len__(self) -> int:
        return sum(len(d) for d in self._due.values())

    def partitions(self) -> list[int]:
        return list(self._heaps)
