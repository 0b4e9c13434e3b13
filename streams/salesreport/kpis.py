"""The KPIs of a sales history, per scoring model version and overall. Pure and
deterministic: a :class:`~streams.salesreport.history.History` in, numbers out.

How a lead is read (docs/kpis.md says it in the domain's words):

- **Repeats.** Stage changes are ordered by ``sequence`` and a repeated number is
  dropped (the contract's rule for at-least-once delivery); outcomes are ordered by
  ``occurred_at`` and a repeated ``event_id`` is dropped (the worker's rule for input).
- **Funnel stages.** ``lead``: the lead's first stage change in the input. ``mql``:
  its first change into the MQL stage or past it (a jump warm -> sql passes MQL: an
  MQL and an SQL at the same instant, MQL -> SQL 0 s, as the live metric observes it).
  ``sql``: its first change into the SQL stage. ``accepted``, ``opportunity``,
  ``won``: its first such outcome, a later one standing for the earlier (an
  opportunity without an ``accepted`` outcome was accepted when it was created).
- **Cohorts.** A lead belongs to the model version of the stage change that made it an
  MQL (else, of its latest stage change): what happened to it later is that
  model's result. Its grade is the grade on that change.
- **The funnel** counts leads that reached a stage *and every stage before it*: a lead
  sales accepted without the model making it an SQL is not an SQL's conversion. Rates
  over whole stages (lead-to-opportunity, MQL precision) count every lead that
  reached them, whatever the path.
- **SLA breaches** (``cause: "sla_breach"``, on the same topic) are not stage changes:
  counted per stage, and the stay they interrupt goes on.
- Outcomes of a lead with no stage change in the input are counted apart (their
  qualification is past the topic's retention, or not leadstream's).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from streams.salesreport.history import Change, History, Outcome

#: The funnel, first stage to last.
FUNNEL: Final = ("lead", "mql", "sql", "accepted", "opportunity", "won")
#: The funnel by grade starts where the grade is read: at the MQL entry.
GRADE_FUNNEL: Final = FUNNEL[1:]
#: (name, from, to): the time between a lead's first entries into two stages.
MILESTONES: Final = (
    ("MQL → SQL", "mql", "sql"),
    ("SQL → contacted", "sql", "contacted"),
    ("SQL → accepted", "sql", "accepted"),
    ("accepted → opportunity", "accepted", "opportunity"),
    ("lead → opportunity", "lead", "opportunity"),
    ("opportunity → won", "opportunity", "won"),
)
#: Outcomes that carry a reason worth ranking.
REASONED: Final = ("rejected", "lost")
NO_REASON: Final = "(no reason given)"
#: The name of the column that adds every model version up.
ALL_MODELS: Final = "all models"


@dataclass(frozen=True, slots=True)
class FunnelStages:
    """Which of the scoring model's stages are the MQL and the SQL stage."""

    mql: str = "mql"
    sql: str = "sql"


class Rate(NamedTuple):
    """``part`` of ``whole``; ``value`` is None when there is no whole to divide."""

    part: int
    whole: int

    @property
    def value(self) -> float | None:
        return self.part / self.whole if self.whole else None


class Spread(NamedTuple):
    """A distribution of durations in seconds: how many, and its quantiles."""

    n: int
    p10: float
    p25: float
    median: float
    p75: float
    p90: float


@dataclass(slots=True)
class Journey:
    """One lead's way through the funnel."""

    model: str
    #: The grade on the change that made it an MQL; None if it never was one.
    grade: str | None
    #: Funnel stage (and ``contacted``, after SQL) -> the first time it got there.
    reached: dict[str, float]
    #: ``won``, ``lost`` (and never won) or None: still open, or never an opportunity.
    closed: str | None
    #: It became an MQL by jumping straight into the SQL stage (warm -> sql): an MQL
    #: and an SQL at the same instant, its MQL -> SQL time 0 s.
    skipped_mql: bool = False


@dataclass(slots=True)
class Cohort:
    """What the leads of one model version (or of all) did."""

    leads: int = 0
    #: Leads that reached each FUNNEL stage and every one before it.
    funnel: list[int] = field(default_factory=lambda: [0] * len(FUNNEL))
    #: Leads that reached each FUNNEL stage, whatever the path.
    reached: Counter[str] = field(default_factory=Counter)
    #: Leads that were MQLs and reached an opportunity.
    mql_opportunities: int = 0
    #: MQLs that became one by jumping straight into SQL (their MQL -> SQL is 0 s).
    skipped_mql: int = 0
    won: int = 0
    lost: int = 0
    #: Grade at MQL entry -> leads along GRADE_FUNNEL (each stage and those before).
    grades: dict[str, list[int]] = field(default_factory=dict)
    #: Grade -> MQLs of that grade that reached an opportunity.
    grade_opportunities: Counter[str] = field(default_factory=Counter)
    #: Model stage -> leads that entered it at least once, and changes into it.
    entering: Counter[str] = field(default_factory=Counter)
    entries: Counter[str] = field(default_factory=Counter)
    #: Model stage -> seconds of every stay that ended (the lead's next change).
    stays: dict[str, list[float]] = field(default_factory=dict)
    #: Model stage -> leads still in it at their last change in the input.
    open_stays: Counter[str] = field(default_factory=Counter)
    #: Model stage -> its follow-up SLA breached (``cause: "sla_breach"`` messages).
    sla_breaches: Counter[str] = field(default_factory=Counter)
    #: MILESTONES name -> seconds, one per lead that made both steps in order.
    milestones: dict[str, list[float]] = field(default_factory=dict)
    #: Outcome -> leads with at least one.
    outcome_leads: Counter[str] = field(default_factory=Counter)
    #: ``rejected`` / ``lost`` -> reason -> outcomes.
    reasons: dict[str, Counter[str]] = field(
        default_factory=lambda: {o: Counter() for o in REASONED}
    )

    def conversion(self, stage: str) -> Rate:
        """Leads that went on from the stage before ``stage`` to it (funnel)."""
        i = FUNNEL.index(stage)
        if i == 0:
            raise ValueError(f"{stage} is the first stage")
        return Rate(self.funnel[i], self.funnel[i - 1])

    def grade_conversion(self, grade: str, stage: str) -> Rate:
        counts = self.grades.get(grade, [0] * len(GRADE_FUNNEL))
        i = GRADE_FUNNEL.index(stage)
        if i == 0:
            raise ValueError(f"{stage} is the first stage by grade")
        return Rate(counts[i], counts[i - 1])

    def grade_precision(self, grade: str) -> Rate:
        """Of this grade's MQLs, those that reached an opportunity."""
        mqls = self.grades.get(grade, [0])[0]
        return Rate(self.grade_opportunities[grade], mqls)

    @property
    def lead_to_opportunity(self) -> Rate:
        return Rate(self.reached["opportunity"], self.leads)

    @property
    def mql_precision(self) -> Rate:
        """Of the MQLs, those that reached an opportunity."""
        return Rate(self.mql_opportunities, self.reached["mql"])

    @property
    def opportunities_from_mqls(self) -> Rate:
        """Of the opportunities, those the model had made MQLs: what it did not miss."""
        return Rate(self.mql_opportunities, self.reached["opportunity"])

    @property
    def win_rate(self) -> Rate:
        """Won of the opportunities closed (won or lost)."""
        return Rate(self.won, self.won + self.lost)

    def add(self, journey: Journey, changes: Sequence[Change], outcomes: Sequence[Outcome]) -> None:
        """Count one lead (its changes and outcomes ordered, without repeats)."""
        self.leads += 1
        reached = journey.reached
        counts = self.reached
        for stage in FUNNEL:
            if stage in reached:
                counts[stage] += 1
        _along(self.funnel, FUNNEL, reached)
        if journey.grade is not None:
            by_grade = self.grades.get(journey.grade)
            if by_grade is None:
                by_grade = self.grades[journey.grade] = [0] * len(GRADE_FUNNEL)
            _along(by_grade, GRADE_FUNNEL, reached)
            if "opportunity" in reached:
                self.mql_opportunities += 1
                self.grade_opportunities[journey.grade] += 1
        self.skipped_mql += journey.skipped_mql
        if journey.closed == "won":
            self.won += 1
        elif journey.closed == "lost":
            self.lost += 1
        for name, start, end in MILESTONES:
            if start in reached and end in reached and reached[end] >= reached[start]:
                self.milestones.setdefault(name, []).append(reached[end] - reached[start])
        self._add_stages(changes)
        self._add_outcomes(outcomes)

    def _add_stages(self, changes: Sequence[Change]) -> None:
        """Entries, stays and SLA breaches of one lead's messages (by sequence)."""
        entries, stays = self.entries, self.stays
        previous: Change | None = None
        unbroken, last = True, changes[0].sequence - 1
        for c in changes:
            # A gap in the numbers is a message not in the input: this stay's end is unknown.
            unbroken = unbroken and c.sequence == last + 1
            last = c.sequence
            if c.breach:  # the stay goes on
                self.sla_breaches[c.to_stage] += 1
                continue
            entries[c.to_stage] += 1
            if previous is not None and unbroken and c.at >= previous.at:
                stay = stays.get(previous.to_stage)
                if stay is None:
                    stay = stays[previous.to_stage] = []
                stay.append(c.at - previous.at)
            previous, unbroken = c, True
        for stage in {c.to_stage for c in changes if not c.breach}:
            self.entering[stage] += 1
        if previous is not None:
            self.open_stays[previous.to_stage] += 1

    def _add_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in {o.outcome for o in outcomes}:
            self.outcome_leads[outcome] += 1
        for o in outcomes:
            if o.outcome in self.reasons:
                self.reasons[o.outcome][o.reason or NO_REASON] += 1

    def merge(self, other: Cohort) -> None:
        """Add ``other``'s leads to this cohort's."""
        self.leads += other.leads
        self.funnel = [a + b for a, b in zip(self.funnel, other.funnel, strict=True)]
        self.mql_opportunities += other.mql_opportunities
        self.skipped_mql += other.skipped_mql
        self.won += other.won
        self.lost += other.lost
        for grade, counts in other.grades.items():
            mine = self.grades.setdefault(grade, [0] * len(GRADE_FUNNEL))
            self.grades[grade] = [a + b for a, b in zip(mine, counts, strict=True)]
        counters = ("reached", "grade_opportunities", "entering", "entries", "open_stays")
        for name in (*counters, "sla_breaches"):
            getattr(self, name).update(getattr(other, name))
        for mine_lists, theirs in ((self.stays, other.stays), (self.milestones, other.milestones)):
            for key, values in theirs.items():
                mine_lists.setdefault(key, []).extend(values)
        self.outcome_leads.update(other.outcome_leads)
        for outcome, reasons in other.reasons.items():
            self.reasons[outcome].update(reasons)


def _along(counts: list[int], stages: Sequence[str], reached: dict[str, float]) -> None:
    """Count a lead at each of ``stages`` it reached with every one before it."""
    for i, stage in enumerate(stages):
        if stage not in reached:
            return
        counts[i] += 1


@dataclass(frozen=True, slots=True)
class Counts:
    """What the report read, and what it used."""

    leads: int
    #: Stage changes, and SLA breaches (on the same topic, not stage changes).
    changes: int
    sla_breaches: int
    repeated_changes: int
    outcomes: int
    repeated_outcomes: int
    #: Outcomes (and their leads) with no stage change of the lead in the input.
    unmatched_outcomes: int
    unmatched_leads: int
    #: SLA breaches of leads with no stage change in the input.
    unmatched_breaches: int = 0


@dataclass(slots=True)
class SalesReport:
    """Every KPI, per model version (in the order they first published) and overall."""

    overall: Cohort
    models: dict[str, Cohort]
    #: The stages seen on ``lead.qualified``, low to high.
    stages: list[str]
    counts: Counts
    skipped: Counter[str]
    first_at: float | None
    last_at: float | None

    def cohorts(self) -> list[tuple[str, Cohort]]:
        """``all models`` first, then each model version; the one model version alone
        when only one published (the two would show the same)."""
        if len(self.models) == 1:
            return list(self.models.items())
        return [(ALL_MODELS, self.overall), *self.models.items()]


def compute(history: History, stages: FunnelStages | None = None) -> SalesReport:
    """The report of ``history``; ``stages`` names the MQL and SQL stages."""
    stages = stages or FunnelStages()
    models: dict[str, Cohort] = {}
    first_seen: dict[str, float] = {}
    changes_used = outcomes_used = breaches = unmatched_breaches = leads = 0
    first_at, last_at = math.inf, -math.inf
    # By lead id: the durations' lists, not only their quantiles, are the same
    # whatever order the records were read in.
    for lead in sorted(history.changes):
        changes = unique_changes(history.changes[lead])
        moves = [c for c in changes if not c.breach]
        if not moves:  # its stage changes are past the topic's retention
            unmatched_breaches += len(changes)
            continue
        outcomes = unique_outcomes(history.outcomes.get(lead, ()))
        journey = journey_of(moves, outcomes, stages)
        cohort = models.get(journey.model)
        if cohort is None:
            cohort = models[journey.model] = Cohort()
        cohort.add(journey, changes, outcomes)
        for c in changes:
            if c.at < first_seen.get(c.model, math.inf):
                first_seen[c.model] = c.at
        changes_used += len(moves)
        breaches += len(changes) - len(moves)
        leads += 1
        outcomes_used += len(outcomes)
        first_at = min(first_at, changes[0].at, outcomes[0].at if outcomes else math.inf)
        last_at = max(last_at, changes[-1].at, outcomes[-1].at if outcomes else -math.inf)
    unmatched = {lead: v for lead, v in history.outcomes.items() if lead not in history.changes}
    unmatched_n = sum(len(unique_outcomes(v)) for v in unmatched.values())
    overall = Cohort()
    ordered = sorted(models, key=lambda m: (first_seen.get(m, math.inf), m))
    for cohort in models.values():
        overall.merge(cohort)
    all_outcomes = sum(len(v) for v in history.outcomes.values())
    counts = Counts(
        leads=leads,
        changes=changes_used,
        sla_breaches=breaches,
        repeated_changes=sum(len(v) for v in history.changes.values())
        - (changes_used + breaches + unmatched_breaches),
        outcomes=outcomes_used,
        repeated_outcomes=all_outcomes - outcomes_used - unmatched_n,
        unmatched_outcomes=unmatched_n,
        unmatched_leads=len(unmatched),
        unmatched_breaches=unmatched_breaches,
    )
    return SalesReport(
        overall,
        {m: models[m] for m in ordered},
        stage_order(overall.entering, stages),
        counts,
        Counter(history.skipped),
        first_at if changes_used else None,
        last_at if changes_used else None,
    )


def unique_changes(changes: Iterable[Change]) -> list[Change]:
    """A lead's stage changes by ``sequence``, each number once (the first read)."""
    out: list[Change] = []
    for c in sorted(changes, key=lambda c: c.sequence):
        if not out or c.sequence != out[-1].sequence:
            out.append(c)
    return out


def unique_outcomes(outcomes: Iterable[Outcome]) -> list[Outcome]:
    """A lead's outcomes by time (then id, for ties), each ``event_id`` once."""
    seen: dict[str, Outcome] = {}
    for o in outcomes:
        seen.setdefault(o.event_id, o)
    return sorted(seen.values(), key=lambda o: (o.at, o.event_id))


def journey_of(
    changes: Sequence[Change], outcomes: Sequence[Outcome], stages: FunnelStages
) -> Journey:
    """Where a lead got and when (``changes`` ordered by sequence, at least one;
    ``outcomes`` by time)."""
    reached = {"lead": changes[0].at}
    qualifying: Change | None = None
    for c in changes:
        if c.to_stage == stages.sql and "sql" not in reached:
            reached["sql"] = c.at
        if qualifying is None and c.to_stage in (stages.mql, stages.sql):
            qualifying = c
    if qualifying is not None:
        reached["mql"] = qualifying.at
    first: dict[str, float] = {}
    for o in outcomes:
        first.setdefault(o.outcome, o.at)
    # A later sales stage stands for the earlier ones (a won deal was an opportunity).
    for stage, outcome, later in (
        ("won", "won", None),
        ("opportunity", "opportunity_created", "won"),
        ("accepted", "accepted", "opportunity"),
    ):
        at = min(first.get(outcome, math.inf), reached.get(later or "", math.inf))
        if at < math.inf:
            reached[stage] = at
    if "sql" in reached:
        sql_at = reached["sql"]
        contact = next(
            (o.at for o in outcomes if o.outcome == "contacted" and o.at >= sql_at), None
        )
        if contact is not None:
            reached["contacted"] = contact
    closed = "won" if "won" in first else "lost" if "lost" in first else None
    model = (qualifying or changes[-1]).model
    grade = qualifying.grade if qualifying else None
    skipped = qualifying is not None and qualifying.to_stage == stages.sql
    return Journey(model, grade, reached, closed, skipped)


#: Stage names below MQL and above SQL in the bundled model and in docs/scoring-model.md's
#: sales stages, in their order.
_BELOW_MQL: Final = ("cold", "warm")
_ABOVE_SQL: Final = ("accepted", "opportunity", "customer")


def stage_order(seen: Iterable[str], stages: FunnelStages) -> list[str]:
    """The stages ``seen`` low to high, as far as a report can tell without the model:
    cold, warm, MQL, SQL, accepted, opportunity, customer, then the others by name,
    disqualified last."""
    seen = set(seen)
    order = (*_BELOW_MQL, stages.mql, stages.sql, *_ABOVE_SQL)
    known = [s for s in order if s in seen]
    rest = sorted(seen - set(known), key=lambda s: (s == "disqualified", s))
    return known + rest


def quantile(ordered: Sequence[float], q: float) -> float:
    """Linear between the closest ranks (numpy's default): the median of 1, 2 is 1.5."""
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def spread(values: Iterable[float]) -> Spread:
    ordered = sorted(values)
    q = [quantile(ordered, p) for p in (0.1, 0.25, 0.5, 0.75, 0.9)]
    return Spread(len(ordered), *q)


def top_reasons(cohort: Cohort, outcome: str, n: int = 10) -> list[tuple[str, int]]:
    """The ``n`` most frequent reasons for ``outcome``, ties by name."""
    counts = cohort.reasons[outcome]
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
