"""Write-behind of lead states: once per lead per window, in slices between batches.

Scoring results leave at once (``lead.qualified``, dead letters, reroutes), but lead
states are written to the table (RocksDB + one changelog record each) once per
window, and the window's offsets are acked only after that write. A lead touched by
many events in the window is written once, which is most of the gain under a
Zipf-shaped workload, and a crash or rebalance before the write loses nothing: the
offsets were not acked, so the events are read again (``lead.qualified`` may repeat,
with the same event ids: at-least-once).

Writing a window's states takes a good share of the worker's time (hot leads are
large), and events would wait behind it. So a due window is *closed*, and encoded
in slices between the batches that follow while a new window fills, paced
evenly over most of the time the window was open rather than as fast as possible (a
burst of writes after each close starved the batches: latency spikes at every window
in the bench). A window due by age or size waits until the one before it is
written (up to twice its size), rather than the loop stalling to finish it. Each
slice is published to the changelog by a background task as soon as it is encoded (a
producer waits a broker round trip whenever a partition's previous batch is still in
flight; the agent must not), and stored locally only once delivered: a local store
ahead of its changelog would keep, after a crash, states that no other worker can
restore, and skip as replays the events whose stage changes were never delivered.
Until then the loop reads those states from its cache. A last task acks the window
once all its slices are published; publications run one at a time, in order, so a
lead's records keep their order. The closed window's states must be its own: before
a batch changes a lead the closed window has not written yet,
:meth:`WriteBehind.claim` copies it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scoring import LeadState

log = logging.getLogger("leadstream")

#: States encoded between checks of the slice's deadline (and a paced wait's unit).
PACE_CHUNK = 16

#: (key, partition, value) of one state write.
Write = tuple[bytes, int, bytes]


@dataclass(slots=True)
class WriteWindow:
    #: Consumer generation the window's events were fetched in.
    generation: int = -1
    #: Loop time of the first event in the window.
    opened_at: float = 0.0
    events: int = 0
    #: lead id -> (latest state, partition) still to be written
    dirty: dict[str, tuple[LeadState, int]] = field(default_factory=dict)
    #: copies of states a later batch was about to change, still to be written
    claimed: dict[str, tuple[LeadState, int]] = field(default_factory=dict)
    #: states encoded so far (each slice is published once encoded)
    stored: int = 0
    #: topic-partition -> last offset taken into the window
    last_offsets: dict[Any, int] = field(default_factory=dict)
    #: clock time the window was closed, and over how long its writes are spread
    closed_at: float = 0.0
    pace_s: float = 0.0
    #: states to write when it was closed
    size: int = 0
    #: chunks owed to ``claimed`` (its share of what is left, accumulated per chunk)
    claim_credit: float = 0.0
    #: exactly-once: what the window's batches sent (stage changes, dead letters,
    #: reroutes), held to go out in its transaction (see WriteBehind's begin hook)
    outputs: list[Any] = field(default_factory=list)

    @property
    def left(self) -> int:
        """States of a closed window still to write."""
        return len(self.dirty) + len(self.claimed)


class WriteBehind:
    def __init__(
        self,
        *,
        encode: Callable[[str, LeadState, int], bytes | None],
        publish: Callable[[list[Write]], Awaitable[None]],
        ack: Callable[[int, Mapping[Any, int]], None],
        written: Callable[[int, int, float], None],
        max_events: int,
        max_age_s: float,
        slice_s: float,
        pace: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        begin: Callable[[WriteWindow], Awaitable[None]] | None = None,
        commit: Callable[[WriteWindow], Awaitable[bool]] | None = None,
        rollback: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``encode(lead_id, state, partition)`` returns the bytes to store (and may
        note the state's next decay change), or None for a state that cannot be
        stored (left out of the window; the caller deals with it); ``publish``
        sends a slice of writes to the changelog and, once delivered, stores them
        locally; ``ack(generation, last_offsets)`` acks the window after that, and
        ``written(states, events, seconds from close to ack)`` reports it.

        ``pace`` > 0 spreads a closed window's writes evenly over that fraction of
        the time the window was open (``clock``, the one ``record``'s ``now`` comes
        from) instead of writing it as fast as slices allow: a window's writes cost
        about half the worker's time under live load, and done at once they starved
        the batches behind them (latency spikes at every window, bench).

        ``begin`` and ``commit`` make a window's writes one unit (exactly-once: a
        Kafka transaction): ``begin(window)`` runs before its first publication,
        ``commit(window)`` after its last and before its ack, which it skips by
        returning False (the window was not committed); ``rollback()`` follows a
        :meth:`discard`, which may drop a window whose unit was begun."""
        self._encode = encode
        self._publish = publish
        self._ack = ack
        self._written = written
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.slice_s = slice_s
        self.pace = pace
        self._clock = clock
        self._begin = begin
        self._commit = commit
        self._rollback = rollback
        self.open = WriteWindow()
        self.closed: WriteWindow | None = None
        #: the latest publication (each awaits the one before it)
        self.publishing: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    # ------------------------------------------------------------------ filling

    def claim(self, lead_id: str) -> None:
        """Call before a batch changes ``lead_id``: the closed window keeps its state.

        A copy, not the bytes: the first batches after a close touch most hot leads,
        the largest states, and encoding them there (45-80 us each, plus their next
        decay change) came as a burst that delayed those batches; a hot lead's copy
        costs about a third of that, and is encoded in the paced slices."""
        closed = self.closed
        if closed is not None and closed.dirty:
            entry = closed.dirty.pop(lead_id, None)
            if entry is not None:
                closed.claimed[lead_id] = (entry[0].copy(), entry[1])

    def record(
        self,
        touched: Mapping[str, tuple[LeadState, int, int]],
        last_offsets: Mapping[Any, int],
        events: int,
        now: float,
    ) -> None:
        """Add one handled batch: its touched leads and the offsets it covers."""
        window = self.open
        if not window.events:
            window.opened_at = now
        dirty = window.dirty
        for lead_id, (state, partition, _index) in touched.items():
            dirty[lead_id] = (state, partition)
        window.last_offsets.update(last_offsets)
        window.events += events

    def due(self, now: float) -> bool:
        """Whether to close the open window: at ``max_events`` or ``max_age_s`` once
        the window before it is written and published; at twice ``max_events`` always.

        A writer that fell behind (a loaded worker) lets the open window grow rather
        than finishing the last one at once in :meth:`close`: that burst stalled the
        loop for up to 240 ms at a close (bench trace, 15k events/s), and at
        ``max_events`` for 0.1-0.7 s every window, growing, at 31k events/s. A longer
        window also writes each hot lead less often, which is how the writer catches
        up. Twice ``max_events`` bounds what a crash re-reads."""
        window = self.open
        if not window.events:
            return False
        if window.events >= 2 * self.max_events:
            return True
        if window.events >= self.max_events or now - window.opened_at >= self.max_age_s:
            return self._previous_done()
        return False

    def _previous_done(self) -> bool:
        return self.closed is None and (self.publishing is None or self.publishing.done())

    def seconds_left(self, now: float) -> float | None:
        """Until there is work: while a closed window is being written, until its
        next paced chunk is due (0 unpaced); else until the open one is due by age or
        size (a slice while its close waits for the last publication); None when
        there is nothing to write."""
        closed = self.closed
        if closed is not None:
            left = closed.left
            if not closed.pace_s or not left:
                return 0.0
            # When the next slice of PACE_CHUNK states is due.
            done = closed.size - left
            target = min(closed.size, done + PACE_CHUNK)
            return max(0.0, closed.closed_at + closed.pace_s * target / closed.size - now)
        window = self.open
        if not window.events:
            return None
        wait = 0.0 if window.events >= self.max_events else window.opened_at + self.max_age_s - now
        if wait <= 0.0 and not self._previous_done():
            return self.slice_s  # a poll, not a spin, until the publication is done
        return max(0.0, wait)

    @property
    def pending_events(self) -> int:
        return self.open.events + (self.closed.events if self.closed is not None else 0)

    def is_dirty(self, lead_id: str) -> bool:
        return lead_id in self.open.dirty or (
            self.closed is not None and lead_id in self.closed.dirty
        )

    # ------------------------------------------------------------------ writing

    async def close(self) -> None:
        """Close the open window (finishing the previous closed one first, and waiting
        for the publication before it: at most one window publishes at a time)."""
        if self.closed is not None:
            await self.finish()
        if self.publishing is not None and not self.publishing.done():
            await asyncio.shield(self.publishing)
        window = self.open
        window.closed_at = now = self._clock()
        window.pace_s = self.pace * min(self.max_age_s, max(0.0, now - window.opened_at))
        window.size = len(window.dirty)
        self.closed = window
        self.open = WriteWindow(generation=window.generation)
        if self._begin is not None:
            self._after(self._begin, window)

    async def work(self, budget_s: float | None = None) -> bool:
        """Encode and store a slice of the closed window; once all of it is stored,
        start its publication. True when no closed window is left."""
        closed = self.closed
        if closed is None:
            return True
        deadline = time.perf_counter() + (self.slice_s if budget_s is None else budget_s)
        claimed, dirty, encode = closed.claimed, closed.dirty, self._encode
        quota = closed.left
        if budget_s is None and closed.pace_s:
            share = min(1.0, (self._clock() - closed.closed_at) / closed.pace_s)
            quota -= math.ceil(closed.size * (1.0 - share))
        ready: list[Write] = []
        while quota > 0:
            # Claimed states are the leads the new window touched first, the hot and
            # largest ones (twice the cost of an average state): taken in proportion
            # to what is left, not first, so their cost spreads over the pace instead
            # of doubling the writes' CPU in the 300 ms after a close (bench trace).
            if claimed and dirty:
                closed.claim_credit += len(claimed) / (len(claimed) + len(dirty))
                if closed.claim_credit >= 1.0:
                    closed.claim_credit -= 1.0
                    source = claimed
                else:
                    source = dirty
            else:
                source = claimed or dirty
            if not source:
                break
            n = min(PACE_CHUNK, len(source), quota)
            quota -= n
            for _ in range(n):
                lead_id, (state, partition) = source.popitem()
                value = encode(lead_id, state, partition)
                if value is not None:
                    ready.append((lead_id.encode(), partition, value))
            if time.perf_counter() >= deadline:
                break
        if ready:
            closed.stored += len(ready)
            self._after(self._publish, ready)
        if claimed or dirty:
            return False
        if not ready:
            # The encoder may have left something to send with the window (dead
            # letters for states it could not encode): publication comes before ack.
            self._after(self._publish, ready)
        self.closed = None
        self._after(self._complete, closed)
        return True

    async def finish(self) -> None:
        while not await self.work(budget_s=float("inf")):
            pass

    def _after(self, step: Callable[[Any], Awaitable[None]], arg: Any) -> None:
        """Run ``step(arg)`` in the background once the publication before it is done."""
        self.publishing = asyncio.ensure_future(_chained(self.publishing, step, arg))
        self.publishing.add_done_callback(self._log_failure)

    def _log_failure(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None and error is not self._failure:
            # Logged once: every later publication fails with the same error. Their
            # offsets stay unacked, so a restart reads the events again.
            self._failure = error
            log.error("leadstream: publishing lead states failed: %r", error)

    async def _complete(self, window: WriteWindow) -> None:
        if self._commit is not None and not await self._commit(window):
            return
        self._ack(window.generation, window.last_offsets)
        self._written(window.stored, window.events, self._clock() - window.closed_at)

    def discard(self, generation: int) -> int:
        """Drop both windows unwritten (a rebalance); return how many events they held."""
        events = self.pending_events
        begun = self.closed is not None or (
            self.publishing is not None and not self.publishing.done()
        )
        self.open = WriteWindow(generation=generation)
        self.closed = None
        publishing = self.publishing
        if publishing is not None and publishing.cancelled():
            # Cancelled by a write at the revoke that overran: its windows are the
            # ones dropped here. Chained to, it would cancel every later window too
            # (never acked again); a failed one still fails them (see _chained).
            self.publishing = None
        if self._rollback is not None and begun:
            self._after(self._roll_back, None)
        return events

    async def _roll_back(self, _: Any) -> None:
        assert self._rollback is not None
        await self._rollback()


async def _chained(
    previous: asyncio.Task[None] | None, step: Callable[[Any], Awaitable[None]], arg: Any
) -> None:
    if previous is not None:
        # A failed publication fails every later one: acking a later window would
        # commit past the states that never reached the changelog.
        await previous
    await step(arg)
