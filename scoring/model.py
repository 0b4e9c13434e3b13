"""The scoring model's types: what a loaded model is made of.

A :class:`ScoringModel` holds the compiled rules, fit rules, BANT matchers, stages
and disqualifiers of one model file; :class:`ModelError` is what loading an invalid
one raises. Reading, validating and compiling the TOML format is
``scoring.modelfile`` (``load_model``, ``load_model_text``, ``load_default_model``);
the format is documented in ``docs/scoring-model.md``.
"""

from __future__ import annotations

from typing import Any

from scoring.conditions import Matcher, Predicate
from scoring.dispatch import Dispatcher

__all__ = [
    "BANT_KEYS",
    "GRADES",
    "GRADE_RANK",
    "SOURCES",
    "Disqualifier",
    "FitRule",
    "ModelError",
    "Rule",
    "ScoringModel",
    "Stage",
]

SOURCES = ("web", "email", "webinar", "profile")
BANT_KEYS = ("budget", "authority", "need", "timeline")
#: Grades from best to worst; a requirement ``grade = "B"`` means B or better.
GRADES = ("A", "B", "C", "D")
GRADE_RANK = {"A": 3, "B": 2, "C": 1, "D": 0}


class ModelError(ValueError):
    """The model file is invalid; ``problems`` lists every problem with its location."""

    def __init__(self, source_name: str, problems: list[str]) -> None:
        self.source_name = source_name
        self.problems = list(problems)
        n = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{source_name}: {n} problem{'s' if n != 1 else ''} in the scoring model:\n{lines}"
        )


class Rule:
    """An engagement rule, compiled. ``rate`` is ln2/half-life (0.0: no decay)."""

    __slots__ = (
        "cap_count",
        "cap_per",
        "category",
        "conds",
        "description",
        "id",
        "match",
        "points",
        "rate",
        "sets",
        "source",
    )

    def __init__(
        self,
        id: str,
        description: str,
        source: str,
        category: str,
        points: float,
        match: Matcher,
        cap_count: int,
        cap_per: float,
        sets: dict[str, Any] | None,
        rate: float,
        conds: tuple[tuple[str, Predicate], ...] | None = None,
    ) -> None:
        self.id = id
        self.description = description
        self.source = source
        self.category = category
        self.points = points
        self.match = match
        self.cap_count = cap_count  # 0: no cap
        self.cap_per = cap_per
        self.sets = sets
        self.rate = rate
        self.conds = conds

    def __repr__(self) -> str:
        return f"Rule({self.id!r}, {self.source}, {self.points:+g})"


class FitRule:
    __slots__ = ("description", "id", "match", "points")

    def __init__(self, id: str, description: str, points: float, match: Matcher) -> None:
        self.id = id
        self.description = description
        self.points = points
        self.match = match

    def __repr__(self) -> str:
        return f"FitRule({self.id!r}, {self.points:+g})"


class Stage:
    """One ordered stage. Grade requirements are ranks (A=3 .. D=0; 0: any grade)."""

    __slots__ = (
        "description",
        "entry_bant",
        "entry_grade",
        "entry_score",
        "exit_bant",
        "exit_grade",
        "exit_score",
        "index",
        "name",
    )

    def __init__(
        self,
        name: str,
        description: str,
        index: int,
        entry_score: float,
        entry_grade: int,
        entry_bant: int,
        exit_score: float,
        exit_grade: int,
        exit_bant: int,
    ) -> None:
        self.name = name
        self.description = description
        self.index = index
        self.entry_score = entry_score
        self.entry_grade = entry_grade
        self.entry_bant = entry_bant
        self.exit_score = exit_score
        self.exit_grade = exit_grade
        self.exit_bant = exit_bant

    def __repr__(self) -> str:
        return f"Stage({self.name!r}, entry={self.entry_score:g}, exit={self.exit_score:g})"


class Disqualifier:
    __slots__ = ("description", "id", "match", "stage")

    def __init__(self, id: str, description: str, match: Matcher, stage: str) -> None:
        self.id = id
        self.description = description
        self.match = match
        self.stage = stage


class ScoringModel:
    """A loaded, validated, compiled model. Treat as immutable; share freely."""

    __slots__ = (
        "bant",
        "categories",
        "dedup_max_ids",
        "description",
        "dispatch",
        "disqualifier_by_id",
        "disqualifiers",
        "fingerprint",
        "fit_rules",
        "forced_stages",
        "grade_bounds",
        "half_lives",
        "id",
        "max_lateness",
        "max_rate",
        "rates",
        "reasons_top_n",
        "renamed_stages",
        "rule_by_id",
        "rules",
        "rules_by_source",
        "source_name",
        "stage_index",
        "stages",
        "version",
    )

    id: str
    version: str
    #: Content hash of the model (its TOML data): states record the one they were
    #: scored under, and are migrated when it changes (``scoring.migrate``).
    fingerprint: str
    #: Old stage name -> the stage that took it over (``renamed_from`` in the TOML).
    renamed_stages: dict[str, str]
    description: str
    source_name: str
    max_lateness: float
    dedup_max_ids: int
    reasons_top_n: int
    #: category -> half-life in seconds (None: no decay), in file order.
    half_lives: dict[str, float | None]
    #: category -> ln2 / half-life (0.0: no decay).
    rates: dict[str, float]
    categories: tuple[str, ...]
    rules: tuple[Rule, ...]
    rules_by_source: dict[str, tuple[Rule, ...]]
    #: source -> the compiled matcher of its rules
    dispatch: dict[str, Dispatcher[Rule]]
    #: the largest decay rate (0.0 when nothing decays)
    max_rate: float
    rule_by_id: dict[str, Rule | FitRule]
    fit_rules: tuple[FitRule, ...]
    #: ((grade, lower bound), ...) best first; below the last bound: "D".
    grade_bounds: tuple[tuple[str, float], ...]
    bant: tuple[tuple[str, Matcher], ...]
    stages: tuple[Stage, ...]
    stage_index: dict[str, int]
    forced_stages: frozenset[str]
    disqualifiers: tuple[Disqualifier, ...]
    disqualifier_by_id: dict[str, Disqualifier]

    def __repr__(self) -> str:
        return f"ScoringModel({self.id!r}, version={self.version!r}, rules={len(self.rules)})"

    def grade_for(self, fit_points: float) -> str:
        """The grade of ``fit_points``.

        >>> from scoring.modelfile import load_default_model
        >>> m = load_default_model()
        >>> [m.grade_for(p) for p in (75, 60, 59.5, 40, 20, 19, -5)]
        ['A', 'A', 'B', 'B', 'C', 'D', 'D']
        """
        for grade, bound in self.grade_bounds:
            if fit_points >= bound:
                return grade
        return "D"
