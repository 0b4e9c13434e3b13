"""One model's replay of recorded input: the worker's per-record steps, in memory.

The worker handles a record in :meth:`streams.core.pipeline.Pipeline.process`; the
decisions it takes about one record are ``streams.core.records``', and this replay
takes them with the same calls: :class:`RecordReplay` does what does not depend on
the model, once per record, and :class:`ModelReplay` the rest, once per model:

1. ``records.decode`` at the time the record was handled (a rejection is a dead
   letter, with the worker's reason), once for both models;
2. a record on the wrong partition for its lead is rerouted (counted) and scored
   from its lead's partition, with the position it was read at (the worker sends it
   round the repartition topic first, milliseconds later);
3. ``records.RecordScorer.score``: a replay skipped, the profile bound (a dead
   letter), the bot mark (on a copy: the other model gets the event as decoded),
   ``scoring.apply`` and the outcome (late, bot, duplicate or scored); an exception
   is a dead letter (processing_error); the bots filtered are counted by reason.

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
per model here (the same steps without that bookkeeping) plus one ~2.6 us decode for
both, a third more in all, and two processes then fall short of the 50k events/s a
preview must reach. Instead
``tests/modelpreview/test_faithful.py`` replays a generated workload (invalid,
misrouted, repeated, late and out-of-order records, crawlers, disqualifiers, decay
between and after events) through that loop and through this replay, and requires
the same stage changes (ids, causes, times, sequence numbers), the same leads at the
end and the same outcome, dead-letter and bot counts. The steps themselves are
shared; what that test still watches is what this module does around them (ticks,
reroutes, what a failure keeps).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from scoring import LeadState, ScoringModel, Transition, advance, next_change_by, snapshot
from scoring.engine import score_at
from streams.core.contract import Rejected
from streams.core.partitioning import Partitioner
from streams.core.records import REPLAYED, STATE_LIMIT, RecordScorer, decode

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
        #: The worker's steps for a decoded record; the event is both models'.
        self.scorer = RecordScorer(model, shared_events=True)

    def score(
        self, event: dict[str, Any], kind: str, source: str, position: int, at: float
    ) -> None:
        """Step 3 on for one decoded event read at ``source`` (``topic:partition``) and
        ``position`` (its offset), handled ``at``; the lead's decay ticks due before
        ``at`` first."""
        lead_id = event["lead_id"]
        state = self.states.get(lead_id)
        if state is None:
            state = LeadState(lead_id)
        else:
            due = next_change_by(state, self.model, at)  # the bound rules most out: cheap
            if due is not None and due < at:
                self.catch_up(lead_id, at)  # the same state, advanced in place
        try:
            outcome, state, transitions = self.scorer.score(state, event, kind, source, position)
        except Exception:  # the worker dead-letters it and goes on; the state keeps
            self.dead_letters["processing_error"] += 1  # what the engine changed in place
            return
        if outcome == REPLAYED:
            self.outcomes[outcome] += 1
            return
        if outcome == STATE_LIMIT:
            self.dead_letters[outcome] += 1
            return
        self.states[lead_id] = state
        self.handled_at[lead_id] = at
        if transitions:
            self._publish(transitions)
        for reason in state.filtered:  # its own reason first, then what it exposed
            self.bots[reason] += 1
        self.outcomes[outcome] += 1

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
            event = decode(kind, value, at, self.max_future_skew_s)
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
