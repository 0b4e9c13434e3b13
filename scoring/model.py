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
    "OUTCOMES",
    "SOURCES",
    "BotRules",
    "Disqualifier",
    "FitRule",
    "ModelError",
    "OutcomeMove",
    "Rule",
    "ScoringModel",
    "Stage",
]

SOURCES = ("web", "email", "webinar", "profile", "outcome")
#: What a CRM sync reports (``lead.outcomes``): ``outcome`` of an outcome event.
OUTCOMES = (
    "accepted",
    "rejected",
    "contacted",
    "opportunity_created",
    "won",
    "lost",
    "recycled",
)
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
    """An engagement rule, compiled. ``rate`` is ln2/half-life (0.0: no decay).

    A cap counts at most ``cap_count`` events per window: per aligned time window of
    ``cap_per`` seconds, or with ``cap_by`` per value of that event field (once per
    webinar). ``unless`` (a match over the lead's profile as of the event's time,
    reading ``unless_fields``) keeps the rule from counting: no email scoring once
    unsubscribed.
    """

    __slots__ = (
        "cap_by",
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
        "unless",
        "unless_fields",
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
        *,
        cap_by: str | None = None,
        unless: Matcher | None = None,
        unless_fields: tuple[str, ...] = (),
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
        self.cap_by = cap_by
        self.unless = unless
        self.unless_fields = unless_fields

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
    """One ordered stage. Grade requirements are ranks (A=3 .. D=0; 0: any grade).

    ``sales``: sales own it (``owner = "sales"``): neither decay nor the score moves
    a lead out of it, only an outcome or a disqualifier does. ``sla``: seconds a lead
    may wait in it for one of the outcomes ``sla_met_by`` (0.0: no SLA).
    """

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
        "sales",
        "sla",
        "sla_met_by",
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
        *,
        sales: bool = False,
        sla: float = 0.0,
        sla_met_by: frozenset[str] = frozenset(),
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
        self.sales = sales
        self.sla = sla
        self.sla_met_by = sla_met_by

    def __repr__(self) -> str:
        return f"Stage({self.name!r}, entry={self.entry_score:g}, exit={self.exit_score:g})"


class OutcomeMove:
    """``[outcomes.<outcome>]``: where an outcome sends the lead and how much of its
    engagement score it keeps (``reset``: the factor on every point counted before
    the outcome; 1.0 keeps them, 0.0 starts over)."""

    __slots__ = ("outcome", "reset", "stage")

    def __init__(self, outcome: str, stage: str, reset: float) -> None:
        self.outcome = outcome
        self.stage = stage
        self.reset = reset

    def __repr__(self) -> str:
        return f"OutcomeMove({self.outcome!r}, to={self.stage!r}, reset={self.reset:g})"


class Disqualifier:
    __slots__ = ("description", "id", "match", "stage")

    def __init__(self, id: str, description: str, match: Matcher, stage: str) -> None:
        self.id = id
        self.description = description
        self.match = match
        self.stage = stage


class BotRules:
    """``[bots]``: which events are not a person's and are never scored.

    ``enabled`` switches all of it. ``tracker_flag``: events a tracker sent with
    ``is_bot = true``. ``known_user_agents``: user agents on the maintained crawler
    list, matched by the worker (``streams.core.bots``), which marks the event before
    scoring. The rest are per-lead time patterns (``scoring.bots``), each 0 when off:
    email clicks within ``email_after_delivery`` seconds of that email's delivery or
    within ``email_click_gap`` of another click on it, ``email_links_count`` different
    links of one email clicked within ``email_links_within``; web views with a dwell of
    at most ``web_max_dwell`` seconds, ``web_burst_count`` of them within
    ``web_burst_within``. Patterns look back ``memory`` seconds from the lead's clock.
    ``email_no_open`` (opt-in, off unless set): a click on an email with no open of it
    within ``memory`` is held, not scored, until such an open arrives.
    """

    __slots__ = (
        "email_after_delivery",
        "email_click_gap",
        "email_links_count",
        "email_links_within",
        "email_no_open",
        "enabled",
        "known_user_agents",
        "memory",
        "tracker_flag",
        "web_burst_count",
        "web_burst_within",
        "web_max_dwell",
    )

    def __init__(
        self,
        *,
        enabled: bool = False,
        tracker_flag: bool = False,
        known_user_agents: bool = False,
        memory: float = 3600.0,
        email_after_delivery: float = 0.0,
        email_click_gap: float = 0.0,
        email_links_count: int = 0,
        email_links_within: float = 0.0,
        email_no_open: bool = False,
        web_burst_count: int = 0,
        web_burst_within: float = 0.0,
        web_max_dwell: float = 0.0,
    ) -> None:
        self.enabled = enabled
        self.tracker_flag = tracker_flag
        self.known_user_agents = known_user_agents
        self.memory = memory
        self.email_after_delivery = email_after_delivery
        self.email_click_gap = email_click_gap
        self.email_links_count = email_links_count
        self.email_links_within = email_links_within
        self.email_no_open = email_no_open
        self.web_burst_count = web_burst_count
        self.web_burst_within = web_burst_within
        self.web_max_dwell = web_max_dwell

    @property
    def email_patterns(self) -> bool:
        """Any email pattern on (then delivered and clicked emails are remembered)."""
        return self.enabled and bool(
            self.email_after_delivery
            or self.email_click_gap
            or self.email_links_count
            or self.email_no_open
        )

    @property
    def web_patterns(self) -> bool:
        return self.enabled and bool(self.web_burst_count)


class ScoringModel:
    """A loaded, validated, compiled model. Treat as immutable; share freely."""

    __slots__ = (
        "bant",
        "bots",
        "categories",
        "category_caps",
        "category_info",
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
        "has_resets",
        "history_size",
        "id",
        "max_lateness",
        "max_rate",
        "outcome_moves",
        "rates",
        "reasons_top_n",
        "renamed_stages",
        "rule_by_id",
        "rules",
        "rules_by_source",
        "sales_stages",
        "source_name",
        "stage_by_name",
        "stage_index",
        "stage_rank",
        "stages",
        "total_cap",
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
    #: Entries kept in each lead's history (0: none).
    history_size: int
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
    #: Every stage sales own: ordered ones marked ``owner = "sales"`` and the
    #: ``[[sales_stages]]`` only outcomes enter.
    sales_stages: frozenset[str]
    #: name -> Stage of the ordered and the outcome-only stages (SLAs are read here)
    stage_by_name: dict[str, Stage]
    #: name -> rank for up/down: ordered stages by index, outcome-only stages above
    #: them in file order; forced stages are not ranked (-1)
    stage_rank: dict[str, int]
    #: outcome -> where it moves the lead (outcomes not listed only score rules)
    outcome_moves: dict[str, OutcomeMove]
    #: Some outcome resets the score (a ``reset`` below 1): leads then keep their
    #: recent contributions (``LeadState.contributions``) for the resets to come.
    has_resets: bool
    disqualifiers: tuple[Disqualifier, ...]
    disqualifier_by_id: dict[str, Disqualifier]
    #: ``[caps]``: category -> N, its points held within [-N, N] (group caps), and
    #: the score within [-total_cap, total_cap] (inf: no total cap).
    category_caps: dict[str, float]
    #: category -> (rate, cap or inf): what reading a category needs, in one lookup
    category_info: dict[str, tuple[float, float]]
    total_cap: float
    bots: BotRules

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
