"""What a replay found, per model and side by side: counted per shard, then merged.

Everything here is a count or a list of scores, so shards merge by adding up, and a
preview reads the same whatever the number of shards (samples of lead ids are the
smallest ids, not the first seen).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from scoring import Transition
from streams.core.contract import format_time
from streams.modelpreview.replay import LeadResult

#: Lead ids listed per stage move.
SAMPLE_SIZE = 10
#: A lead one model scored and the other never did (a record only one of them could
#: process): its stage under the other.
NOT_SCORED = "(not scored)"


@dataclass
class ModelTally:
    """One model's replay: its input outcomes, stage changes, and leads at ``now``."""

    #: Input records by the worker's outcome (scored, duplicate, late, bot,
    #: replayed, rerouted, tick), as its ``leadstream_events_total`` would count them.
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Dead letters by reason (``leadstream_dlq_total``).
    dead_letters: Counter[str] = field(default_factory=Counter)
    #: Events filtered as bots, by reason (``leadstream_bots_filtered_total``).
    bots: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    grades: Counter[str] = field(default_factory=Counter)
    #: Stage changes published, by UTC day of ``changed_at`` (YYYY-MM-DD).
    changes_by_day: Counter[str] = field(default_factory=Counter)
    changes_by_pair: Counter[tuple[str, str]] = field(default_factory=Counter)
    changes_by_cause: Counter[str] = field(default_factory=Counter)
    #: Every lead's score at ``now``.
    scores: array[float] = field(default_factory=lambda: array("d"))

    def count_change(self, change: Transition) -> None:
        """One stage change the worker would have published."""
        self.changes_by_day[format_time(change["changed_at"])[:10]] += 1
        self.changes_by_pair[change["from_stage"], change["to_stage"]] += 1
        self.changes_by_cause[change["cause"]] += 1

    def count_lead(self, lead: LeadResult) -> None:
        self.stages[lead.stage] += 1
        self.grades[lead.grade] += 1
        self.scores.append(lead.score)

    @property
    def changes(self) -> int:
        return sum(self.changes_by_day.values())

    def merge(self, other: ModelTally) -> None:
        for mine, theirs in (
            (self.outcomes, other.outcomes),
            (self.dead_letters, other.dead_letters),
            (self.bots, other.bots),
            (self.stages, other.stages),
            (self.grades, other.grades),
            (self.changes_by_day, other.changes_by_day),
            (self.changes_by_pair, other.changes_by_pair),
            (self.changes_by_cause, other.changes_by_cause),
        ):
            mine.update(theirs)  # type: ignore[arg-type]
        self.scores.extend(other.scores)


@dataclass
class Moves:
    """Leads whose stage (or grade) at ``now`` differs between the two models."""

    #: (stage under the current model, under the candidate) -> leads
    stages: Counter[tuple[str, str]] = field(default_factory=Counter)
    samples: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    grades: Counter[tuple[str, str]] = field(default_factory=Counter)

    def count(
        self,
        current: LeadResult | None,
        candidate: LeadResult | None,
        renamed: Mapping[str, str] | None = None,
    ) -> None:
        """One lead under both models; ``renamed``: the candidate's old stage names ->
        new (``renamed_from``): a lead in a renamed stage has not moved."""
        lead = (current or candidate).lead_id  # type: ignore[union-attr]
        old = current.stage if current else NOT_SCORED
        new = candidate.stage if candidate else NOT_SCORED
        if old != new and (renamed is None or renamed.get(old) != new):
            self.stages[old, new] += 1
            self.samples.setdefault((old, new), []).append(lead)
        old_grade = current.grade if current else NOT_SCORED
        new_grade = candidate.grade if candidate else NOT_SCORED
        if old_grade != new_grade:
            self.grades[old_grade, new_grade] += 1

    def trim(self) -> None:
        """Keep the :data:`SAMPLE_SIZE` smallest lead ids of each move."""
        for pair, leads in self.samples.items():
            self.samples[pair] = sorted(leads)[:SAMPLE_SIZE]

    def merge(self, other: Moves) -> None:
        self.stages.update(other.stages)
        self.grades.update(other.grades)
        for pair, leads in other.samples.items():
            self.samples[pair] = sorted([*self.samples.get(pair, []), *leads])[:SAMPLE_SIZE]

    @property
    def leads(self) -> int:
        return sum(self.stages.values())


@dataclass
class PreviewResult:
    """A whole preview (or one shard of it): both models' tallies and the moves."""

    records: int = 0
    leads: int = 0
    #: The newest event time in the input (see ``shard.newest_event_time``); None: none.
    newest_event: float | None = None
    #: When every lead was evaluated.
    now: float = 0.0
    current: ModelTally = field(default_factory=ModelTally)
    candidate: ModelTally = field(default_factory=ModelTally)
    moves: Moves = field(default_factory=Moves)

    def merge(self, other: PreviewResult) -> None:
        self.records += other.records
        self.leads += other.leads
        self.newest_event = _newest(self.newest_event, other.newest_event)
        self.now = max(self.now, other.now)
        self.current.merge(other.current)
        self.candidate.merge(other.candidate)
        self.moves.merge(other.moves)


def _newest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def merged(results: list[PreviewResult]) -> PreviewResult:
    out = PreviewResult()
    for result in results:
        out.merge(result)
    return out
