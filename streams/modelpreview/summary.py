"""The figures a preview shows, as plain rows: the console table and the HTML report
show the same ones (``streams.modelpreview.console``, ``streams.modelpreview.report``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scoring import ScoringModel
from streams.core.contract import format_time
from streams.modelpreview.tally import NOT_SCORED, ModelTally, PreviewResult

GRADES = ("A", "B", "C", "D")
#: Bars of the score histograms.
HISTOGRAM_BINS = 40
#: Causes of stage changes, in the order they are listed (``lead.qualified``'s).
CAUSES = ("event", "profile", "decay", "disqualifier", "outcome", "sla_breach", "model_change")
#: Input outcomes in the order they are listed (the worker's outcome labels).
OUTCOMES = ("scored", "duplicate", "late", "bot", "replayed", "rerouted")


@dataclass(frozen=True, slots=True)
class Labels:
    """How the report names the two models."""

    current: str
    candidate: str

    @classmethod
    def of(cls, current: ScoringModel, candidate: ScoringModel) -> Labels:
        def label(model: ScoringModel) -> str:
            return f"{model.id} v{model.version} ({model.source_name})"

        return cls(label(current), label(candidate))


#: A row of counts: (name, under the current model, under the candidate).
Row = tuple[str, int, int]


def stage_order(current: ScoringModel, candidate: ScoringModel) -> list[str]:
    """Stage names low to high, the current model's first, then the candidate's new
    ones; forced stages (disqualified) after the ordered ones."""
    names: list[str] = []
    for model in (current, candidate):
        names += [s.name for s in model.stages if s.name not in names]
    for model in (current, candidate):
        names += sorted(s for s in model.forced_stages if s not in names)
    return names


def count_rows(
    current: dict[str, int], candidate: dict[str, int], order: Iterable[str]
) -> list[Row]:
    """One row per name in ``order``, then any other name either side counted."""
    names = list(order)
    names += sorted((current.keys() | candidate.keys()) - set(names))
    return [(n, current.get(n, 0), candidate.get(n, 0)) for n in names]


def stage_rows(result: PreviewResult, order: Sequence[str]) -> list[Row]:
    """Every stage of either model, then (if any) leads one model never scored."""
    return count_rows(result.current.stages, result.candidate.stages, order)


def grade_rows(result: PreviewResult) -> list[Row]:
    return count_rows(result.current.grades, result.candidate.grades, GRADES)


def day_rows(result: PreviewResult) -> list[Row]:
    """Stage changes per UTC day, every day from the first to the last with any."""
    a, b = result.current.changes_by_day, result.candidate.changes_by_day
    return count_rows(a, b, sorted(a.keys() | b.keys()))


def input_rows(result: PreviewResult) -> list[Row]:
    """Input records by outcome, dead letters and bots filtered by reason, then stage
    changes and their causes."""
    a, b = result.current, result.candidate
    rows = [(o, a.outcomes.get(o, 0), b.outcomes.get(o, 0)) for o in OUTCOMES]
    rows = [r for r in rows if r[1] or r[2] or r[0] == "scored"]
    for reason, n, m in count_rows(a.dead_letters, b.dead_letters, ()):
        rows.append((f"dead letter: {reason}", n, m))
    for reason, n, m in count_rows(a.bots, b.bots, ()):
        rows.append((f"bot filtered: {reason}", n, m))
    rows.append(("stage changes published", a.changes, b.changes))
    for cause, n, m in count_rows(a.changes_by_cause, b.changes_by_cause, CAUSES):
        if n or m:
            rows.append((f"  caused by {cause}", n, m))
    return rows


def move_rows(result: PreviewResult, order: Sequence[str]) -> list[tuple[str, str, int, list[str]]]:
    """(stage under the current model, under the candidate, leads, sample ids), by
    stage order of the current stage, then of the new one."""
    rank = {name: i for i, name in enumerate([*order, NOT_SCORED])}
    moves = result.moves
    pairs = sorted(moves.stages, key=lambda p: (rank.get(p[0], len(rank)), rank.get(p[1], 0)))
    return [
        (old, new, moves.stages[old, new], moves.samples.get((old, new), [])) for old, new in pairs
    ]


def quantile_rows(result: PreviewResult) -> list[tuple[str, float, float]]:
    """Score statistics at ``now``: mean, median, p90, p99, max."""
    a, b = sorted(result.current.scores), sorted(result.candidate.scores)
    rows = [("mean", _mean(a), _mean(b))]
    for name, q in (("median", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)):
        rows.append((name, _quantile(a, q), _quantile(b, q)))
    return rows


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest rank."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Both models' scores counted over the same bins."""

    edges: list[float]
    current: list[int]
    candidate: list[int]
    #: Scores above this are counted in the last bin (None: no score is): a few
    #: very hot leads would otherwise squeeze everyone else into one bin.
    clipped_at: float | None = None


#: Scores above this quantile (of both models' together) go in the last bin.
CLIP_QUANTILE = 0.99


def histogram(a: ModelTally, b: ModelTally, bins: int = HISTOGRAM_BINS) -> Histogram:
    scores = sorted([*a.scores, *b.scores])
    if not scores:
        return Histogram([0.0, 1.0], [0], [0])
    lo, hi = scores[0], scores[-1]
    top = _quantile(scores, CLIP_QUANTILE)
    clipped_at = top if lo < top < hi else None
    if clipped_at is not None:
        hi = clipped_at
    n = bins if hi > lo else 1
    width = (hi - lo) / n if hi > lo else 1.0
    edges = [lo + i * width for i in range(n + 1)]

    def counts(values: Iterable[float]) -> list[int]:
        out = [0] * n
        for v in values:
            out[min(n - 1, int((v - lo) / width))] += 1
        return out

    return Histogram(edges, counts(a.scores), counts(b.scores), clipped_at)


def headline(result: PreviewResult) -> str:
    """One line: what was replayed, and when the leads are read."""
    return (
        f"{result.records:,} records, {result.leads:,} leads; leads read at "
        f"{format_time(result.now)}; {result.moves.leads:,} would change stage"
    )
