"""Stage evaluation with hysteresis.

Entering stage *s* needs ``score >= s.entry_score`` plus its grade and BANT minimums;
staying in it needs ``score >= s.exit_score`` plus its exit minimums (which default to
the entry's). The first stage has neither: it always holds. Given the current stage:

1. if the highest stage whose entry holds is above the current one, move up to it;
2. else, if the current stage's stay conditions hold, stay;
3. else move down to the highest lower stage whose stay conditions hold.

So the stage depends on the path the score took (that is the point of hysteresis),
while the score itself does not. With the default model (warm 20/10, mql 50/40 and
grade B, sql 80/65 and grade B and 3 BANT criteria):

>>> from scoring.modelfile import load_default_model
>>> m = load_default_model()
>>> evaluate_stage(m, "cold", 55.0, "B", 0)    # jumps two stages at once
'mql'
>>> evaluate_stage(m, "mql", 45.0, "B", 0)     # below mql's entry, above its exit
'mql'
>>> evaluate_stage(m, "cold", 45.0, "B", 0)    # ... but a cold lead at 45 is only warm
'warm'
>>> evaluate_stage(m, "mql", 39.0, "B", 0)     # below mql's exit: down to warm
'warm'
>>> evaluate_stage(m, "mql", 60.0, "C", 0)     # grade dropped below B: mql no longer holds
'warm'
>>> evaluate_stage(m, "sql", 70.0, "A", 2)     # a BANT criterion lost: down to mql
'mql'
>>> evaluate_stage(m, "mql", 95.0, "A", 3)
'sql'
"""

from __future__ import annotations

from collections.abc import Sequence

from scoring.model import GRADE_RANK, ScoringModel, Stage

__all__ = ["entry_holds", "evaluate_from_bottom", "evaluate_index", "evaluate_stage", "stay_holds"]


def entry_holds(stage: Stage, score: float, grade: int, bant: int) -> bool:
    """Whether a lead with this score, grade rank and BANT count may enter ``stage``."""
    return score >= stage.entry_score and grade >= stage.entry_grade and bant >= stage.entry_bant


def stay_holds(stage: Stage, score: float, grade: int, bant: int) -> bool:
    """Whether a lead in ``stage`` may stay there."""
    return score >= stage.exit_score and grade >= stage.exit_grade and bant >= stage.exit_bant


def evaluate_from_bottom(stages: Sequence[Stage], score: float, grade: int, bant: int) -> int:
    """Index of the highest stage whose entry holds (0 if none does)."""
    for i in range(len(stages) - 1, 0, -1):
        if entry_holds(stages[i], score, grade, bant):
            return i
    return 0


def evaluate_index(
    stages: Sequence[Stage], current: int, score: float, grade: int, bant: int
) -> int:
    """The stage index after evaluating from stage index ``current`` (rules 1-3 above)."""
    top = evaluate_from_bottom(stages, score, grade, bant)
    if top > current:
        return top
    for i in range(current, 0, -1):
        if stay_holds(stages[i], score, grade, bant):
            return i
    return 0


def evaluate_stage(model: ScoringModel, current: str, score: float, grade: str, bant: int) -> str:
    """Stage name after evaluating a lead in ``current`` with this score, grade and
    number of BANT criteria met. An unknown ``current`` evaluates from the bottom."""
    stages = model.stages
    g = GRADE_RANK[grade]
    idx = model.stage_index.get(current)
    if idx is None:
        return stages[evaluate_from_bottom(stages, score, g, bant)].name
    return stages[evaluate_index(stages, idx, score, g, bant)].name
