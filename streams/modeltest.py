"""A model owner's unit tests: example leads run through a scoring model, each checked
against what the owner expects (``leadstream model test FIXTURES.toml``).

A fixtures file lists leads, each with its events and what should come of them::

    start = "2026-11-02T09:00:00Z"          # when "at" offsets count from (optional)

    [[leads]]
    name = "an email scanner stays cold"
    profile = { seniority = "manager", department = "marketing", company_size = 800 }
    events = [
      { at = "1m", source = "email", action = "click", campaign_id = "n1", link = "/pricing" },
      { at = "1m1s", source = "email", action = "click", campaign_id = "n1", link = "/demo" },
    ]
    expect = { stage = "cold", grade = "B", score = { max = 19.99 }, bots_filtered = 2 }

Each event is a message of its topic without ``event_id``, ``lead_id`` and
``occurred_at`` (filled in: ``at`` is an offset from ``start`` or an RFC 3339 time)
plus ``source`` (``web``, ``email``, ``webinar``, ``profile``); it is validated by the
topic's JSON Schema and marked by the worker's bot check, then scored, as the worker
would. ``profile`` is a profile update at ``start``. ``check_at`` (an offset or a time;
default: the last event's) is when the lead is looked at, after any decay.
Expectations, all optional: ``stage``, ``grade``, ``disqualifier`` (a string, or
``false`` for none), ``score`` and ``fit_score`` (a number, to 0.01, or ``{ min, max
}``), ``bots_filtered`` (a number), ``stages`` (every stage the lead was in, in
order: ``["cold"]`` means it never moved), ``reasons`` (rule ids that must be among
its engagement or fit reasons). A lead that fails shows what differs, then its score,
breakdown, reasons and history: why it is where it is.

Pure but for reading the file: no Kafka, no clock.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from scoring import LeadState, ScoringModel, advance, apply, snapshot
from scoring.durations import parse_duration
from streams.core import contract
from streams.core.bots import BotMarker
from streams.leadhistory import history_body, render

__all__ = [
    "DEFAULT_START",
    "FixtureError",
    "LeadFixture",
    "LeadResult",
    "format_results",
    "load_fixtures",
    "run_file",
    "run_fixtures",
]

#: ``start`` when a file gives none: 2026-01-01T00:00:00Z.
DEFAULT_START = 1_767_225_600.0
_EXPECT_KEYS = (
    "stage",
    "grade",
    "disqualifier",
    "score",
    "fit_score",
    "bots_filtered",
    "stages",
    "reasons",
)
_LEAD_KEYS = ("name", "profile", "events", "expect", "check_at")


class FixtureError(ValueError):
    """The fixtures file is invalid; ``problems`` lists every problem found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the fixtures:\n{lines}")


@dataclass(slots=True)
class LeadFixture:
    name: str
    #: (kind, message bytes as its topic carries it) in the file's order
    messages: list[tuple[str, bytes]]
    check_at: float
    expect: dict[str, Any]


@dataclass(slots=True)
class LeadResult:
    name: str
    problems: list[str] = field(default_factory=list)
    #: the lead as looked at, and its history (streams.leadhistory bodies)
    lead: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------------- reading


def _time(value: object, start: float, where: str, problems: list[str]) -> float:
    if isinstance(value, str) and ("T" in value or "t" in value):
        try:
            return contract.parse_time(value)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            return start
    try:
        return start + parse_duration(value)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return start


def _messages(
    lead: dict[str, Any], start: float, loc: str, problems: list[str]
) -> tuple[list[tuple[str, bytes]], float]:
    out: list[tuple[str, bytes]] = []
    last = start
    if "profile" in lead:
        events = [{"at": 0, "source": "profile", "attributes": lead["profile"]}]
    else:
        events = []
    events += lead.get("events", [])
    shift = 1 if "profile" in lead else 0
    for i, raw in enumerate(events):
        where = f"{loc}.events[{i - shift}]" if i >= shift else f"{loc}.profile"
        if not isinstance(raw, dict) or raw.get("source") not in contract.SOURCE_KINDS:
            problems.append(f"{where}: needs source = one of {', '.join(contract.SOURCE_KINDS)}")
            continue
        body = {k: v for k, v in raw.items() if k not in ("at", "source")}
        t = _time(raw.get("at", 0), start, f"{where}.at", problems)
        last = max(last, t)
        body.update(event_id=f"{loc}-e{i}", lead_id=loc, occurred_at=round(t * 1000))
        out.append((raw["source"], orjson.dumps(body)))
    return out, last


def _lead(raw: object, i: int, start: float, problems: list[str]) -> LeadFixture | None:
    loc = f"leads[{i}]"
    if not isinstance(raw, dict):
        problems.append(f"{loc}: must be a table ([[leads]])")
        return None
    problems.extend(f"{loc}.{k}: unknown key" for k in raw if k not in _LEAD_KEYS)
    expect = raw.get("expect", {})
    if not isinstance(expect, dict) or not expect:
        problems.append(f"{loc}.expect: missing (a table: {', '.join(_EXPECT_KEYS)})")
        expect = {}
    problems.extend(f"{loc}.expect.{k}: unknown key" for k in expect if k not in _EXPECT_KEYS)
    messages, last = _messages(raw, start, loc, problems)
    check_at = (
        _time(raw["check_at"], start, f"{loc}.check_at", problems) if "check_at" in raw else last
    )
    return LeadFixture(str(raw.get("name", loc)), messages, check_at, expect)


def load_fixtures(text: str, source: str = "<fixtures>") -> list[LeadFixture]:
    """Parse a fixtures file's text; :class:`FixtureError` lists every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FixtureError(source, [f"not valid TOML: {exc}"]) from exc
    problems: list[str] = []
    start = _time(data.get("start", 0), DEFAULT_START, "start", problems)
    leads = data.get("leads")
    if not isinstance(leads, list) or not leads:
        problems.append("leads: missing (an array of tables [[leads]])")
        leads = []
    fixtures = [f for i, raw in enumerate(leads) if (f := _lead(raw, i, start, problems))]
    if problems:
        raise FixtureError(source, problems)
    return fixtures


# ------------------------------------------------------------------------- running


def _score(
    fixture: LeadFixture, model: ScoringModel, marker: BotMarker | None
) -> tuple[LeadState, list[str], list[str]]:
    """The lead after its messages and decay to ``check_at``; the stages it was in;
    messages the topic's schema refused."""
    state = LeadState(fixture.name)
    stages: list[str] = []
    refused: list[str] = []
    for n, (kind, value) in enumerate(fixture.messages):
        try:  # no clock here: no event is in the future
            event = contract.decode_event(kind, value, now=math.inf, max_future_skew_s=0.0)
        except contract.Rejected as rejected:
            refused.append(f"event {n}: {rejected.reason}: {rejected.detail}")
            continue
        if marker is not None and kind in ("web", "email"):
            marker.mark(event)
        state, changes = apply(state, event, model)
        stages += [c["to_stage"] for c in changes]
    state, changes = advance(state, fixture.check_at, model)
    stages += [c["to_stage"] for c in changes]
    return state, [model.stages[0].name, *stages], refused


def _compare_number(name: str, want: object, got: float) -> str | None:
    if isinstance(want, dict):
        lo, hi = want.get("min", -math.inf), want.get("max", math.inf)
        if lo <= got <= hi:
            return None
        if lo == -math.inf:
            return f"{name}: expected at most {hi}, got {got:.2f}"
        if hi == math.inf:
            return f"{name}: expected at least {lo}, got {got:.2f}"
        return f"{name}: expected within [{lo}, {hi}], got {got:.2f}"
    if isinstance(want, int | float) and abs(got - want) > 0.005:
        return f"{name}: expected {want}, got {got:.2f}"
    return None


def _check(expect: dict[str, Any], lead: dict[str, Any], stages: list[str]) -> list[str]:
    out = [
        f"{key}: expected {expect[key]!r}, got {lead[key]!r}"
        for key in ("stage", "grade", "bots_filtered")
        if key in expect and expect[key] != lead[key]
    ]
    want = expect.get("disqualifier", lead["disqualifier"]) or None
    if want != lead["disqualifier"]:
        out.append(f"disqualifier: expected {want!r}, got {lead['disqualifier']!r}")
    out += [
        problem
        for key in ("score", "fit_score")
        if key in expect and (problem := _compare_number(key, expect[key], lead[key]))
    ]
    if "stages" in expect and list(expect["stages"]) != stages:
        out.append(f"stages: expected {' -> '.join(expect['stages'])}, got {' -> '.join(stages)}")
    have = {r["rule_id"] for r in lead["engagement_reasons"] + lead["fit_reasons"]}
    missing = [r for r in expect.get("reasons", []) if r not in have]
    if missing:
        among = ", ".join(sorted(have)) or "none"
        out.append(f"reasons: expected {', '.join(missing)} among {among}")
    return out


def run_fixtures(
    fixtures: list[LeadFixture], model: ScoringModel, marker: BotMarker | None = None
) -> list[LeadResult]:
    """Run every lead through ``model`` (bot marks as the worker would make them,
    when the model asks for them and no ``marker`` is given)."""
    if marker is None and model.bots.enabled and model.bots.known_user_agents:
        marker = BotMarker()
    results = []
    for fixture in fixtures:
        state, stages, refused = _score(fixture, model, marker)
        lead = contract.readable_points(snapshot(state, model, fixture.check_at))
        problems = [f"refused by the schema: {r}" for r in refused]
        problems += _check(fixture.expect, lead, stages)
        history = history_body(state, model, fixture.check_at)
        results.append(LeadResult(fixture.name, problems, lead, history))
    return results


def _why(result: LeadResult) -> list[str]:
    lead = result.lead
    parts = ", ".join(f"{k} {v:g}" for k, v in lead["breakdown"].items()) or "nothing"
    reasons = ", ".join(
        f"{r['rule_id']} {r['points']:+g}" for r in lead["engagement_reasons"] + lead["fit_reasons"]
    )
    return [
        f"    lead: {lead['stage']}, score {lead['score']:g} ({parts}), fit {lead['fit_score']:g} "
        f"(grade {lead['grade']}), BANT {sum(lead['bant'].values())}/4",
        f"    reasons: {reasons or 'none'}",
        *("    " + line for line in render(result.history).splitlines()[2:]),
    ]


def format_results(results: list[LeadResult]) -> str:
    """One line per lead (ok / FAIL), and under each failure what differs and why."""
    lines = []
    for r in results:
        lines.append(f"{'ok  ' if r.passed else 'FAIL'}  {r.name}")
        if not r.passed:
            lines += [f"    - {p}" for p in r.problems]
            lines += _why(r)
    failed = sum(1 for r in results if not r.passed)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)


def run_file(path: str | Path, model: ScoringModel) -> tuple[str, int]:
    """``leadstream model test FIXTURES.toml``: the report and the exit status (0 all
    passed, 1 a lead failed, 2 the file is invalid)."""
    p = Path(path)
    try:
        fixtures = load_fixtures(p.read_text(encoding="utf-8"), str(p))
    except OSError as exc:
        return f"{p}: cannot read the file: {exc.strerror or exc}", 2
    except FixtureError as exc:
        return str(exc), 2
    results = run_fixtures(fixtures, model)
    return format_results(results), 0 if all(r.passed for r in results) else 1
