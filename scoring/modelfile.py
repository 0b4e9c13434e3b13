"""The model file: one TOML format, read, validated and compiled at load.

``load_model(path)``, ``load_model_text(text, source_name)`` and ``load_default_model()``
return an immutable :class:`~scoring.model.ScoringModel` or raise
:class:`~scoring.model.ModelError` listing every problem found, each with its location
(``rules[3].cap.per: ...``; indexes count from 0). The format is documented in
``docs/scoring-model.md``; the types it compiles to are ``scoring.model``.

>>> bad = '''
... id = "x"
... version = 1
... [decay]
... web = "1x"
... '''
>>> try:
...     load_model_text(bad, "m.toml")
... except ModelError as exc:
...     print(exc)
m.toml: 2 problems in the scoring model:
  - decay.web: "1x" is not a duration (use 30d, 12h, 15m, 90s)
  - stages: missing (an array of tables [[stages]], lowest first)
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from scoring.conditions import Matcher, compile_conditions, compile_match, fields_of, never
from scoring.dispatch import Dispatcher
from scoring.durations import parse_duration
from scoring.model import (
    BANT_KEYS,
    GRADE_RANK,
    OUTCOMES,
    SOURCES,
    BotRules,
    Disqualifier,
    FitRule,
    ModelError,
    OutcomeMove,
    Rule,
    ScoringModel,
    Stage,
)

__all__ = [
    "FIELD_DEFAULTS",
    "PROFILE_ENUMS",
    "SOURCE_FIELDS",
    "load_default_model",
    "load_model",
    "load_model_text",
]

_EMAIL_ACTIONS = frozenset({"delivered", "open", "click", "bounce", "unsubscribe", "spam_report"})
_WEBINAR_ACTIONS = frozenset({"registered", "attended", "no_show", "question"})
_WEB_ACTIONS = frozenset({"page_view", "form_submit", "download"})

#: Fields a rule of each event source may test (None: any string value).
SOURCE_FIELDS: dict[str, dict[str, frozenset[str] | None]] = {
    "web": {
        "url": None,
        "path": None,
        "referrer": None,
        "duration_seconds": None,
        "title": None,
        "action": _WEB_ACTIONS,
        "form_id": None,
        "asset": None,
    },
    "email": {
        "action": _EMAIL_ACTIONS,
        "campaign_id": None,
        "link": None,
        "bounce_type": frozenset({"hard", "soft"}),
    },
    "webinar": {"action": _WEBINAR_ACTIONS, "webinar_id": None, "minutes_attended": None},
    "outcome": {
        "outcome": frozenset(OUTCOMES),
        "reason": None,
        "amount": None,
        "currency": None,
        "owner": None,
        "opportunity_id": None,
    },
}
#: Outcomes that meet a stage's follow-up SLA unless it says otherwise: sales
#: answered the hand-off (took it, called, or sent it back).
DEFAULT_SLA_MET_BY = frozenset({"accepted", "contacted", "rejected"})

#: What a rule reads for a field an event leaves out: a web event is a page view
#: unless it says otherwise (trackers that only send page views need not say so).
FIELD_DEFAULTS: dict[str, dict[str, Any]] = {"web": {"action": "page_view"}}

#: Allowed values of the enumerated profile attributes (other keys are free).
PROFILE_ENUMS: dict[str, frozenset[str]] = {
    "seniority": frozenset(
        {"c_level", "vp", "director", "manager", "individual_contributor", "student", "other"}
    ),
    "budget_status": frozenset({"unknown", "none", "planned", "approved"}),
    "decision_role": frozenset({"unknown", "user", "influencer", "decision_maker"}),
    "purchase_timeline": frozenset(
        {"unknown", "over_12_months", "within_12_months", "within_6_months", "within_3_months"}
    ),
}

_LN2 = math.log(2.0)
#: Most history entries a lead may keep: each is part of every write of its state.
MAX_HISTORY = 500
_RULE_KEYS = (
    "id",
    "description",
    "source",
    "category",
    "points",
    "match",
    "cap",
    "sets",
    "unless",
)
_STAGE_KEYS = (
    "name",
    "description",
    "entry",
    "exit",
    "renamed_from",
    "owner",
    "sla",
    "sla_met_by",
)
_BOT_KEYS = (
    "enabled",
    "tracker_flag",
    "known_user_agents",
    "memory",
    "email_after_delivery",
    "email_click_gap",
    "email_links",
    "email_no_open",
    "web_burst",
)


def load_model(path: str | Path) -> ScoringModel:
    """Load and validate the model file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(str(p), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    return load_model_text(text, str(p))


def load_default_model() -> ScoringModel:
    """The model bundled with leadstream (``scoring/default_model.toml``)."""
    text = resources.files("scoring").joinpath("default_model.toml").read_text("utf-8")
    return load_model_text(text, "default_model.toml")


def fingerprint(data: dict[str, Any]) -> str:
    """A short content hash of a model's parsed TOML: equal data, equal fingerprint,
    whatever the formatting, comments or key order of the file.

    >>> fingerprint({"id": "m", "version": 1}) == fingerprint({"version": 1, "id": "m"})
    True
    """
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_model_text(text: str, source_name: str = "<model>") -> ScoringModel:
    """Parse, validate and compile a model from TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(source_name, [f"not valid TOML: {exc}"]) from exc
    return _Builder(source_name).build(data)


class _Builder:
    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self.problems: list[str] = []

    # ----------------------------------------------------------------- primitives

    def err(self, msg: str) -> None:
        self.problems.append(msg)

    def keys(self, table: Mapping[str, Any], loc: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                self.err(
                    f"{loc}{'.' if loc else ''}{key}: unknown key (allowed: {', '.join(allowed)})"
                )

    def table(self, value: object, loc: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.err(f"{loc}: must be a table")
            return {}
        return value

    def string(self, table: Mapping[str, Any], key: str, loc: str, default: str | None) -> str:
        v = table.get(key, default)
        where = f"{loc}.{key}" if loc else key
        if v is None:
            self.err(f"{where}: missing (a non-empty string)")
            return ""
        if not isinstance(v, str) or not v:
            self.err(f"{where}: {v!r} is not a non-empty string")
            return ""
        return v

    def number(self, table: Mapping[str, Any], key: str, loc: str, default: float | None) -> float:
        v = table.get(key, default)
        if v is None:
            self.err(f"{loc}.{key}: missing (a number)")
            return 0.0
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.err(f"{loc}.{key}: {v!r} is not a finite number")
            return 0.0
        return float(v)

    def integer(self, table: Mapping[str, Any], key: str, loc: str, default: int, lo: int) -> int:
        v = table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            self.err(f"{loc}.{key}: {v!r} is not an integer >= {lo}")
            return default
        return v

    def duration(self, value: object, loc: str, positive: bool) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.err(f"{loc}: {exc}")
            return 1.0
        if positive and seconds <= 0:
            self.err(f"{loc}: must be longer than 0s")
            return 1.0
        return seconds

    def grade(self, value: object, loc: str) -> int:
        if not isinstance(value, str) or value not in GRADE_RANK:
            self.err(f"{loc}: {value!r} is not a grade (use A, B, C or D)")
            return 0
        return GRADE_RANK[value]

    def array(self, value: object, loc: str) -> list[dict[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err(f"{loc}: must be an array of tables ([[{loc}]])")
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append(item)
            else:
                self.err(f"{loc}[{i}]: must be a table")
        return out

    def unique(self, seen: dict[str, str], ident: str, loc: str, what: str) -> None:
        if not ident:
            return
        if ident in seen:
            self.err(f"{loc}: duplicate {what} {ident!r} (first at {seen[ident]})")
        else:
            seen[ident] = loc

    # ----------------------------------------------------------------- sections

    def build(self, data: dict[str, Any]) -> ScoringModel:
        self.keys(
            data,
            "",
            (
                "id",
                "version",
                "description",
                "forced_stages",
                "sales_stages",
                "outcomes",
                "settings",
                "decay",
                "rules",
                "fit",
                "bant",
                "stages",
                "disqualifiers",
                "caps",
                "bots",
            ),
        )
        m = ScoringModel()
        m.source_name = self.source_name
        m.fingerprint = fingerprint(data)
        m.id = self.string(data, "id", "", None)
        version = data.get("version")
        if isinstance(version, int | str) and not isinstance(version, bool) and str(version):
            m.version = str(version)
        else:
            self.err(f"version: {version!r} is not a version (a string or an integer)")
            m.version = ""
        desc = data.get("description", "")
        m.description = desc if isinstance(desc, str) else ""
        self.settings(m, self.table(data.get("settings"), "settings"))
        self.decay(m, self.table(data.get("decay"), "decay"))
        ids: dict[str, str] = {}
        self.rules(m, self.array(data.get("rules"), "rules"), ids)
        self.fit(m, self.table(data.get("fit"), "fit"), ids)
        self.bant(m, self.table(data.get("bant"), "bant"))
        self.stages(m, self.array(data.get("stages"), "stages"))
        self.forced(m, data.get("forced_stages", []))
        self.sales_stages(m, self.array(data.get("sales_stages"), "sales_stages"))
        self.outcomes(m, self.table(data.get("outcomes"), "outcomes"))
        self.disqualifiers(m, self.array(data.get("disqualifiers"), "disqualifiers"))
        self.caps(m, self.table(data.get("caps"), "caps"))
        self.bots(m, self.table(data.get("bots"), "bots"))
        if self.problems:
            raise ModelError(self.source_name, self.problems)
        return m

    def settings(self, m: ScoringModel, s: dict[str, Any]) -> None:
        self.keys(s, "settings", ("max_lateness", "dedup_max_ids", "reasons_top_n", "history_size"))
        m.max_lateness = self.duration(
            s.get("max_lateness", "30d"), "settings.max_lateness", positive=False
        )
        m.dedup_max_ids = self.integer(s, "dedup_max_ids", "settings", 256, 1)
        m.reasons_top_n = self.integer(s, "reasons_top_n", "settings", 5, 0)
        m.history_size = self.integer(s, "history_size", "settings", 50, 0)
        if m.history_size > MAX_HISTORY:
            self.err(f"settings.history_size: at most {MAX_HISTORY} (each entry is stored)")

    def decay(self, m: ScoringModel, d: dict[str, Any]) -> None:
        m.half_lives = {}
        m.rates = {}
        if not d:
            self.err('decay: missing or empty (a table: category = half-life or "none")')
        for cat, value in d.items():
            if value == "none":
                m.half_lives[cat] = None
                m.rates[cat] = 0.0
            else:
                h = self.duration(value, f"decay.{cat}", positive=True)
                m.half_lives[cat] = h
                m.rates[cat] = _LN2 / h
        m.categories = tuple(m.half_lives)
        m.max_rate = max(m.rates.values(), default=0.0)

    def rules(self, m: ScoringModel, rules: list[dict[str, Any]], ids: dict[str, str]) -> None:
        out = [self.rule(m, r, f"rules[{i}]", ids) for i, r in enumerate(rules)]
        m.rules = tuple(out)
        m.rules_by_source = {s: tuple(r for r in out if r.source == s) for s in SOURCES}
        m.dispatch = {s: Dispatcher(rules) for s, rules in m.rules_by_source.items()}
        m.rule_by_id = {r.id: r for r in out}

    def rule(self, m: ScoringModel, r: dict[str, Any], loc: str, ids: dict[str, str]) -> Rule:
        self.keys(
            r,
            loc,
            _RULE_KEYS,
        )
        rid = self.string(r, "id", loc, None)
        self.unique(ids, rid, f"{loc}.id", "rule id")
        description = self.string(r, "description", loc, rid or "?")
        source = r.get("source")
        if source not in SOURCES:
            self.err(f"{loc}.source: {source!r} is not one of {', '.join(SOURCES)}")
            source = "web"
        category = r.get("category", source)
        if not isinstance(category, str) or category not in m.half_lives:
            known = ", ".join(m.half_lives) or "none declared"
            self.err(f"{loc}.category: unknown category {category!r} (in [decay]: {known})")
            category = ""
        points = self.number(r, "points", loc, None)
        if "match" not in r:
            self.err(f"{loc}.match: missing (a table of conditions; {{}} matches all)")
        if source == "profile":
            match, conds = compile_conditions(
                r.get("match", {}), f"{loc}.match", self.problems, enums=PROFILE_ENUMS
            )
        else:
            match, conds = compile_conditions(
                r.get("match", {}),
                f"{loc}.match",
                self.problems,
                SOURCE_FIELDS[source],
                defaults=FIELD_DEFAULTS.get(source),
            )
        cap_count, cap_per, cap_by = self.rule_cap(r, loc, str(source))
        sets: dict[str, Any] | None = None
        if "sets" in r:
            sets = self.table(r["sets"], f"{loc}.sets")
            for key, value in sets.items():
                if not isinstance(value, str | int | float | bool):
                    self.err(f"{loc}.sets.{key}: {value!r} is not a string, number or boolean")
            if not sets:
                sets = None
        unless: Matcher | None = None
        if "unless" in r:
            unless = compile_match(r["unless"], f"{loc}.unless", self.problems, enums=PROFILE_ENUMS)
        return Rule(
            rid,
            description,
            str(source),
            category,
            points,
            match,
            cap_count,
            cap_per,
            sets,
            m.rates.get(category, 0.0),
            conds,
            cap_by=cap_by,
            unless=unless,
            unless_fields=fields_of(r.get("unless")),
        )

    def rule_cap(self, r: dict[str, Any], loc: str, source: str) -> tuple[int, float, str | None]:
        """(count, per seconds, by field) of a rule's ``cap``; (0, 0.0, None): none."""
        if "cap" not in r:
            return 0, 0.0, None
        cap = self.table(r["cap"], f"{loc}.cap")
        self.keys(cap, f"{loc}.cap", ("count", "per", "by"))
        if not cap:
            return 0, 0.0, None
        count = self.integer(cap, "count", f"{loc}.cap", 1, 1)
        if "by" in cap:
            by = cap["by"]
            fields = SOURCE_FIELDS.get(source, {})
            if "per" in cap:
                self.err(f"{loc}.cap: per and by together (one window: a time or a field)")
            if source == "profile" or by not in fields:
                known = ", ".join(sorted(fields)) or "none for profile rules"
                self.err(f"{loc}.cap.by: {by!r} is not a field of {source} events ({known})")
                return count, 0.0, None
            return count, 0.0, str(by)
        if "per" not in cap:
            self.err(f"{loc}.cap.per: missing (a duration such as 1d, or by = a field)")
        return count, self.duration(cap.get("per", 1.0), f"{loc}.cap.per", positive=True), None

    def fit(self, m: ScoringModel, fit: dict[str, Any], ids: dict[str, str]) -> None:
        self.keys(fit, "fit", ("rules", "grades"))
        out: list[FitRule] = []
        for i, r in enumerate(self.array(fit.get("rules"), "fit.rules")):
            loc = f"fit.rules[{i}]"
            self.keys(r, loc, ("id", "description", "points", "match"))
            rid = self.string(r, "id", loc, None)
            self.unique(ids, rid, f"{loc}.id", "rule id")
            description = self.string(r, "description", loc, rid or "?")
            points = self.number(r, "points", loc, None)
            if "match" not in r:
                self.err(f"{loc}.match: missing (a table of conditions)")
            match = compile_match(
                r.get("match", {}), f"{loc}.match", self.problems, enums=PROFILE_ENUMS
            )
            out.append(FitRule(rid, description, points, match))
        m.fit_rules = tuple(out)
        for fr in out:
            m.rule_by_id[fr.id] = fr
        grades = self.table(fit.get("grades", {"A": 60, "B": 40, "C": 20}), "fit.grades")
        self.keys(grades, "fit.grades", ("A", "B", "C"))
        bounds = [(g, self.number(grades, g, "fit.grades", None)) for g in ("A", "B", "C")]
        if not bounds[0][1] > bounds[1][1] > bounds[2][1]:
            self.err("fit.grades: bounds must decrease strictly: A > B > C")
        m.grade_bounds = tuple(bounds)

    def bant(self, m: ScoringModel, bant: dict[str, Any]) -> None:
        self.keys(bant, "bant", BANT_KEYS)
        out: list[tuple[str, Matcher]] = []
        for key in BANT_KEYS:
            spec = bant.get(key, [])
            if spec == []:
                out.append((key, never))
                continue
            out.append(
                (key, compile_match(spec, f"bant.{key}", self.problems, enums=PROFILE_ENUMS))
            )
        m.bant = tuple(out)

    def stages(self, m: ScoringModel, stages: list[dict[str, Any]]) -> None:
        out: list[Stage] = []
        names: dict[str, str] = {}
        renamed: dict[str, str] = {}
        if not stages:
            self.err("stages: missing (an array of tables [[stages]], lowest first)")
        prev_entry = -math.inf
        for i, s in enumerate(stages):
            loc = f"stages[{i}]"
            self.keys(s, loc, _STAGE_KEYS)
            name = self.string(s, "name", loc, None)
            self.unique(names, name, f"{loc}.name", "stage")
            olds = s.get("renamed_from", [])
            if not isinstance(olds, list):
                self.err(f"{loc}.renamed_from: must be an array of stage names")
                olds = []
            for old in olds:
                if not isinstance(old, str) or not old:
                    self.err(f"{loc}.renamed_from: {old!r} is not a stage name")
                elif old in renamed:
                    self.err(f"{loc}.renamed_from: {old!r} is claimed by two stages")
                else:
                    renamed[old] = name
            description = self.string(s, "description", loc, name or "?")
            if i == 0:
                for key in ("entry", "exit"):
                    if key in s:
                        self.err(
                            f"{loc}.{key}: the first stage has no {key} (every lead starts there)"
                        )
                sales, sla, met_by = self.ownership(s, loc)
                if sales:
                    self.err(f"{loc}.owner: the first stage is every new lead's: not sales'")
                out.append(
                    Stage(
                        name,
                        description,
                        0,
                        -math.inf,
                        0,
                        0,
                        -math.inf,
                        0,
                        0,
                        sla=sla,
                        sla_met_by=met_by,
                    )
                )
                continue
            if "entry" not in s:
                self.err(f"{loc}.entry: missing (a table: score, optional grade and bant)")
            if "exit" not in s:
                self.err(f"{loc}.exit: missing (a table: score below entry.score)")
            entry = self.table(s.get("entry", {}), f"{loc}.entry")
            exit_ = self.table(s.get("exit", {}), f"{loc}.exit")
            self.keys(entry, f"{loc}.entry", ("score", "grade", "bant"))
            self.keys(exit_, f"{loc}.exit", ("score", "grade", "bant"))
            e_score = self.number(entry, "score", f"{loc}.entry", None) if entry else 0.0
            e_grade = self.grade(entry["grade"], f"{loc}.entry.grade") if "grade" in entry else 0
            e_bant = self.integer(entry, "bant", f"{loc}.entry", 0, 0)
            if e_bant > 4:
                self.err(f"{loc}.entry.bant: {e_bant} is more than the 4 BANT criteria")
            x_score = self.number(exit_, "score", f"{loc}.exit", None) if exit_ else 0.0
            x_grade = (
                self.grade(exit_["grade"], f"{loc}.exit.grade") if "grade" in exit_ else e_grade
            )
            x_bant = self.integer(exit_, "bant", f"{loc}.exit", e_bant, 0)
            if entry and exit_:
                if x_score >= e_score:
                    self.err(
                        f"{loc}.exit.score: {x_score:g} must be below entry.score {e_score:g} "
                        "(hysteresis)"
                    )
                if x_grade > e_grade:
                    self.err(f"{loc}.exit.grade: stricter than entry.grade")
                if x_bant > e_bant:
                    self.err(f"{loc}.exit.bant: {x_bant} is stricter than entry.bant {e_bant}")
                if e_score <= prev_entry:
                    self.err(
                        f"{loc}.entry.score: {e_score:g} must be above the previous stage's "
                        f"entry.score {prev_entry:g} (stages are ordered low to high)"
                    )
            prev_entry = e_score
            sales, sla, met_by = self.ownership(s, loc)
            out.append(
                Stage(
                    name,
                    description,
                    i,
                    e_score,
                    e_grade,
                    e_bant,
                    x_score,
                    x_grade,
                    x_bant,
                    sales=sales,
                    sla=sla,
                    sla_met_by=met_by,
                )
            )
        m.stages = tuple(out)
        m.stage_index = {s.name: s.index for s in out}
        for old in renamed:
            if old in m.stage_index:
                self.err(f"stages: {old!r} is both a stage and renamed_from of another")
        m.renamed_stages = renamed

    def ownership(self, s: Mapping[str, Any], loc: str) -> tuple[bool, float, frozenset[str]]:
        """(sales own it, SLA seconds or 0.0, outcomes meeting the SLA) of a stage."""
        owner = s.get("owner", "marketing")
        if owner not in ("marketing", "sales"):
            self.err(f'{loc}.owner: {owner!r} is not "marketing" or "sales"')
        sla = self.duration(s["sla"], f"{loc}.sla", positive=True) if "sla" in s else 0.0
        met_by = s.get("sla_met_by", sorted(DEFAULT_SLA_MET_BY))
        if not isinstance(met_by, list) or not met_by:
            self.err(f"{loc}.sla_met_by: must be a non-empty array of outcomes")
            met_by = []
        for o in met_by:
            if o not in OUTCOMES:
                self.err(f"{loc}.sla_met_by: {o!r} is not one of {', '.join(OUTCOMES)}")
        if "sla_met_by" in s and "sla" not in s:
            self.err(f"{loc}.sla_met_by: without sla (a duration such as 4h)")
        return owner == "sales", sla, frozenset(str(o) for o in met_by)

    def sales_stages(self, m: ScoringModel, items: list[dict[str, Any]]) -> None:
        """``[[sales_stages]]``: stages only outcomes enter (accepted, opportunity,
        customer), ranked above the ordered stages in file order."""
        m.stage_by_name = {st.name: st for st in m.stages}
        m.stage_rank = dict(m.stage_index)
        sales = {st.name for st in m.stages if st.sales}
        for i, item in enumerate(items):
            loc = f"sales_stages[{i}]"
            self.keys(item, loc, ("name", "description", "sla", "sla_met_by"))
            name = self.string(item, "name", loc, None)
            if name in m.stage_by_name or name in m.forced_stages:
                self.err(f"{loc}.name: {name!r} is already a stage")
            _, sla, met_by = self.ownership(item, loc)
            description = self.string(item, "description", loc, name or "?")
            rank = len(m.stages) + i
            st = Stage(name, description, rank, math.inf, 0, 0, -math.inf, 0, 0)
            st.sales, st.sla, st.sla_met_by = True, sla, met_by
            m.stage_by_name[name] = st
            m.stage_rank[name] = rank
            sales.add(name)
        m.sales_stages = frozenset(sales)

    def outcomes(self, m: ScoringModel, table: dict[str, Any]) -> None:
        """``[outcomes.<outcome>]``: ``stage`` it moves the lead to, ``reset`` the
        factor on the engagement points counted before it (default 1: kept)."""
        self.keys(table, "outcomes", OUTCOMES)
        moves: dict[str, OutcomeMove] = {}
        for outcome, spec in table.items():
            loc = f"outcomes.{outcome}"
            spec = self.table(spec, loc)
            self.keys(spec, loc, ("stage", "reset"))
            stage = self.string(spec, "stage", loc, None)
            # Not a forced stage: only a disqualifier holds a lead there, and the
            # lead's next event would take it out again.
            if stage and stage not in m.stage_by_name:
                known = ", ".join(m.stage_by_name)
                self.err(f"{loc}.stage: unknown stage {stage!r} (known: {known})")
            reset = self.number(spec, "reset", loc, 1.0)
            if not 0.0 <= reset <= 1.0:
                self.err(f"{loc}.reset: {reset:g} is not a factor from 0 to 1")
            moves[outcome] = OutcomeMove(outcome, stage, reset)
        m.outcome_moves = moves
        m.has_resets = any(move.reset != 1.0 for move in moves.values())

    def forced(self, m: ScoringModel, forced: object) -> None:
        if not isinstance(forced, list) or not all(isinstance(f, str) and f for f in forced):
            self.err("forced_stages: must be a list of stage names")
            forced = []
        names = [str(f) for f in forced]
        for name in names:
            if name in m.stage_index:
                self.err(f"forced_stages: {name!r} is already an ordered stage")
        m.forced_stages = frozenset(names)

    def disqualifiers(self, m: ScoringModel, items: list[dict[str, Any]]) -> None:
        out: list[Disqualifier] = []
        ids: dict[str, str] = {}
        for i, d in enumerate(items):
            loc = f"disqualifiers[{i}]"
            self.keys(d, loc, ("id", "description", "match", "stage"))
            did = self.string(d, "id", loc, None)
            self.unique(ids, did, f"{loc}.id", "disqualifier id")
            description = self.string(d, "description", loc, did or "?")
            stage = self.string(d, "stage", loc, None)
            if stage and stage not in m.stage_index and stage not in m.forced_stages:
                known = ", ".join([*m.stage_index, *sorted(m.forced_stages)])
                self.err(
                    f"{loc}.stage: unknown stage {stage!r} (known: {known}; declare extra "
                    "stages in forced_stages)"
                )
            if "match" not in d:
                self.err(f"{loc}.match: missing (a table of conditions)")
            match = compile_match(
                d.get("match", {}), f"{loc}.match", self.problems, enums=PROFILE_ENUMS
            )
            out.append(Disqualifier(did, description, match, stage))
        m.disqualifiers = tuple(out)
        m.disqualifier_by_id = {d.id: d for d in out}

    def caps(self, m: ScoringModel, caps: dict[str, Any]) -> None:
        """``[caps]``: ``category = N`` holds the category's points within [-N, N];
        ``total = N`` the score. Stage thresholds must lie inside the total cap, so
        that it changes the score people read, never which stage a lead is in."""
        m.category_caps = {}
        m.total_cap = math.inf
        for key in caps:
            if key != "total" and key not in m.half_lives:
                known = ", ".join([*m.half_lives, "total"])
                self.err(f"caps.{key}: unknown category (known: {known})")
                continue
            n = self.number(caps, key, "caps", None)
            if n <= 0:
                self.err(f"caps.{key}: {n:g} must be above 0 (points are held within [-N, N])")
                continue
            if key == "total":
                m.total_cap = n
            else:
                m.category_caps[key] = n
        m.category_info = {
            cat: (rate, m.category_caps.get(cat, math.inf)) for cat, rate in m.rates.items()
        }
        for st in m.stages[1:]:
            for what, score in (("entry", st.entry_score), ("exit", st.exit_score)):
                if not -m.total_cap < score <= m.total_cap:
                    self.err(
                        f"caps.total: {m.total_cap:g} leaves stage {st.name}'s {what}.score "
                        f"{score:g} out of reach (thresholds must be within the total cap)"
                    )

    def bots(self, m: ScoringModel, bots: dict[str, Any]) -> None:
        """``[bots]``: absent, bot filtering is off (a model written before it scores
        as it did); the bundled default turns it on."""
        self.keys(bots, "bots", _BOT_KEYS)
        if not bots:
            m.bots = BotRules()
            return
        flags = {}
        for key in ("enabled", "tracker_flag", "known_user_agents"):
            value = bots.get(key, True)
            if not isinstance(value, bool):
                self.err(f"bots.{key}: {value!r} is not true or false")
                value = False
            flags[key] = value
        # Opt-in: image blocking sends no open for a person's click.
        no_open = bots.get("email_no_open", False)
        if not isinstance(no_open, bool):
            self.err(f"bots.email_no_open: {no_open!r} is not true or false")
            no_open = False
        links_count, links_within = self.bot_window(bots, "email_links", dwell=False)[:2]
        burst_count, burst_within, max_dwell = self.bot_window(bots, "web_burst", dwell=True)
        m.bots = BotRules(
            enabled=flags["enabled"],
            tracker_flag=flags["tracker_flag"],
            known_user_agents=flags["known_user_agents"],
            memory=self.duration(bots.get("memory", "1h"), "bots.memory", positive=True),
            email_after_delivery=self.bot_seconds(bots, "email_after_delivery"),
            email_click_gap=self.bot_seconds(bots, "email_click_gap"),
            email_links_count=links_count,
            email_links_within=links_within,
            email_no_open=no_open,
            web_burst_count=burst_count,
            web_burst_within=burst_within,
            web_max_dwell=max_dwell,
        )
        longest = max(m.bots.email_after_delivery, m.bots.email_click_gap, links_within)
        if max(longest, burst_within) > m.bots.memory:
            self.err("bots.memory: shorter than a pattern's window (it must see the window)")

    def bot_seconds(self, bots: dict[str, Any], key: str) -> float:
        """A pattern's duration, 0.0 when absent or ``false`` (off)."""
        value = bots.get(key, False)
        if value is False:
            return 0.0
        return self.duration(value, f"bots.{key}", positive=True)

    def bot_window(
        self, bots: dict[str, Any], key: str, *, dwell: bool
    ) -> tuple[int, float, float]:
        """``{ count = N, within = D [, max_dwell = D] }``: (N, D, dwell); zeros when off."""
        value = bots.get(key, False)
        if value is False:
            return 0, 0.0, 0.0
        loc = f"bots.{key}"
        table = self.table(value, loc)
        allowed = ("count", "within", "max_dwell") if dwell else ("count", "within")
        self.keys(table, loc, allowed)
        count = self.integer(table, "count", loc, 2, 2)
        within = self.duration(table.get("within", 0), f"{loc}.within", positive=True)
        max_dwell = 0.0
        if dwell:
            max_dwell = self.duration(table.get("max_dwell", 0), f"{loc}.max_dwell", positive=False)
        return count, within, max_dwell
