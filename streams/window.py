"""What the agent has done since it last wrote state: the write-behind window.

Scoring results leave at once (``lead.qualified``, dead letters, reroutes), but lead
states are written to the table (RocksDB + one changelog record each) once per
window, and the window's offsets are acked only after that write. A lead touched
by many events in the window is written once, which is most of the gain under a
Zipf-shaped workload, and a crash or rebalance before the write loses nothing: the
offsets were not committed, so the events are read again against the last written
state (``lead.qualified`` may repeat, with the same event ids: at-least-once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scoring import LeadState


@dataclass(slots=True)
class WriteWindow:
    #: Consumer generation the window's events were fetched in.
    generation: int = -1
    #: Loop time of the first event in the window.
    opened_at: float = 0.0
    events: int = 0
    #: lead id -> (latest state, partition)
    dirty: dict[str, tuple[LeadState, int]] = field(default_factory=dict)
    #: topic-partition -> last offset taken into the window
    last_offsets: dict[Any, int] = field(default_factory=dict)

    def due(self, now: float, *, max_events: int, max_age_s: float) -> bool:
        return self.events > 0 and (self.events >= max_events or now - self.opened_at >= max_age_s)

    def seconds_left(self, now: float, max_age_s: float) -> float | None:
        """Until the window is due by age (None: empty, nothing to wait for)."""
        return None if not self.events else max(0.0, self.opened_at + max_age_s - now)

    def reset(self, generation: int) -> None:
        self.generation = generation
        self.events = 0
        self.dirty = {}
        self.last_offsets = {}
