"""Turns a batch of Kafka messages into scoring calls and the writes they cause.

This is the whole per-event path of the worker, kept free of Faust so it can be
driven by the agent, by unit tests and by the benchmark alike. For each message it
decodes and validates, routes it (dead letter, repartition, tick, score), and scores
it; the decisions about one record are ``streams.core.records``' (shared with the
model preview), and this module collects what must leave the batch:

- ``qualified``: ``lead.qualified`` messages (key, value);
- ``dead``: dead-letter messages (key, original bytes, headers);
- ``reroute``: events that reached the wrong partition, to be re-sent keyed by lead;
- ``touched``: leads whose state changed (the caller writes each once per window).

Counting is per batch in plain ints and flushed to Prometheus once per batch:
per-event metric calls cost more than the scoring of a simple event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from scoring import LeadState, ScoringModel, advance, apply, restate
from scoring.migrate import migrate
from streams.core import contract
from streams.core.bots import BotMarker
from streams.core.partitioning import Partitioner
from streams.core.records import (
    REPLAYED,
    SCORED,
    STATE_LIMIT,
    STATE_LIMIT_DETAIL,
    RecordScorer,
    decode,
)
from streams.metrics import KPI_SPANS, Metrics

log = logging.getLogger("leadstream")

#: Header carrying the input kind of a repartitioned event (the repartition topic
#: mixes all four inputs).
KIND_HEADER = "leadstream.kind"
#: Header carrying where a repartitioned event was first read,
#: ``<topic>:<partition>:<offset>``: a lead's state records positions by that origin,
#: so an event rerouted twice (its origin re-read after a crash) is applied once.
ORIGIN_HEADER = "leadstream.origin"
#: Tick value: the scheduled due time as ASCII seconds (informative; ``advance``
#: always runs to the processing time).
TICK_KIND = "tick"


class Message(NamedTuple):
    """The parts of a Kafka record the pipeline needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    kind: str  # web | email | webinar | profile | tick
    #: Where the record was first read, ``<topic>:<partition>``, and at which offset
    #: ("" and -1: here, at ``offset``). A lead's state skips a record whose position
    #: is at or below what it has applied from that source (a replay after a crash).
    source: str = ""
    position: int = -1

    @property
    def origin(self) -> tuple[str, int]:
        """(source, position) this record is deduplicated by."""
        if self.source:
            return self.source, self.position
        return f"{self.topic}:{self.partition}", self.offset


@dataclass(slots=True)
class BatchResult:
    qualified: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    reroute: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    #: lead_id -> (state, partition, index of the last message that touched it); the
    #: caller writes them and reschedules their decay (``next_change_at``)
    touched: dict[str, tuple[LeadState, int, int]] = field(default_factory=dict)


StateLoader = Callable[[str, int], LeadState | None]
#: ``fall_back(lead_id, partition)`` after an error scoring a lead: memory forgets the
#: lead and from now on holds its last good state (written, or being written). Returns
#: the states memory held of it (what the failed call may have changed) and that last
#: good state (None: the lead has none).
FallBack = Callable[[str, int], tuple[list[LeadState], LeadState | None]]


@dataclass(slots=True)
class _BatchRun:
    """What one ``Pipeline.process`` call accumulates."""

    now: float
    load: StateLoader
    fall_back: FallBack | None = None
    out: BatchResult = field(default_factory=BatchResult)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    dlq_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    bot_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)


class Pipeline:
    """Stateless between batches except for the state cache it is handed."""

    def __init__(
        self,
        *,
        model: ScoringModel,
        metrics: Metrics,
        partitioner: Partitioner,
        max_future_skew_s: float,
        max_dead_letter_bytes: int = 512 * 1024,
        bot_marker: BotMarker | None = None,
    ) -> None:
        self.model = model
        #: The per-record steps from decoding on, shared with the model preview.
        self.scorer = RecordScorer(model, bot_marker=bot_marker)
        #: Marks events whose user agent is a known crawler's (see RecordScorer).
        self.marker = self.scorer.marker
        self.metrics = metrics
        self.partitioner = partitioner
        self.max_future_skew_s = max_future_skew_s
        #: Longer dead-letter values are truncated (see contract.fit_dead_letter).
        self.max_dead_letter_bytes = max_dead_letter_bytes

    def process(
        self,
        messages: Iterable[Message],
        *,
        now: float,
        load: StateLoader,
        fall_back: FallBack | None = None,
    ) -> BatchResult:
        """Score one batch. ``load(lead_id, index)`` returns the lead's state or None.

        A record that cannot be scored (invalid, malformed internal record, past a
        state bound, or an error while scoring it) becomes a dead letter; the rest of
        the batch goes on. After an error the lead falls back to its last good state
        (``fall_back``; without it, ``load``'s), and the offsets of the events it loses
        become dead letters too (see :meth:`_lost`).
        """
        batch = _BatchRun(now=now, load=load, fall_back=fall_back)
        for index, msg in enumerate(messages):
            try:
                if msg.kind == TICK_KIND:
                    self._tick(batch, index, msg)
                else:
                    self._score(batch, index, msg)
            except Exception as exc:  # a bug, or a model the state does not fit
                # Never one record taking the worker, or the batch, down with it.
                log.warning(
                    "leadstream: scoring %s[%d]@%d failed: %s; dead-lettered",
                    msg.topic,
                    msg.partition,
                    msg.offset,
                    type(exc).__name__,
                )
                self._reject(batch, msg, "processing_error", type(exc).__name__)
                self._lost(batch, index, msg, type(exc).__name__)
        self._flush_counts(batch)
        return batch.out

    def _lost(self, batch: _BatchRun, index: int, msg: Message, error: str) -> None:
        """After an error scoring ``msg``: its lead falls back to its last good state.

        The engine works in place, so a state in memory (cached, or changed earlier
        in the batch) may hold half of what the failed call did: it is forgotten, and
        the events applied since the last good state are dead-lettered as offset
        ranges (``lost_events``). Only this error path decodes the record again."""
        lead_id = self._lead_of(msg, batch.now)
        if lead_id is None:
            return  # failed before its lead was known: no state was touched
        entry = batch.out.touched.pop(lead_id, None)
        if batch.fall_back is not None:
            held, good = batch.fall_back(lead_id, msg.partition)
        else:
            held, good = [], batch.load(lead_id, index)
        if entry is not None:
            held.append(entry[0])
        write, transitions, dead = settle(
            lead_id, held, good, self.model, batch.now, f"lead state fell back after {error}"
        )
        if write is not None:  # renumbered, and maybe moved back: written, published
            self.emit_transitions(batch.out, transitions, batch.now, write)
            batch.out.touched[lead_id] = (write, msg.partition, index)
        for topic, key, value, headers in dead:
            batch.out.dead.append((key, value, headers))
            _bump(batch.dlq_counts, (topic, "processing_error"))

    def _lead_of(self, msg: Message, now: float) -> str | None:
        try:
            if msg.kind == TICK_KIND:
                return (msg.key or b"").decode()
            lead_id: str = decode(msg.kind, msg.value, now, self.max_future_skew_s)["lead_id"]
            return lead_id
        except Exception:
            return None

    def _tick(self, batch: _BatchRun, index: int, msg: Message) -> None:
        """Advance a lead whose decay change is due (a record on the tick topic)."""
        try:
            lead_id = (msg.key or b"").decode()
        except UnicodeDecodeError:
            self._reject(batch, msg, "invalid_internal_record", "key is not UTF-8")
            return
        touched = batch.out.touched
        entry = touched.get(lead_id)
        state = entry[0] if entry else self._loaded(batch, lead_id, index, msg.partition)
        if state is None:
            return
        source, position = msg.origin
        if position <= state.applied.get(source, -1):
            _bump(batch.counts, (msg.topic, "replayed"))
            return
        state, transitions = advance(state, batch.now, self.model)
        state.applied[source] = position
        if transitions:
            self.emit_transitions(batch.out, transitions, batch.now, state)
            delay = max(0.0, batch.now - transitions[0]["changed_at"])
            self.metrics.decay_timer_delay.observe(delay)
        touched[lead_id] = (state, msg.partition, index)
        _bump(batch.counts, (msg.topic, "tick"))

    def _score(self, batch: _BatchRun, index: int, msg: Message) -> None:
        """Decode, route and score one input record (the steps: ``streams.core.records``)."""
        kind = msg.kind
        try:
            event = decode(kind, msg.value, batch.now, self.max_future_skew_s)
        except contract.Rejected as rejected:
            self._reject(batch, msg, rejected.reason, rejected.detail)
            return
        lead_id = event["lead_id"]
        if self.partitioner.partition_of(lead_id) != msg.partition:
            # Keyed otherwise (or by a non-murmur2 partitioner): one lead's state
            # must live in one partition, so send it round again keyed by lead.
            source, position = msg.origin
            headers = [
                (KIND_HEADER, kind.encode()),
                (ORIGIN_HEADER, f"{source}:{position}".encode()),
            ]
            batch.out.reroute.append((lead_id.encode(), msg.value, headers))
            _bump(batch.counts, (msg.topic, "rerouted"))
            return
        touched = batch.out.touched
        entry = touched.get(lead_id)
        if entry is not None:
            state = entry[0]
        else:
            loaded = self._loaded(batch, lead_id, index, msg.partition)
            state = loaded if loaded is not None else LeadState(lead_id)
        source, position = msg.origin
        outcome, state, transitions = self.scorer.score(state, event, kind, source, position, apply)
        if outcome == STATE_LIMIT:
            self._reject(batch, msg, STATE_LIMIT, STATE_LIMIT_DETAIL)
            return
        if outcome == REPLAYED:
            _bump(batch.counts, (msg.topic, outcome))
            return
        if transitions:
            self.emit_transitions(batch.out, transitions, batch.now, state)
        if state.filtered:  # this event's reason first, then earlier ones it exposed
            for reason in state.filtered:
                _bump(batch.bot_counts, (msg.topic, reason))
        if outcome == SCORED:
            batch.lags.append(batch.now - event["time"])
        touched[lead_id] = (state, msg.partition, index)
        _bump(batch.counts, (msg.topic, outcome))

    def _loaded(
        self, batch: _BatchRun, lead_id: str, index: int, partition: int
    ) -> LeadState | None:
        """The lead's stored state, carried over to this model first if it was scored
        under another (a model edit): what that changes is published at once, and
        the migrated state is written even if the record turns out a replay."""
        state = batch.load(lead_id, index)
        if state is not None and state.model != self.model.fingerprint:
            transitions = migrate(state, self.model, batch.now)
            self.metrics.migrated.inc()
            if transitions:
                self.emit_transitions(batch.out, transitions, batch.now, state)
            batch.out.touched[lead_id] = (state, partition, index)
        return state

    def _reject(self, batch: _BatchRun, msg: Message, reason: str, detail: str) -> None:
        """Send ``msg`` to the dead-letter topic with ``reason`` (truncated if too large)."""
        headers = contract.dlq_headers(
            reason,
            detail,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            failed_at=batch.now,
        )
        value, headers = contract.fit_dead_letter(msg.value, headers, self.max_dead_letter_bytes)
        batch.out.dead.append((msg.key, value, headers))
        _bump(batch.dlq_counts, (msg.topic, reason))

    def emit_transitions(
        self, out: BatchResult, transitions: list[Any], now: float, state: LeadState
    ) -> None:
        m = self.metrics
        for transition in transitions:
            out.qualified.append(
                (
                    transition["lead_id"].encode(),
                    contract.encode_transition(transition, emitted_at=now),
                )
            )
            old, new = transition["from_stage"], transition["to_stage"]
            if transition["cause"] == "sla_breach":  # an alert, not a stage change
                m.sla_breaches.labels(new).inc()
                continue
            m.transitions.labels(old, new, transition["cause"]).inc()
            if transition["cause"] == "restored":  # a correction: no funnel entry
                continue
            m.stage_entries.labels(new, transition["grade"], transition["model_version"]).inc()
            _observe_spans(m, transition, state, self.model.stage_rank)

    def _flush_counts(self, batch: _BatchRun) -> None:
        m = self.metrics
        lags = batch.lags
        for (topic, outcome), n in batch.counts.items():
            m.events.labels(topic, outcome).inc(n)
        for (topic, reason), n in batch.dlq_counts.items():
            m.dlq.labels(topic, reason).inc(n)
        for (topic, reason), n in batch.bot_counts.items():
            m.bots.labels(topic, reason).inc(n)
        # Observing every event's lag would dominate a cheap event's cost; a bounded
        # sample per batch keeps the histogram's shape.
        step = max(1, len(lags) // 64)
        for lag in lags[::step]:
            m.event_lag.observe(lag)


def settle(
    lead_id: str,
    held: list[LeadState],
    good: LeadState | None,
    model: ScoringModel,
    now: float,
    detail: str,
) -> tuple[LeadState | None, list[Any], list[contract.LostEvents]]:
    """What a lead owes once it fell back to ``good`` (its last good state; None: it
    has none) from the states ``held`` (given up after an error scoring or encoding
    it): the events applied since, as dead letters (``lost_events``), and, when the
    given-up states had published stage changes past ``good``, the lead renumbered
    after them with the change that says where it is (``scoring.restate``). Returns
    (the state to write, or None if nothing changed; the stage changes; the dead
    letters)."""
    dead = contract.lost_events(
        lead_id,
        [state.applied for state in held],
        good.applied if good is not None else {},
        detail,
        failed_at=now,
    )
    shown = max(held, key=lambda state: state.changes, default=None)
    if shown is None or shown.changes <= (good.changes if good is not None else 0):
        return None, [], dead
    write = good if good is not None else LeadState(lead_id)
    return write, restate(write, shown, now, model), dead


def _observe_spans(m: Metrics, transition: Any, state: LeadState, rank: Mapping[str, int]) -> None:
    """The time-to-stage KPIs a stage change completes. The state is the lead's after
    the call that made the change: its entry time of the stage left is still that
    stay's (a stage is entered again only by a later change). A lead that passes a
    span's first stage in the same step (warm -> sql: it met MQL and SQL at once)
    completes that span in 0 s, as ``leadstream report`` counts it."""
    old, new, at = transition["from_stage"], transition["to_stage"], transition["changed_at"]
    for span, start, end in KPI_SPANS:
        if new != end:
            continue
        if start == "lead":
            since = state.since
        elif start == old:
            since = state.entered.get(old)
        elif -1 < rank.get(old, -1) < rank.get(start, -1):
            since = at  # skipped
        else:
            continue
        if since is not None and since <= at:
            m.time_to_stage.labels(span).observe(at - since)


def _bump(counts: dict[tuple[str, str], int], key: tuple[str, str]) -> None:
    counts[key] = counts.get(key, 0) + 1
