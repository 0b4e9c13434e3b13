"""One model's replay of recorded input: the worker's per-record steps, in memory.

The worker handles a record in :meth:`streams.core.pipeline.Pipeline.process`; its
steps, in its order, are done here by :class:`RecordReplay` (what does not depend on
the model, once per record) and :class:`ModelReplay` (the rest, once per model):

1. decode and validate with ``streams.core.contract.decode_event`` at the time the
   record was handled (a rejection is a dead letter, with the worker's reason);
2. a record on the wrong partition for its lead is rerouted (counted) and scored
   from its lead's partition, with the position it was read at (the worker sends it
   round the repartition topic first, milliseconds later);
3. a position the lead's state has applied already is a replay, skipped;
4. a profile event that would take the lead past
   ``streams.core.pipeline.MAX_PROFILE_ATTRIBUTES`` is a dead letter (state_limit);
5. a web or email event whose user agent is a known crawler's is marked, when the
   model asks (``streams.core.bots``: the one check scoring leaves to the worker);
6. ``scoring.apply`` (dedup by event id, lateness and bot filtering are its own),
   the position recorded; an exception is a dead letter (processing_error);
7. outcome: late, bot, duplicate or scored, as the pipeline tells them apart, and
   the bots filtered by reason.

Decay ticks: the worker schedules each lead's next decay change as it scores it
(``next_change_at``) and a timer sends the lead a tick record, which ``advance``\\s it
to the time the tick is handled. Here a tick is handled at the change's due time, or
at the time the lead was last handled if that is later (a change already due then),
without the timer's delay (up to ``LEADSTREAM_TICK_INTERVAL_SECONDS``). Ticks fire
per lead, before the lead's next record and at the end: leads are independent, so
where a tick falls among other leads' records changes nothing.

What the worker's loop does besides (write-behind windows, the store, the
changelog, acks) decides when a state is written, never what it is, so states live
in a dict here and nothing is written anywhere.

Why not drive :class:`~streams.core.loop.ScoringLoop` itself with the in-memory fakes
(``streams.core.inmemory``)? A faithful tick needs a lead's records in batches of
their own (a hot lead's every record), and each model would decode and validate
every record again: measured on one core, ``Pipeline.process`` one record at a time
costs ~17 us a record per model (its per-batch metrics, its decode) against ~10.5 us
per model here plus one ~2.6 us decode for both, a third more in all, and two
processes then fall short of the 50k events/s a preview must reach. Instead
``tests/modelpreview/test_faithful.py`` replays a generated workload (invalid,
misrouted, repeated, late and out-of-order records, crawlers, disqualifiers, decay
between and after events) through that loop and through this replay, and requires
the same stage changes (ids, causes, times, sequence numbers), the same leads at the
end and the same outcome, dead-letter and bot counts. A change to the pipeline's
steps must be made here too: that test fails until it is, if its workload has what
the change is about.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from scoring import LeadState, ScoringModel, Transition, advance, apply, next_change_by, snapshot
from scoring.engine import score_at
from streams.core.bots import SOURCES as MARKED_SOURCES
from streams.core.bots import for_model
from streams.core.contract import Rejected, decode_event
from streams.core.partitioning import Partitioner
from streams.core.pipeline import MAX_PROFILE_ATTRIBUTES

#: Most decay ticks one catch-up fires for a lead: a lead changes stage by decay a
#: few times at most between two records; this only bounds a runaway.
MAX_TICKS = 64

OnChange = Callable[[Transition], None]


class LeadResult(NamedTuple):
    """A lead as the query API would show it at the preview's ``now``."""

    lead_id: str
    stage: str
    grade: str
    score: float


class ModelReplay:
    """One model's lead states, outcomes and dead letters; stage changes go to
    ``on_change`` (the worker would publish each on ``lead.qualified``)."""

    def __init__(self, model: ScoringModel, on_change: OnChange) -> None:
        self.model = model
        self.on_change = on_change
        self.states: dict[str, LeadState] = {}
        #: When each lead was last handled (a record or a tick): no tick before it.
        self.handled_at: dict[str, float] = {}
        #: Records by the worker's outcome (``leadstream_events_total``).
        self.outcomes: Counter[str] = Counter()
        #: Dead letters by reason (``leadstream_dlq_total``).
        self.dead_letters: Counter[str] = Counter()
        #: Events filtered as bots, by reason (``leadstream_bots_filtered_total``).
        self.bots: Counter[str] = Counter()
        self.marker = for_model(model)

    def score(
        self, event: Mapping[str, Any], kind: str, source: str, position: int, at: float
    ) -> None:
        """Steps 3 to 7 for one decoded event read at ``source`` (``topic:partition``)
        and ``position`` (its offset), handled ``at``; the lead's decay ticks due
        before ``at`` first."""
        lead_id = event["lead_id"]
        state = self.states.get(lead_id)
        if state is None:
            state = LeadState(lead_id)
        else:
            due = next_change_by(state, self.model, at)  # the bound rules most out: cheap
            if due is not None and due < at:
                self.catch_up(lead_id, at)  # the same state, advanced in place
        if position <= state.applied.get(source, -1):
            self.outcomes["replayed"] += 1
            return
        if kind == "profile" and _profile_overflows(state, event):
            self.dead_letters["state_limit"] += 1
            return
        if self.marker is not None and kind in MARKED_SOURCES:
            event = self._marked(event)
        seen_before, late_before = state.events_seen, state.late_dropped
        try:
            state, transitions = apply(state, event, self.model)
        except Exception:  # the worker dead-letters it and goes on; the state keeps
            self.dead_letters["processing_error"] += 1  # what the engine changed in place
            return
        state.applied[source] = position
        self.states[lead_id] = state
        self.handled_at[lead_id] = at
        if transitions:
            self._publish(transitions)
        self._count(state, seen_before, late_before)

    def _marked(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        """The event as the worker hands it to scoring: marked if its user agent is a
        known crawler's. Marked on a copy: the other model gets the event as decoded."""
        if not event.get("user_agent"):
            return event
        marked = dict(event)
        return marked if self.marker is not None and self.marker.mark(marked) else event

    def _count(self, state: LeadState, seen_before: int, late_before: int) -> None:
        """The outcome of the event just applied, and the bots it filtered."""
        for reason in state.filtered:  # its own reason first, then what it exposed
            self.bots[reason] += 1
        if state.late_dropped != late_before:
            self.outcomes["late"] += 1
        elif state.filtered_self:
            self.outcomes["bot"] += 1
        elif state.events_seen == seen_before:
            self.outcomes["duplicate"] += 1
        else:
            self.outcomes["scored"] += 1

    def catch_up(self, lead_id: str, until: float, *, inclusive: bool = False) -> None:
        """Fire the lead's decay ticks due before ``until`` (or at it, if ``inclusive``)."""
        state = self.states.get(lead_id)
        if state is None:
            return
        for _ in range(MAX_TICKS):
            due = next_change_by(state, self.model, until)
            if due is None or (due == until and not inclusive):
                return
            at = max(due, self.handled_at[lead_id])
            if at > until:
                return  # handled after ``until``
            try:
                state, transitions = advance(state, at, self.model)
            except Exception:  # dead-lettered; no timer again until the lead's next record
                self.dead_letters["processing_error"] += 1
                return
            self.handled_at[lead_id] = at
            self.outcomes["tick"] += 1
            self._publish(transitions)

    def finish(self, now: float) -> Iterator[LeadResult]:
        """Every lead at ``now``, its decay ticks up to ``now`` fired first.

        The stage, grade and score ``snapshot`` (the query API) would give: with no
        change due by ``now`` left, it reads them off the state, and only the score
        needs computing; its solve for the next change and its reasons would be most
        of the preview's time after the replay.
        """
        model = self.model
        for lead_id, state in self.states.items():
            self.catch_up(lead_id, now, inclusive=True)
            if next_change_by(state, model, now) is not None:  # a tick failed: as snapshot
                view = snapshot(state, model, now)
                yield LeadResult(lead_id, view["stage"], view["grade"], view["score"])
                continue
            score = score_at(state, model, max(now, state._clock))
            yield LeadResult(lead_id, state.stage, state.grade, score)

    def _publish(self, transitions: list[Transition]) -> None:
        for transition in transitions:
            self.on_change(transition)


def _profile_overflows(state: LeadState, event: Mapping[str, Any]) -> bool:
    """The pipeline's state bound (``streams.core.pipeline._profile_overflows``)."""
    profile = state.profile
    attributes = event.get("attributes") or {}
    added = sum(1 for name in attributes if name not in profile)
    return added > 0 and len(profile) + added > MAX_PROFILE_ATTRIBUTES


class RecordReplay:
    """Steps 1 and 2 for each record, once; then each model's replay scores it."""

    def __init__(
        self, replays: tuple[ModelReplay, ...], partitions: int, max_future_skew_s: float
    ) -> None:
        self.replays = replays
        self.partition_of = Partitioner(partitions).partition_of
        self.max_future_skew_s = max_future_skew_s
        #: The newest time of an event the worker would accept (None: none yet).
        self.newest_event: float | None = None

    def handle(
        self, kind: str, topic: str, partition: int, offset: int, value: bytes, at: float
    ) -> None:
        """One input record, read at ``topic[partition]@offset``, handled ``at``."""
        try:
            event = decode_event(kind, value, now=at, max_future_skew_s=self.max_future_skew_s)
        except Rejected as rejected:
            for replay in self.replays:
                replay.dead_letters[rejected.reason] += 1
            return
        if self.newest_event is None or event["time"] > self.newest_event:
            self.newest_event = event["time"]
        lead_id = event["lead_id"]
        if self.partition_of(lead_id) != partition:
            for replay in self.replays:
                replay.outcomes["rerouted"] += 1
        source = f"{topic}:{partition}"
        for replay in self.replays:
            replay.score(event, kind, source, offset, at)
