"""What the worker's fetch requests ask the broker for: full fetches under load, a
wake-up on the first record when quiet.

A fetch returns once ``min_bytes`` have gathered or ``max_wait_ms`` have passed.
Under load the worker asks for 64 KiB or a short wait (the fetch wait setting), so
the broker answers few, full fetches instead of thousands of small ones. With
little or no traffic that same request comes back empty every wait: a hundred
requests a second at 10 ms, for nothing (12-16% of a broker core per idle worker on
the bench machine), and a record that arrives waits out the rest of the wait.
Quiet, the worker asks for one byte or half a second instead: the broker holds the
request until a record arrives and answers at once. Records are quiet when they
come slower than the busy request would poll (one per wait), so the quiet request
is never the busier of the two.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FetchMode:
    min_bytes: int
    max_wait_ms: int


#: One byte: the broker answers as soon as any record is there, else after 0.5 s.
QUIET = FetchMode(min_bytes=1, max_wait_ms=500)
#: Seconds over which the record rate is measured.
WINDOW_S = 1.0


class FetchPace:
    """Picks the fetch mode from the records the drain loop gets.

    Starts busy (a restart usually finds a backlog). Busy turns quiet when a window
    ends with fewer records than the busy request's polls in it; quiet turns busy as
    soon as a window holds that many, so a burst is not met with one-record fetches
    for the rest of the window.
    """

    def __init__(self, busy: FetchMode, quiet: FetchMode = QUIET) -> None:
        self.busy = busy
        self.quiet = quiet
        self.mode = busy
        #: Records per window at which the busy request is the cheaper one.
        self._busy_at = WINDOW_S * 1000 / busy.max_wait_ms
        self._window_start: float | None = None
        self._count = 0

    def observe(self, records: int, now: float) -> FetchMode | None:
        """Count what one fetch brought at ``now``; the new mode when it changes."""
        if self._window_start is None:
            self._window_start = now
        self._count += records
        if self.mode is self.quiet and self._count >= self._busy_at:
            return self._switch(self.busy, now)
        if now - self._window_start < WINDOW_S:
            return None
        rate_mode = self.busy if self._count >= self._busy_at else self.quiet
        return self._switch(rate_mode, now)

    def _switch(self, mode: FetchMode, now: float) -> FetchMode | None:
        self._window_start, self._count = now, 0
        if mode is self.mode:
            return None
        self.mode = mode
        return mode
