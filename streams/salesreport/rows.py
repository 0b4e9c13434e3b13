"""The report's figures as plain rows, and how numbers are written: the console table
(:mod:`.table`) and the HTML report (:mod:`.htmlreport`) show the same ones."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Final, NamedTuple

from streams.core.contract import format_time
from streams.salesreport.history import OUTCOMES
from streams.salesreport.kpis import (
    FUNNEL,
    GRADE_FUNNEL,
    MILESTONES,
    Cohort,
    Rate,
    SalesReport,
    Spread,
    spread,
    top_reasons,
)

GRADES: Final = ("A", "B", "C", "D")
#: How the funnel's stages are shown.
STAGE_NAMES: Final = {
    "lead": "lead",
    "mql": "MQL",
    "sql": "SQL",
    "accepted": "accepted (SAL)",
    "opportunity": "opportunity",
    "won": "won",
}
TOP_N: Final = 10
#: A rate with nothing to divide, or a time nothing was measured for.
NONE: Final = "-"


class FunnelCell(NamedTuple):
    leads: int
    #: From the stage before (None for the first stage).
    conversion: Rate | None


def names(report: SalesReport) -> list[str]:
    """The columns: all models, then each model version."""
    return [name for name, _ in report.cohorts()]


def funnel_rows(report: SalesReport) -> list[tuple[str, list[FunnelCell]]]:
    rows = []
    for i, stage in enumerate(FUNNEL):
        cells = [
            FunnelCell(c.funnel[i], c.conversion(stage) if i else None) for _, c in report.cohorts()
        ]
        rows.append((STAGE_NAMES[stage], cells))
    return rows


def rate_rows(report: SalesReport) -> list[tuple[str, list[Rate]]]:
    cohorts = [c for _, c in report.cohorts()]
    return [
        ("lead-to-opportunity rate", [c.lead_to_opportunity for c in cohorts]),
        ("MQL precision", [c.mql_precision for c in cohorts]),
        ("opportunities from MQLs", [c.opportunities_from_mqls for c in cohorts]),
        ("win rate (of closed deals)", [c.win_rate for c in cohorts]),
    ]


def grades_of(cohort: Cohort) -> list[str]:
    return [*GRADES, *sorted(set(cohort.grades) - set(GRADES))]


class GradeRow(NamedTuple):
    grade: str
    mqls: int
    #: MQL -> SQL, SQL -> accepted, accepted -> opportunity, opportunity -> won.
    steps: list[Rate]
    precision: Rate


def grade_rows(cohort: Cohort) -> list[GradeRow]:
    """One row per grade that had MQLs, A to D."""
    return [
        GradeRow(
            grade,
            cohort.grades[grade][0],
            [cohort.grade_conversion(grade, s) for s in GRADE_FUNNEL[1:]],
            cohort.grade_precision(grade),
        )
        for grade in grades_of(cohort)
        if grade in cohort.grades
    ]


def grade_steps() -> list[str]:
    """The names of :class:`GradeRow`'s ``steps``."""
    short = {**STAGE_NAMES, "accepted": "accepted"}
    return [f"{short[a]} → {short[b]}" for a, b in pairwise(GRADE_FUNNEL)]


def stage_rows(report: SalesReport) -> list[tuple[str, list[int]]]:
    """Leads entering each of the model's stages."""
    cohorts = [c for _, c in report.cohorts()]
    return [(stage, [c.entering[stage] for c in cohorts]) for stage in report.stages]


def breach_rows(report: SalesReport) -> list[tuple[str, list[int]]]:
    """Follow-up SLA breaches per stage; none when no stage has had one."""
    cohorts = [c for _, c in report.cohorts()]
    stages = [s for s in report.stages if report.overall.sla_breaches[s]]
    stages += sorted(set(report.overall.sla_breaches) - set(stages))
    return [(stage, [c.sla_breaches[stage] for c in cohorts]) for stage in stages]


def outcome_rows(report: SalesReport) -> list[tuple[str, list[int]]]:
    """Leads with each outcome."""
    cohorts = [c for _, c in report.cohorts()]
    return [(o, [c.outcome_leads[o] for c in cohorts]) for o in OUTCOMES]


def time_rows(report: SalesReport) -> list[tuple[str, list[Spread]]]:
    """Time in each of the model's stages (stays that ended), then between milestones."""
    cohorts = [c for _, c in report.cohorts()]
    rows = [(f"in {s}", [spread(c.stays.get(s, ())) for c in cohorts]) for s in report.stages]
    rows += [
        (name, [spread(c.milestones.get(name, ())) for c in cohorts]) for name, *_ in MILESTONES
    ]
    return rows


def reason_rows(report: SalesReport, outcome: str) -> list[tuple[str, list[int]]]:
    """The top reasons for ``outcome`` overall, with each model version's counts."""
    cohorts = [c for _, c in report.cohorts()]
    return [
        (reason, [c.reasons[outcome][reason] for c in cohorts])
        for reason, _ in top_reasons(report.overall, outcome, TOP_N)
    ]


def skip_note(report: SalesReport) -> str | None:
    """What the MQL -> SQL times count for leads that jumped past MQL; None if none did."""
    n = report.overall.skipped_mql
    if not n:
        return None
    leads = "lead" if n == 1 else "leads"
    return (
        f"MQL → SQL counts {n:,} {leads} that jumped straight into SQL (warm to sql at once) "
        "as 0 s: an MQL and an SQL at the same instant, in the funnel and in MQL precision too"
    )


def headline(report: SalesReport) -> str:
    n = report.counts
    text = (
        f"{n.changes:,} stage changes of {n.leads:,} leads, {n.outcomes:,} outcomes; "
        f"{len(report.models):,} model version{'s' if len(report.models) != 1 else ''}"
    )
    if n.sla_breaches:
        text += f"; {n.sla_breaches:,} SLA breach{'es' if n.sla_breaches != 1 else ''}"
    if report.first_at is not None and report.last_at is not None:
        text += f"; {format_time(report.first_at)} to {format_time(report.last_at)}"
    return text


def notes(report: SalesReport) -> list[str]:
    """What was left out, and why: one line each."""
    n = report.counts
    lines = []
    if n.repeated_changes or n.repeated_outcomes:
        lines.append(
            f"repeats dropped: {n.repeated_changes:,} stage changes (same lead and sequence), "
            f"{n.repeated_outcomes:,} outcomes (same lead and event_id)"
        )
    if n.unmatched_outcomes:
        lines.append(
            f"{n.unmatched_outcomes:,} outcomes of {n.unmatched_leads:,} leads with no stage "
            "change in the input: not counted"
        )
    if n.unmatched_breaches:
        lines.append(
            f"{n.unmatched_breaches:,} SLA breaches of leads with no stage change in the input: "
            "not counted"
        )
    lines += [f"left out: {why} ({count:,})" for why, count in sorted(report.skipped.items())]
    if n.leads and not n.outcomes and not n.unmatched_outcomes:
        # Else "accepted 0 (0.0%)" reads as sales turning every SQL down.
        lines.append(
            "no outcomes in the input (no lead.outcomes, or nothing published to it yet): "
            "the funnel past SQL and the rates that need sales' outcomes have nothing to count"
        )
    return lines


def percent(rate: Rate | None) -> str:
    if rate is None or rate.value is None:
        return NONE
    return f"{rate.value * 100:.1f}%"


def fraction(rate: Rate) -> str:
    """``40.0% (40/100)``."""
    if not rate.whole:
        return NONE
    return f"{percent(rate)} ({rate.part:,}/{rate.whole:,})"


def duration(seconds: float) -> str:
    """A duration in the unit that reads best: ``45 s``, ``12.5 min``, ``3.2 h``, ``4.1 d``."""
    if math.isnan(seconds):
        return NONE
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def median_p90(s: Spread) -> str:
    """``3.2 h / 9.0 h (n=41)``."""
    if not s.n:
        return NONE
    return f"{duration(s.median)} / {duration(s.p90)} (n={s.n:,})"
