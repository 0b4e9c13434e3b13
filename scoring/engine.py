"""Scoring transitions: ``apply`` an event, ``advance`` time, ``snapshot`` a lead.

``apply`` and ``advance`` take ownership of the state and return it mutated in place.
The score is a function of the set of counted events only (order-independent, exact
decay); the stage follows the score's path with hysteresis, so it is path-dependent by
design. The time decay alone next moves a lead to another stage is solved in
``scoring.nextchange``; ``advance`` applies those changes at their exact times. Worked
example (half-lives of seconds keep the numbers readable):

>>> from scoring.modelfile import load_model_text
>>> from scoring.nextchange import next_change_at, next_change_by
>>> m = load_model_text('''
... id = "doc"
... version = "1"
... [decay]
... web = "10s"
... [[rules]]
... id = "pricing"
... description = "Pricing page"
... source = "web"
... points = 40
... match = { path = { glob = "/pricing*" } }
... [fit]
... grades = { A = 3, B = 2, C = 1 }
... [[stages]]
... name = "cold"
... [[stages]]
... name = "warm"
... entry = { score = 30 }
... exit = { score = 10 }
... ''')
>>> s = LeadState("L1")
>>> ev = {"event_id": "e1", "lead_id": "L1", "source": "web", "time": 100.0,
...       "path": "/pricing/enterprise"}
>>> s, ts = apply(s, ev, m)
>>> [(t["from_stage"], t["to_stage"], t["cause"], t["changed_at"], t["score"]) for t in ts]
[('cold', 'warm', 'event', 100.0, 40.0)]
>>> next_change_at(s, m)    # 40 * 2**(-x/10) = 10  <=>  x = 20 s
120.0
>>> next_change_by(s, m, 119.0), next_change_by(s, m, 125.0)   # only if due by then
(None, 120.0)
>>> s, ts = advance(s, 130.0, m)
>>> [(t["from_stage"], t["to_stage"], t["cause"], t["changed_at"]) for t in ts]
[('warm', 'cold', 'decay', 120.0)]
>>> round(snapshot(s, m, 130.0)["score"], 12)   # 40 * 2**-3
5.0
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from heapq import heappop, heappush
from typing import Any, Literal, TypedDict

from scoring.bots import caught, held_clicks, opened, own_reason, pattern_kind, remember
from scoring.groupcaps import held, held_total
from scoring.history import record
from scoring.model import GRADE_RANK, Rule, ScoringModel
from scoring.nextchange import (
    compute_next_change,
    next_change_at,
    no_crossing_before,
    refresh_bound,
    refresh_thresholds,
    thresholds,
)
from scoring.reasons import (
    Reason,
    engagement_reasons,
    explain,
    fit_reasons,
    reasons_at,
    trigger_reasons,
)
from scoring.rulecaps import DENIED, cap_admit, cap_insert, cap_key, uncap
from scoring.stages import evaluate_from_bottom, evaluate_index
from scoring.state import LeadState

__all__ = [
    "KEPT_CONTRIBUTIONS",
    "TRANSITION_NAMESPACE",
    "Reason",
    "Transition",
    "advance",
    "apply",
    "breakdown_at",
    "cap_insert",
    "reasons_at",
    "score_at",
    "snapshot",
]

#: Namespace of the uuid5 transition ids (fixed forever: ids must be reproducible).
TRANSITION_NAMESPACE = uuid.UUID("6f1c3a52-5f0e-4d3b-9a4e-2b8f6c1d7e90")

_exp = math.exp
_NEG_INF = -math.inf
#: Sources bot filtering looks at (webinar platforms and the CRM see people).
_SCREENED = frozenset({"web", "email"})

Cause = Literal[
    "event", "profile", "decay", "disqualifier", "model_change", "outcome", "sla_breach", "restored"
]
#: What an event did, flat: ``[rule_id, points, rule_id, points, ...]`` (one list per
#: event, not one pair per rule: a scored event allocates as little as it can).
Effects = list[Any]
#: ``taken`` of an event no pattern looks at: shared, never changed (saves a list).
_NOTHING_TAKEN: Effects = []
#: Most contributions (a rule's points at one time) a lead keeps for score resets that
#: arrive after newer events (``LeadState.contributions``).
KEPT_CONTRIBUTIONS = 32
_KEPT_ITEMS = 3 * KEPT_CONTRIBUTIONS


class Transition(TypedDict):
    """One stage change, as published on ``lead.qualified``."""

    event_id: str
    lead_id: str
    #: 1 for a lead's first stage change, +1 for each after it (stored in the state)
    sequence: int
    from_stage: str
    to_stage: str
    #: "none": an SLA breach (the lead did not move)
    direction: Literal["up", "down", "none"]
    cause: Cause
    trigger_event_id: str | None
    changed_at: float
    score: float
    breakdown: dict[str, float]
    fit_score: float
    grade: str
    bant: dict[str, bool]
    reasons: list[Reason]
    #: what the triggering event did (its rules' points, retracted bot points, the
    #: disqualifier it set); empty for decay and model changes
    trigger_reasons: list[Reason]
    engagement_reasons: list[Reason]
    fit_reasons: list[Reason]
    model_id: str
    model_version: str


# --------------------------------------------------------------------------- reading


def score_at(state: LeadState, model: ScoringModel, t: float) -> float:
    """The engagement score at time ``t``: every category decayed to ``t`` and held
    within its group cap, the sum within the total cap (``scoring.groupcaps``)."""
    rates = model.rates
    caps = model.category_caps
    total = 0.0
    for cat, acc in state.categories.items():
        rate = rates.get(cat, 0.0)
        v = acc[0] * _exp((acc[1] - t) * rate) if rate else acc[0]
        total += held(model, cat, v) if caps else v
    return held_total(model, total)


def breakdown_at(state: LeadState, model: ScoringModel, t: float) -> dict[str, float]:
    """Category -> points decayed to ``t`` and held within its group cap (every
    category of the model)."""
    out = dict.fromkeys(model.categories, 0.0)
    rates = model.rates
    for cat, acc in state.categories.items():
        rate = rates.get(cat, 0.0)
        out[cat] = held(model, cat, acc[0] * _exp((acc[1] - t) * rate) if rate else acc[0])
    return out


def _stage_rank(model: ScoringModel, stage: str) -> int:
    return model.stage_rank.get(stage, -1)


def _entered(state: LeadState, model: ScoringModel, stage: str, at: float) -> None:
    """Bookkeeping of a stage entered at ``at``: its entry time (the KPIs) and its
    follow-up SLA, if it has one (replacing the last stage's)."""
    state.entered[stage] = at
    st = model.stage_by_name.get(stage)
    state.sla_due = at + st.sla if st is not None and st.sla else None


def _transition(
    state: LeadState,
    model: ScoringModel,
    old: str,
    new: str,
    cause: Cause,
    trigger: str | None,
    at: float,
    score: float,
    *,
    key: str | None = None,
    effects: Effects | None = None,
) -> Transition:
    """The stage change (also kept in the lead's history); its id is deterministic in
    the lead, the stages, the cause and ``key`` (default: the trigger, or the time in
    ms). ``effects``: what the triggering event did, its reasons first."""
    if key is None:
        key = trigger if trigger is not None else str(round(at * 1000))
    tid = str(uuid.uuid5(TRANSITION_NAMESPACE, f"{state.lead_id}|{old}|{new}|{cause}|{key}"))
    if old == new:
        direction: Literal["up", "down", "none"] = "none"
    else:
        direction = "up" if _stage_rank(model, new) > _stage_rank(model, old) else "down"
        _entered(state, model, new, at)
    state.changes += 1
    record(state, model, (at, "stage", trigger, cause, old, new, score))
    disqualifier = state.disqualifier if cause == "disqualifier" else None
    reasons, engagement, fit = explain(state, model, at)
    return {
        "event_id": tid,
        "lead_id": state.lead_id,
        "sequence": state.changes,
        "from_stage": old,
        "to_stage": new,
        "direction": direction,
        "cause": cause,
        "trigger_event_id": trigger,
        "changed_at": at,
        "score": score,
        "breakdown": breakdown_at(state, model, at),
        "fit_score": state.fit_points,
        "grade": state.grade,
        "bant": dict(state.bant),
        "reasons": reasons,
        "trigger_reasons": trigger_reasons(model, effects or [], disqualifier),
        "engagement_reasons": engagement,
        "fit_reasons": fit,
        "model_id": model.id,
        "model_version": model.version,
    }


# ------------------------------------------------------------------------ advancing


def _decay_step(state: LeadState, model: ScoringModel, transitions: list[Transition]) -> None:
    """Apply the cached next change (which must be valid and not None)."""
    at: float = state.next_change  # type: ignore[assignment]
    idx = model.stage_index[state.stage]
    lower, upper = thresholds(state, model, idx)
    score = refresh_bound(state, model, at)
    # The root is exact to ~1e-9 s; evaluate on the side it crossed to.
    score = max(score, upper) if state.nc_up else min(score, math.nextafter(lower, _NEG_INF))
    new = evaluate_index(model.stages, idx, score, GRADE_RANK[state.grade], state.bant_count)
    if at > state._clock:
        state._clock = at
    state.nc_valid = False
    if new != idx:
        old = state.stage
        state.stage = model.stages[new].name
        refresh_thresholds(state, model)
        transitions.append(_transition(state, model, old, state.stage, "decay", None, at, score))


def _breach(state: LeadState, model: ScoringModel, transitions: list[Transition]) -> None:
    """Publish the pending follow-up SLA's breach, at its deadline: once (the deadline
    is cleared, and the id is deterministic in the lead, stage and deadline)."""
    at: float = state.sla_due  # type: ignore[assignment]
    state.sla_due = None
    if at > state._clock:
        state._clock = at
    stage = state.stage
    score = score_at(state, model, at)
    transitions.append(_transition(state, model, stage, stage, "sla_breach", None, at, score))


def _advance_to(
    state: LeadState, model: ScoringModel, until: float, transitions: list[Transition]
) -> None:
    for _ in range(4 * len(model.stages) + 16):  # bounded: a few changes per stage at most
        if not state.nc_valid:
            compute_next_change(state, model)
        nc = state.next_change
        due = state.sla_due
        if due is not None and due <= until and (nc is None or due <= nc):
            _breach(state, model, transitions)
            continue
        if nc is None or nc > until:
            return
        _decay_step(state, model, transitions)


# ------------------------------------------------------------------------- applying


def _init(state: LeadState, model: ScoringModel) -> None:
    state.stage = model.stages[0].name
    state.model = model.fingerprint
    state.nc_valid = False
    state.b_valid = False


def _add(state: LeadState, model: ScoringModel, rule: Rule, points: float, t: float) -> None:
    if state.resets:  # an event from before an outcome's reset counts what it left
        points *= _reset_factor(state.resets, t)
    rid = rule.id
    _accumulate(state.rules, rid, points, t, rule.rate)
    state.rule_points[rid] = rule.points
    _accumulate(state.categories, rule.category, points, t, rule.rate)
    if model.has_resets and points:  # kept for a reset that arrives after newer events
        log = state.contributions
        if log and log[-3] >= t:
            _keep(log, rid, points, t)
        else:  # inline: most contributions are the newest
            log += (t, rid, points)
            if len(log) > _KEPT_ITEMS:
                del log[:3]


def _keep(log: list[Any], rid: str, points: float, t: float) -> None:
    """Note ``points`` added to rule ``rid`` at ``t`` in the contributions ``log``, in
    time order, summed with what the rule got at that same time (a contribution taken
    back entirely goes); the oldest go past :data:`KEPT_CONTRIBUTIONS`. (``apply``
    drops those older than ``max_lateness``: no reset that old is applied.)"""
    i = len(log)
    while i and log[i - 3] > t:
        i -= 3
    j = i
    while j and log[j - 3] == t:
        if log[j - 2] == rid:
            total = log[j - 1] + points
            if total:
                log[j - 1] = total
            else:  # taken back (a bot's, a displaced event): nothing left to keep
                del log[j - 3 : j]
            return
        j -= 3
    log[i:i] = [t, rid, points]
    if len(log) > _KEPT_ITEMS:
        del log[: len(log) - _KEPT_ITEMS]


def _forget(log: list[Any], cutoff: float) -> None:
    """Drop the contributions from before ``cutoff``."""
    n = len(log)
    drop = 0
    while drop < n and log[drop] < cutoff:
        drop += 3
    del log[:drop]


def _accumulate(
    accs: dict[str, list[float]], key: str, points: float, t: float, rate: float
) -> None:
    """Add ``points`` at time ``t`` to the (value, anchor) pair under ``key``.

    The anchor only moves forward, so events arriving in any order give the same
    pair (within float rounding): an older event is decayed to the anchor, a newer
    one decays the value to itself and becomes the anchor.
    """
    acc = accs.get(key)
    if acc is None:
        accs[key] = [points, t]
    elif not rate:
        acc[0] += points
    elif t <= acc[1]:
        acc[0] += points * _exp((t - acc[1]) * rate)
    else:
        acc[0] = acc[0] * _exp((acc[1] - t) * rate) + points
        acc[1] = t


def _merge_profile(state: LeadState, attrs: Mapping[str, Any], t: float, eid: str) -> bool:
    """Latest (event time, event id) wins per attribute; True if any value changed."""
    profile = state.profile
    times = state.profile_times
    changed = False
    stamp = (t, eid)
    for key, value in attrs.items():
        prev = times.get(key)
        if prev is not None and stamp <= prev:
            continue
        times[key] = stamp
        if key in profile:
            old = profile[key]
            if type(old) is not type(value) or old != value:
                changed = True
        else:
            changed = True
        profile[key] = value
    return changed


def _recompute_profile(state: LeadState, model: ScoringModel) -> bool:
    """Fit, grade, BANT and disqualifier from the profile; True if the disqualifier
    changed."""
    profile = state.profile
    fit = 0.0
    hits = []
    for fr in model.fit_rules:
        if fr.match(profile):
            fit += fr.points
            hits.append(fr.id)
    state.fit_points = fit
    state.fit_hits = hits
    state.grade = model.grade_for(fit)
    bant = {key: m(profile) for key, m in model.bant}
    state.bant = bant
    state.bant_count = sum(1 for v in bant.values() if v)
    disq = None
    for d in model.disqualifiers:
        if d.match(profile):
            disq = d.id
            break
    changed = disq != state.disqualifier
    state.disqualifier = disq
    state.nc_valid = False
    state.b_valid = False
    return changed


def _settle(
    state: LeadState,
    model: ScoringModel,
    at: float,
    cause: Cause,
    trigger: str | None,
    profile_changed: bool,
    *,
    key: str | None = None,
    effects: Effects | None = None,
) -> Transition | None:
    """Evaluate the stage at ``at`` after a change; the transition if it moved
    (``key``, ``effects``: see ``_transition``)."""
    old = state.stage
    score = refresh_bound(state, model, at)
    if (
        not profile_changed
        and state.b_lower <= score < state.b_upper
        and state.disqualifier is None
        and old in model.stage_index
    ):
        return None  # fast path: grade/BANT unchanged, score between the thresholds
    if state.disqualifier is not None:
        new = model.disqualifier_by_id[state.disqualifier].stage
    elif old in model.sales_stages:
        return None  # sales own it: the score does not move the lead out
    else:
        stages = model.stages
        idx = model.stage_index.get(old)
        grade = GRADE_RANK[state.grade]
        if idx is None or cause == "disqualifier":  # leaving a forced stage: from the bottom
            new = stages[evaluate_from_bottom(stages, score, grade, state.bant_count)].name
        else:
            new = stages[evaluate_index(stages, idx, score, grade, state.bant_count)].name
    if new == old:
        return None
    state.stage = new
    state.nc_valid = False
    refresh_thresholds(state, model)
    return _transition(state, model, old, new, cause, trigger, at, score, key=key, effects=effects)


# ------------------------------------------------------------------------ restoring


def restate(state: LeadState, shown: LeadState, at: float, model: ScoringModel) -> list[Transition]:
    """Keep a lead's stage changes consistent after it fell back to ``state``, an
    earlier state, from ``shown``, a later one whose stage changes were published
    (the shell gives a state up when scoring it failed half-way).

    Numbering goes on after ``shown``'s, so the lead's next changes are never taken
    for repeats; and if the stages differ, one change ``shown.stage -> state.stage``
    (cause ``restored``, its id deterministic in the numbers) tells consumers where
    the lead is. ``state`` (a new one, if the lead had no earlier state) is changed
    in place.
    """
    if shown.changes <= state.changes:
        return []
    if not state.model:
        _init(state, model)
    state.changes = shown.changes
    if shown.stage == state.stage:
        return []
    score = score_at(state, model, max(at, state._clock))
    key = f"{shown.changes}"
    return [
        _transition(state, model, shown.stage, state.stage, "restored", None, at, score, key=key)
    ]


# ------------------------------------------------------------------------- outcomes


def _reset_factor(resets: list[tuple[float, float]], t: float) -> float:
    """What the resets after ``t`` leave of points counted at ``t``."""
    f = 1.0
    for at, factor in resets:
        if at > t:
            f *= factor
    return f


def _reset(state: LeadState, model: ScoringModel, factor: float, t: float) -> None:
    """Keep ``factor`` of the engagement score as read at ``t`` (recycling: the lead
    starts nurture afresh). Points a cap holds back are not kept: each category is
    scaled to ``factor`` of what it shows, with its rules alike, and all of them
    further if the total cap held the sum. Points counted at or after ``t`` (events
    newer than the outcome that arrived before it) are kept whole: taken out of the
    accumulators before the score is read and scaled, put back after, as their
    contributions (``state.contributions``) say. Events from before ``t`` that arrive
    later count ``factor`` of their points. Resets older than the lateness window can
    no longer apply to anything: dropped.

    Exact (the same score whatever the order of events and outcomes) while no group or
    total cap holds points back at ``t`` and the lead still keeps every contribution
    at or after ``t`` (its last ``KEPT_CONTRIBUTIONS``). When a cap holds at ``t``, the
    share kept depends on what the score was: exact if the events and outcomes from
    before ``t`` arrived before this one (one from before that arrives later counts
    ``factor`` of its points, not what the cap would have let through)."""
    log = state.contributions
    start = len(log)
    while start and log[start - 3] >= t:
        start -= 3
    newer = log[start:]
    if newer:
        _shift(state, model, newer, -1.0)
    rates = model.rates
    ratios: dict[str, float] = {}
    total = 0.0
    for cat, acc in state.categories.items():
        rate = rates.get(cat, 0.0)
        raw = acc[0] * _exp((acc[1] - t) * rate) if rate else acc[0]
        shown = held(model, cat, raw)
        ratios[cat] = shown / raw if raw else 1.0
        total += shown
    cap = model.total_cap
    k = factor * (cap / abs(total) if abs(total) > cap else 1.0)
    for cat, acc in state.categories.items():
        acc[0] *= k * ratios[cat]
    by_id = model.rule_by_id
    for rid, acc in state.rules.items():
        rule = by_id.get(rid)
        acc[0] *= k * (ratios.get(rule.category, 1.0) if isinstance(rule, Rule) else 1.0)
    for i in range(0, start, 3):  # what the older contributions are worth now
        rule = by_id.get(log[i + 1])
        log[i + 2] *= k * (ratios.get(rule.category, 1.0) if isinstance(rule, Rule) else 1.0)
    if newer:
        _shift(state, model, newer, 1.0)
    cutoff = state._clock - model.max_lateness
    state.resets = [r for r in state.resets if r[0] >= cutoff]
    state.resets.append((t, factor))


def _shift(state: LeadState, model: ScoringModel, flat: list[Any], sign: float) -> None:
    """Add (``sign`` 1) or take out (-1) the contributions ``flat`` (as in
    ``state.contributions``) from the rule and category accumulators."""
    by_id = model.rule_by_id
    for i in range(0, len(flat), 3):
        rule = by_id.get(flat[i + 1])
        if isinstance(rule, Rule):
            t = flat[i]
            points = sign * flat[i + 2]
            _accumulate(state.rules, rule.id, points, t, rule.rate)
            _accumulate(state.categories, rule.category, points, t, rule.rate)


def _outcome(
    state: LeadState,
    model: ScoringModel,
    event: Mapping[str, Any],
    at: float,
    transitions: list[Transition],
) -> list[Transition]:
    """An outcome from the CRM: its rules count like any event's; it meets the
    current stage's follow-up SLA if the stage says so; then it moves the lead where
    ``[outcomes.<outcome>]`` says (its reset first: the outcome's own points are
    kept), or the stage is settled as after any event (a stage sales own holds)."""
    eid = event["event_id"]
    outcome = event["outcome"]
    move = model.outcome_moves.get(outcome)
    if move is not None and move.reset != 1.0:  # before its own rules count
        _reset(state, model, move.reset, event["time"])
    effects: Effects = []
    profile_changed = _score_rules(state, model, "outcome", event, event, effects, None)
    cause: Cause = "event"
    if profile_changed and _recompute_profile(state, model):
        cause = "disqualifier"
    record(state, model, (event["time"], "event", eid, "outcome", *effects))
    st = model.stage_by_name.get(state.stage)
    if state.sla_due is not None and st is not None and outcome in st.sla_met_by:
        state.sla_due = None
    state.nc_valid = False
    state.b_valid = False
    if move is not None and state.disqualifier is None:
        tr = _move(state, model, move.stage, at, eid, effects)
    else:
        tr = _settle(state, model, at, cause, eid, True, effects=effects)
    if tr is not None:
        transitions.append(tr)
    return transitions


def _move(
    state: LeadState, model: ScoringModel, target: str, at: float, eid: str, effects: Effects
) -> Transition | None:
    """Move to ``target`` (cause ``outcome``). An ordered stage marketing owns is a
    floor: a lead whose score already holds a higher stage enters that one."""
    score = refresh_bound(state, model, at)
    idx = model.stage_index.get(target)
    new = target
    if idx is not None and not model.stages[idx].sales:
        top = evaluate_from_bottom(model.stages, score, GRADE_RANK[state.grade], state.bant_count)
        new = model.stages[max(idx, top)].name
    old = state.stage
    if new == old:
        return None
    state.stage = new
    refresh_thresholds(state, model)
    return _transition(state, model, old, new, "outcome", eid, at, score, effects=effects)


def _unless(state: LeadState, rule: Rule, t: float) -> bool:
    """Does the rule's ``unless`` hold for the lead's profile as of ``t``? Attributes
    set after ``t`` read as not yet known: a click made before the unsubscribe still
    counts when it arrives after it."""
    profile = state.profile
    times = state.profile_times
    view = {f: profile[f] for f in rule.unless_fields if f in profile and times[f][0] <= t}
    return rule.unless is not None and rule.unless(view)


def _score_rules(
    state: LeadState,
    model: ScoringModel,
    source: str,
    data: Mapping[str, Any],
    event: Mapping[str, Any],
    effects: Effects,
    counted: list[Any] | None,
) -> bool:
    """Count every matching rule (``unless`` and caps permitting), merging rule
    ``sets``; True if the profile changed. Each count goes to ``effects`` (and to
    ``counted``, the event's pattern entry, if it has one)."""
    t = event["time"]
    eid = event["event_id"]
    profile_changed = False
    for rule in model.dispatch[source].match(data):
        if rule.unless is not None and _unless(state, rule, t):
            continue
        if rule.sets is not None and _merge_profile(state, rule.sets, t, eid):
            profile_changed = True
        if rule.cap_count:
            dropped_at = cap_admit(state, model, rule, data, t, eid)
            if dropped_at is DENIED:
                continue
            if dropped_at is not None:  # a later event no longer counts
                _add(state, model, rule, -rule.points, dropped_at)
                effects.append(rule.id)
                effects.append(-rule.points)
        _add(state, model, rule, rule.points, t)
        effects.append(rule.id)  # two appends: no pair to allocate (and collect)
        effects.append(rule.points)
        if counted is not None:
            counted.append((rule.id, cap_key(rule, data, t) if rule.cap_count else None))
    return profile_changed


def _screen(
    state: LeadState,
    model: ScoringModel,
    event: Mapping[str, Any],
    kind: str,
    reason: str,
    taken: Effects,
) -> tuple[str, list[Any] | None]:
    """Bot filtering (``scoring.bots``) of an event a pattern may use (its ``kind``):
    the event's own reason ("" for a person; ``reason`` it has already), and the list
    to record what it counts in, if a pattern keeps it. Earlier events it shows to be
    a bot's are retracted; what they gave back goes to ``taken``. A click no pattern
    catches is held (reason ``email_no_open``) if ``email_no_open`` is on and no open
    of its email is known."""
    rules = model.bots
    i = remember(state, model, event, kind, bool(reason))
    if i < 0:
        return reason, None
    recent = state.recent
    retracted: list[str] = []
    for j, name in caught(recent, i, rules).items():
        if j != i:
            if _retract(state, model, j, name, taken):
                retracted.append(name)
        elif not reason:
            reason = name
            recent[i][5] = None  # the entry is this call's own: never shared yet
    if retracted:
        state.filtered = tuple(retracted)
    if not reason and kind == "c" and rules.email_no_open and not opened(recent, i, rules):
        reason = "email_no_open"
        own = recent[i]  # this call's own entry, as above
        own[2] = "h"
        own[5] = None
    return reason, None if reason else recent[i][5]


def _release(
    state: LeadState, model: ScoringModel, event: Mapping[str, Any], taken: Effects
) -> bool:
    """A person's open (``email_no_open``): remembered, and the clicks on its email
    held for want of one are restored (what they add goes to ``taken``); True if a
    restored click's rule ``sets`` changed the profile."""
    remember(state, model, event, "o", True)  # even one too old to keep releases clicks
    changed = False
    for j in held_clicks(state.recent, event["time"], event.get("campaign_id"), model.bots):
        if _restore(state, model, j, taken):
            changed = True
    return changed


def _restore(state: LeadState, model: ScoringModel, j: int, taken: Effects) -> bool:
    """Score the held click of pattern entry ``j`` at its own time, as a late event
    is scored (decay, caps, resets and ``unless`` as of then); True if its rules'
    ``sets`` changed the profile."""
    t, eid, _, campaign, link = state.recent[j][:5]
    click: dict[str, Any] = {
        "event_id": eid,
        "lead_id": state.lead_id,
        "source": "email",
        "time": t,
        "action": "click",
        "campaign_id": campaign,
    }
    if link is not None:
        click["link"] = link
    effects: Effects = []
    counted: list[Any] = []
    changed = _score_rules(state, model, "email", click, click, effects, counted)
    state.recent[j] = [t, eid, "c", campaign, link, counted]  # replaced: copies share it
    state.bots_filtered -= 1
    if effects:
        record(state, model, (t, "event", eid, "email", *effects))
        taken.extend(effects)
    return changed


def _retract(state: LeadState, model: ScoringModel, j: int, name: str, taken: Effects) -> bool:
    """Take back what the event of pattern entry ``j`` counted, now found a bot's."""
    entry = state.recent[j]
    counted = entry[5]
    if counted is None:
        if entry[2] == "h":  # held already (counted then): now a bot's, never restored
            state.recent[j] = [entry[0], entry[1], "c", entry[3], entry[4], None]
        return False  # filtered already
    t, eid = entry[0], entry[1]
    back: Effects = []
    for rid, key in counted:
        rule = model.rule_by_id.get(rid)
        if not isinstance(rule, Rule):
            continue  # removed by a model change, with its points
        if rule.cap_count and not uncap(state, rule, key, t, eid):
            continue  # displaced from its window already: its points went then
        _add(state, model, rule, -rule.points, t)
        back.append(rid)
        back.append(-rule.points)
    state.recent[j] = [*entry[:5], None]
    state.bots_filtered += 1
    record(state, model, (t, "retracted", eid, name, *back))
    taken.extend(back)
    return True


def _filtered(
    state: LeadState,
    model: ScoringModel,
    event: Mapping[str, Any],
    at: float,
    reason: str,
    taken: Effects,
    transitions: list[Transition],
) -> tuple[LeadState, list[Transition]]:
    """A bot's event: counted as filtered, in the history, never scored. If it
    exposed earlier ones, their retraction may move the stage."""
    eid = event["event_id"]
    state.bots_filtered += 1
    state.filtered = (reason, *state.filtered)
    state.filtered_self = True
    record(state, model, (event["time"], "bot", eid, event["source"], reason))
    if taken:
        state.nc_valid = False
        tr = _settle(state, model, at, "event", eid, False, effects=taken)
        if tr is not None:
            transitions.append(tr)
    return state, transitions


def _fit_effects(
    model: ScoringModel, before: list[str], after: list[str], effects: Effects
) -> None:
    """Fit rules a profile change made match (+points) or stop matching (-points)."""
    by_id = model.rule_by_id
    was = set(before)
    now = set(after)
    for rid in after:
        if rid not in was:
            effects.append(rid)
            effects.append(by_id[rid].points)
    for rid in before:
        if rid not in now and rid in by_id:
            effects.append(rid)
            effects.append(-by_id[rid].points)


def apply(
    state: LeadState, event: Mapping[str, Any], model: ScoringModel
) -> tuple[LeadState, list[Transition]]:
    """Score one event (a decoded, validated dict); returns the state and transitions.

    Order: a late event (time < clock - max_lateness) only increments
    ``state.late_dropped``; an event id already counted changes nothing. Otherwise the
    lead is first advanced to the event time if the event is newer (decay transitions
    at their exact times); a web or email event a bot sent (``scoring.bots``) is
    filtered (``state.filtered``), never scored, and may take back earlier events it
    shows were a bot's too; else at ``T = max(clock, time)`` the matching rules count
    (``unless`` and caps permitting), profile attributes and rule ``sets`` merge,
    fit/BANT/disqualifiers are recomputed if the profile changed, and the stage is
    evaluated once: at most one event-caused transition, possibly over several stages.
    """
    state.filtered = ()
    state.filtered_self = False
    t = event["time"]
    clock = state._clock
    if t < clock - model.max_lateness:
        state.late_dropped += 1
        return state, []
    eid = event["event_id"]
    if eid in state.seen:
        return state, []
    transitions: list[Transition] = []
    if not state.stage:
        _init(state, model)
        state.since = t
    if t > clock:
        if clock != _NEG_INF and not no_crossing_before(state, model, t):
            _advance_to(state, model, t, transitions)
        state._clock = t
        at = t
    else:
        at = clock
    # Dedup window: ids of counted events within max_lateness, at most dedup_max_ids.
    seen = state.seen
    seen[eid] = t
    heap = state.seen_heap
    heappush(heap, (t, eid))
    cutoff = state._clock - model.max_lateness
    limit = model.dedup_max_ids
    while heap[0][0] < cutoff or len(heap) > limit:
        del seen[heappop(heap)[1]]
    contributions = state.contributions
    if contributions and contributions[0] < cutoff:
        _forget(contributions, cutoff)
    state.events_seen += 1
    source = event["source"]
    taken: Effects = _NOTHING_TAKEN
    counted = None
    restored_sets = False
    bots = model.bots
    if bots.enabled and source in _SCREENED:
        reason = own_reason(event, bots)
        kind = pattern_kind(event, source, bots)
        if kind == "o":
            if not reason:  # a bot's open shows no person
                taken = []
                restored_sets = _release(state, model, event, taken)
        elif kind:
            taken = []
            reason, counted = _screen(state, model, event, kind, reason, taken)
        if reason:
            return _filtered(state, model, event, at, reason, taken, transitions)
    return state, _scored(state, model, event, at, taken, counted, restored_sets, transitions)


def _scored(
    state: LeadState,
    model: ScoringModel,
    event: Mapping[str, Any],
    at: float,
    taken: Effects,
    counted: list[Any] | None,
    profile_changed: bool,
    transitions: list[Transition],
) -> list[Transition]:
    """The rest of ``apply`` for an event that is scored (``profile_changed``: the
    ``sets`` of clicks it restored changed the profile)."""
    source = event["source"]
    if source == "outcome":
        return _outcome(state, model, event, at, transitions)
    eid = event["event_id"]
    if source == "profile":
        data: Mapping[str, Any] = event.get("attributes") or {}
        profile_changed = _merge_profile(state, data, event["time"], eid)
    else:
        data = event
    effects: Effects = []
    if _score_rules(state, model, source, data, event, effects, counted):
        profile_changed = True
    if profile_changed:
        fit_before = state.fit_hits
        if _recompute_profile(state, model):
            cause: Cause = "disqualifier"
        else:
            cause = "profile" if source == "profile" else "event"
        _fit_effects(model, fit_before, state.fit_hits, effects)
    elif effects or taken:
        cause = "event"
    else:
        return transitions
    if effects and model.history_size:  # record(), inline: most scored events get here
        history = state.history
        history.append((event["time"], "event", eid, source, *effects))
        if len(history) > model.history_size:
            del history[0]
    state.nc_valid = False
    tr = _settle(
        state, model, at, cause, eid, profile_changed, effects=effects + taken if taken else effects
    )
    if tr is not None:
        transitions.append(tr)
    return transitions


def advance(
    state: LeadState, now: float, model: ScoringModel
) -> tuple[LeadState, list[Transition]]:
    """Apply the stage changes decay alone causes up to ``now``, each at its exact
    time (hysteresis followed exactly); then ``clock = max(clock, now)``."""
    transitions: list[Transition] = []
    if not state.stage:
        _init(state, model)
    if state._clock != _NEG_INF:
        _advance_to(state, model, now, transitions)
    if now > state._clock:
        state._clock = now
    return state, transitions


def snapshot(state: LeadState, model: ScoringModel, now: float) -> dict[str, Any]:
    """The lead as of ``now`` for the query API (does not change ``state``).

    If a decay change is due by ``now`` it is reflected (on a copy).
    """
    nc = next_change_at(state, model)
    s = state
    if not s.stage or (nc is not None and nc <= now):
        s, _ = advance(state.copy(), now, model)
        nc = next_change_at(s, model)
    clock = s._clock
    at = max(now, clock)
    return {
        "lead_id": s.lead_id,
        "stage": s.stage,
        "score": score_at(s, model, at),
        "breakdown": breakdown_at(s, model, at),
        "fit_score": s.fit_points,
        "grade": s.grade,
        "bant": dict(s.bant),
        "disqualifier": s.disqualifier,
        "reasons": reasons_at(s, model, at),
        "engagement_reasons": engagement_reasons(s, model, at),
        "fit_reasons": fit_reasons(s, model),
        "clock": s.clock,
        "next_change_at": nc,
        # the follow-up SLA the lead is waiting on (None: none pending), and when it
        # entered its stage (None: never recorded, e.g. its first stage)
        "sla_due": s.sla_due,
        "stage_entered_at": s.entered.get(s.stage),
        "events_seen": s.events_seen,
        "bots_filtered": s.bots_filtered,
        "model_id": model.id,
        "model_version": model.version,
    }
