"""Turns a batch of Kafka messages into scoring calls and the writes they cause.

This is the whole per-event path of the worker, kept free of Faust so it can be
driven by the agent, by unit tests and by the benchmark alike. For each message it
decodes and validates (``streams.core.contract``), routes it (dead letter, repartition,
tick, score), and calls ``scoring``; it collects what must leave the batch:

- ``qualified``: ``lead.qualified`` messages (key, value);
- ``dead``: dead-letter messages (key, original bytes, headers);
- ``reroute``: events that reached the wrong partition, to be re-sent keyed by lead;
- ``touched``: leads whose state changed (the caller writes each once per window).

Counting is per batch in plain ints and flushed to Prometheus once per batch:
per-event metric calls cost more than the scoring of a simple event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from scoring import LeadState, ScoringModel, advance, apply
from streams.core import contract
from streams.core.partitioning import Partitioner
from streams.metrics import Metrics

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


class Pipeline:
    """Stateless between batches except for the state cache it is handed."""

    def __init__(
        self,
        *,
        model: ScoringModel,
        metrics: Metrics,
        partitioner: Partitioner,
        max_future_skew_s: float,
    ) -> None:
        self.model = model
        self.metrics = metrics
        self.partitioner = partitioner
        self.max_future_skew_s = max_future_skew_s

    def process(self, messages: Iterable[Message], *, now: float, load: StateLoader) -> BatchResult:
        """Score one batch. ``load(lead_id, index)`` returns the stored state or None."""
        model = self.model
        out = BatchResult()
        touched = out.touched
        counts: dict[tuple[str, str], int] = {}
        dlq_counts: dict[tuple[str, str], int] = {}
        lags: list[float] = []
        partition_of = self.partitioner.partition_of
        decode = contract.decode_event
        skew = self.max_future_skew_s

        for index, msg in enumerate(messages):
            kind = msg.kind
            if kind == TICK_KIND:
                lead_id = (msg.key or b"").decode()
                entry = touched.get(lead_id)
                state = entry[0] if entry else load(lead_id, index)
                if state is None:
                    continue
                source, position = msg.origin
                if position <= state.applied.get(source, -1):
                    _bump(counts, (msg.topic, "replayed"))
                    continue
                state.applied[source] = position
                before = len(out.qualified)
                state, transitions = advance(state, now, model)
                self._emit(out, transitions, now)
                if len(out.qualified) != before:
                    self.metrics.decay_timer_delay.observe(
                        max(0.0, now - transitions[0]["changed_at"])
                    )
                touched[lead_id] = (state, msg.partition, index)
                _bump(counts, (msg.topic, "tick"))
                continue
            try:
                event = decode(kind, msg.value, now=now, max_future_skew_s=skew)
            except contract.Rejected as rejected:
                out.dead.append(
                    (
                        msg.key,
                        msg.value,
                        contract.dlq_headers(
                            rejected.reason,
                            rejected.detail,
                            topic=msg.topic,
                            partition=msg.partition,
                            offset=msg.offset,
                            failed_at=now,
                        ),
                    )
                )
                _bump(dlq_counts, (msg.topic, rejected.reason))
                continue
            lead_id = event["lead_id"]
            if partition_of(lead_id) != msg.partition:
                # Keyed otherwise (or by a non-murmur2 partitioner): one lead's state
                # must live in one partition, so send it round again keyed by lead.
                source, position = msg.origin
                headers = [
                    (KIND_HEADER, kind.encode()),
                    (ORIGIN_HEADER, f"{source}:{position}".encode()),
                ]
                out.reroute.append((lead_id.encode(), msg.value, headers))
                _bump(counts, (msg.topic, "rerouted"))
                continue
            entry = touched.get(lead_id)
            if entry is not None:
                state = entry[0]
            else:
                loaded = load(lead_id, index)
                state = loaded if loaded is not None else LeadState(lead_id)
            source, position = msg.origin
            applied = state.applied
            if position <= applied.get(source, -1):
                # Applied before a crash or rebalance, and stored with the state.
                _bump(counts, (msg.topic, "replayed"))
                continue
            seen_before = state.events_seen
            late_before = state.late_dropped
            state, transitions = apply(state, event, model)
            applied[source] = position
            if transitions:
                self._emit(out, transitions, now)
            if state.late_dropped != late_before:
                outcome = "late"
            elif state.events_seen == seen_before:
                outcome = "duplicate"
            else:
                outcome = "scored"
                lags.append(now - event["time"])
            touched[lead_id] = (state, msg.partition, index)
            _bump(counts, (msg.topic, outcome))

        self._flush_counts(counts, dlq_counts, lags)
        return out

    def _emit(self, out: BatchResult, transitions: list[Any], now: float) -> None:
        inc = self.metrics.transitions.labels
        for transition in transitions:
            out.qualified.append(
                (
                    transition["lead_id"].encode(),
                    contract.encode_transition(transition, emitted_at=now),
                )
            )
            inc(transition["from_stage"], transition["to_stage"], transition["cause"]).inc()

    def _flush_counts(
        self,
        counts: dict[tuple[str, str], int],
        dlq_counts: dict[tuple[str, str], int],
        lags: list[float],
    ) -> None:
        m = self.metrics
        for (topic, outcome), n in counts.items():
            m.events.labels(topic, outcome).inc(n)
        for (topic, reason), n in dlq_counts.items():
            m.dlq.labels(topic, reason).inc(n)
        # Observing every event's lag would dominate a cheap event's cost; a bounded
        # sample per batch keeps the histogram's shape.
        step = max(1, len(lags) // 64)
        for lag in lags[::step]:
            m.event_lag.observe(lag)


def _bump(counts: dict[tuple[str, str], int], key: tuple[str, str]) -> None:
    counts[key] = counts.get(key, 0) + 1
