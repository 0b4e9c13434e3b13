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
from bisect import bisect_left
from collections.abc import Mapping
from heapq import heappop, heappush
from typing import Any, Literal, TypedDict

from scoring.model import GRADE_RANK, Rule, ScoringModel
from scoring.nextchange import (
    compute_next_change,
    next_change_at,
    no_crossing_before,
    refresh_bound,
    refresh_thresholds,
    thresholds,
)
from scoring.stages import evaluate_from_bottom, evaluate_index
from scoring.state import LeadState

__all__ = [
    "TRANSITION_NAMESPACE",
    "Reason",
    "Transition",
    "advance",
    "apply",
    "breakdown_at",
    "reasons_at",
    "score_at",
    "snapshot",
]

#: Namespace of the uuid5 transition ids (fixed forever: ids must be reproducible).
TRANSITION_NAMESPACE = uuid.UUID("6f1c3a52-5f0e-4d3b-9a4e-2b8f6c1d7e90")

_exp = math.exp
_NEG_INF = -math.inf


class Reason(TypedDict):
    rule_id: str
    description: str
    points: float


class Transition(TypedDict):
    """One stage change, as published on ``lead.qualified``."""

    event_id: str
    lead_id: str
    #: 1 for a lead's first stage change, +1 for each after it (stored in the state)
    sequence: int
    from_stage: str
    to_stage: str
    direction: Literal["up", "down"]
    cause: Literal["event", "profile", "decay", "disqualifier", "model_change"]
    trigger_event_id: str | None
    changed_at: float
    score: float
    breakdown: dict[str, float]
    fit_score: float
    grade: str
    bant: dict[str, bool]
    reasons: list[Reason]
    model_id: str
    model_version: str


# --------------------------------------------------------------------------- reading


def score_at(state: LeadState, model: ScoringModel, t: float) -> float:
    """The engagement score at time ``t`` (sum of every category, decayed to ``t``)."""
    rates = model.rates
    total = 0.0
    for cat, acc in state.categories.items():
        rate = rates.get(cat, 0.0)
        total += acc[0] * _exp((acc[1] - t) * rate) if rate else acc[0]
    return total


def breakdown_at(state: LeadState, model: ScoringModel, t: float) -> dict[str, float]:
    """Category -> points decayed to ``t`` (every category of the model)."""
    out = dict.fromkeys(model.categories, 0.0)
    rates = model.rates
    for cat, acc in state.categories.items():
        rate = rates.get(cat, 0.0)
        out[cat] = acc[0] * _exp((acc[1] - t) * rate) if rate else acc[0]
    return out


def reasons_at(state: LeadState, model: ScoringModel, t: float) -> list[Reason]:
    """The top ``reasons_top_n`` rules (engagement and fit) by |points at t|."""
    items: list[tuple[float, str, float]] = []
    by_id = model.rule_by_id
    for rid, acc in state.rules.items():
        rule = by_id.get(rid)
        rate = rule.rate if isinstance(rule, Rule) else 0.0
        pts = acc[0] * _exp((acc[1] - t) * rate) if rate else acc[0]
        if pts != 0.0:
            items.append((-abs(pts), rid, pts))
    for rid in state.fit_hits:
        rule = by_id.get(rid)
        if rule is not None and rule.points != 0.0:
            items.append((-abs(rule.points), rid, rule.points))
    items.sort()
    out: list[Reason] = []
    for _, rid, pts in items[: model.reasons_top_n]:
        rule = by_id.get(rid)
        out.append(
            {"rule_id": rid, "description": rule.description if rule else rid, "points": pts}
        )
    return out


def _stage_rank(model: ScoringModel, stage: str) -> int:
    return model.stage_index.get(stage, -1)


def _transition(
    state: LeadState,
    model: ScoringModel,
    old: str,
    new: str,
    cause: Literal["event", "profile", "decay", "disqualifier", "model_change"],
    trigger: str | None,
    at: float,
    score: float,
    *,
    key: str | None = None,
) -> Transition:
    """The stage change; its id is deterministic in the lead, the stages, the cause
    and ``key`` (default: the trigger, or the time in ms)."""
    if key is None:
        key = trigger if trigger is not None else str(round(at * 1000))
    tid = str(uuid.uuid5(TRANSITION_NAMESPACE, f"{state.lead_id}|{old}|{new}|{cause}|{key}"))
    up = _stage_rank(model, new) > _stage_rank(model, old)
    state.changes += 1
    return {
        "event_id": tid,
        "lead_id": state.lead_id,
        "sequence": state.changes,
        "from_stage": old,
        "to_stage": new,
        "direction": "up" if up else "down",
        "cause": cause,
        "trigger_event_id": trigger,
        "changed_at": at,
        "score": score,
        "breakdown": breakdown_at(state, model, at),
        "fit_score": state.fit_points,
        "grade": state.grade,
        "bant": dict(state.bant),
        "reasons": reasons_at(state, model, at),
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


def _advance_to(
    state: LeadState, model: ScoringModel, until: float, transitions: list[Transition]
) -> None:
    for _ in range(4 * len(model.stages) + 16):  # bounded: a few changes per stage at most
        if not state.nc_valid:
            compute_next_change(state, model)
        nc = state.next_change
        if nc is None or nc > until:
            return
        _decay_step(state, model, transitions)


# ------------------------------------------------------------------------- applying


def _init(state: LeadState, model: ScoringModel) -> None:
    state.stage = model.stages[0].name
    state.model = model.fingerprint
    state.nc_valid = False
    state.b_valid = False


def _add(state: LeadState, rule: Rule, points: float, t: float) -> None:
    _accumulate(state.rules, rule.id, points, t, rule.rate)
    state.rule_points[rule.id] = rule.points
    _accumulate(state.categories, rule.category, points, t, rule.rate)


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


def _cap_admit(state: LeadState, model: ScoringModel, rule: Rule, t: float, eid: str) -> bool:
    """Count the event under the rule's cap? The N smallest (time, event id) of each
    window count, whatever the arrival order: an earlier event arriving at a full
    window replaces the latest counted one."""
    per = rule.cap_per
    w = math.floor(t / per)
    wins = state.caps.get(rule.id)
    if wins is None:
        wins = state.caps[rule.id] = {}
    counted = wins.get(w)
    if counted is None:
        if len(wins) >= 4:  # prune now and then: bounded memory, little work per event
            cutoff = state._clock - model.max_lateness
            for old in [x for x in wins if (x + 1) * per <= cutoff]:
                del wins[old]  # every event of that window would be late now
        wins[w] = [t, eid]
        return True
    admitted = cap_insert(counted, t, eid, rule.cap_count)
    if admitted is None:
        return False
    # A changed window gets a new list, the old one is never changed in place:
    # LeadState.copy shares these lists (copying them was half a hot lead's copy).
    wins[w], dropped_at = admitted
    if dropped_at is not None:
        _add(state, rule, -rule.points, dropped_at)
    return True


def cap_insert(
    counted: list[Any], t: float, eid: str, cap_count: int
) -> tuple[list[Any], float | None] | None:
    """A cap window with (t, eid) counted: (the new flat list, the time of the event
    that dropped out or None), or None if the window is full of earlier events.

    The window is flat ``[t0, id0, t1, id1, ...]`` sorted by (time, id) (see
    ``LeadState.caps``); the pair goes after every pair it sorts after or equals, as
    ``bisect.insort`` would place it in a list of pairs.
    """
    n = len(counted)
    if not n or t > counted[-2] or (t == counted[-2] and eid >= counted[-1]):
        # After every counted event: the usual order, and the usual event at a full
        # window (most of a hot lead's capped events), decided without the search.
        return ([*counted, t, eid], None) if n < 2 * cap_count else None
    # Before the last pair, so the search stops at a pair that sorts after it.
    times = counted[::2]
    i = bisect_left(times, t)
    while times[i] == t and counted[2 * i + 1] <= eid:
        i += 1
    i *= 2
    if n < 2 * cap_count:
        return [*counted[:i], t, eid, *counted[i:]], None
    return [*counted[:i], t, eid, *counted[i:-2]], counted[-2]  # the last one drops out


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
    cause: Literal["event", "profile", "decay", "disqualifier", "model_change"],
    trigger: str | None,
    profile_changed: bool,
    *,
    key: str | None = None,
) -> Transition | None:
    """Evaluate the stage at ``at`` after a change; the transition if it moved
    (``key``: see ``_transition``)."""
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
    return _transition(state, model, old, new, cause, trigger, at, score, key=key)


def apply(
    state: LeadState, event: Mapping[str, Any], model: ScoringModel
) -> tuple[LeadState, list[Transition]]:
    """Score one event (a decoded, validated dict); returns the state and transitions.

    Order: a late event (time < clock - max_lateness) only increments
    ``state.late_dropped``; an event id already counted changes nothing. Otherwise the
    lead is first advanced to the event time if the event is newer (decay transitions
    at their exact times), then at ``T = max(clock, time)`` the matching rules count
    (caps permitting), profile attributes and rule ``sets`` merge, fit/BANT/disqualifiers
    are recomputed if the profile changed, and the stage is evaluated once: at most
    one event-caused transition, possibly over several stages.
    """
    t = event["time"]
    clock = state._clock
    if t < clock - model.max_lateness:
        state.late_dropped += 1
        return state, []
    eid = event["event_id"]
    seen = state.seen
    if eid in seen:
        return state, []
    transitions: list[Transition] = []
    if not state.stage:
        _init(state, model)
    if t > clock:
        if clock != _NEG_INF and not no_crossing_before(state, model, t):
            _advance_to(state, model, t, transitions)
        state._clock = t
        at = t
    else:
        at = clock
    # Dedup window: ids of counted events within max_lateness, at most dedup_max_ids.
    seen[eid] = t
    heap = state.seen_heap
    heappush(heap, (t, eid))
    cutoff = state._clock - model.max_lateness
    limit = model.dedup_max_ids
    while heap[0][0] < cutoff or len(heap) > limit:
        del seen[heappop(heap)[1]]
    state.events_seen += 1

    source = event["source"]
    profile_changed = False
    if source == "profile":
        data: Mapping[str, Any] = event.get("attributes") or {}
        profile_changed = _merge_profile(state, data, t, eid)
    else:
        data = event
    scored = False
    for rule in model.dispatch[source].match(data):
        if rule.sets is not None and _merge_profile(state, rule.sets, t, eid):
            profile_changed = True
        if rule.cap_count and not _cap_admit(state, model, rule, t, eid):
            continue
        _add(state, rule, rule.points, t)
        scored = True
    if profile_changed:
        if _recompute_profile(state, model):
            cause: Literal["event", "profile", "disqualifier"] = "disqualifier"
        else:
            cause = "profile" if source == "profile" else "event"
    elif scored:
        cause = "event"
    else:
        return state, transitions
    state.nc_valid = False
    tr = _settle(state, model, at, cause, eid, profile_changed)
    if tr is not None:
        transitions.append(tr)
    return state, transitions


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
        "clock": s.clock,
        "next_change_at": nc,
        "events_seen": s.events_seen,
        "model_id": model.id,
        "model_version": model.version,
    }
