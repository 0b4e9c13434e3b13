"""When decay alone next changes a lead's stage: ``next_change_at``, ``next_change_by``.

Between events a lead's score only decays, ``k + sum_c A_c 2**(-(t - a_c)/h_c)``, so
its stage can change only where that sum crosses one of two thresholds: the current
stage's exit score (down) or the entry score of the lowest higher stage the lead's
grade and BANT allow (up). ``compute_next_change`` solves for the first crossing after
the lead's clock (``scoring.decay.first_crossing``, terms of one rate merged) and
caches it in the state: ``next_change`` and ``nc_up``, valid (``nc_valid``) until the
engine changes the lead again (an event, a profile change, a decay step).

Solving is the costly part, and a caller often only needs to know whether a change
is due before some time (the engine, before it moves a lead to a newer event's time;
a worker scheduling the changes due soon). ``no_crossing_before`` answers that
cheaply when it can, from the cached exact answer, else from a bound the state
caches (``b_*``: the no-decay sum and the positive and negative decaying sums at
``b_t0``, with the thresholds; ``refresh_bound`` and ``refresh_thresholds`` keep it as
the engine scores), else from a bound over every term.

A lead in a stage sales own (``owner = "sales"``, ``[[sales_stages]]``) is never
moved by decay: no crossing is solved for it. A pending follow-up SLA
(``state.sla_due``) is a change too: ``next_change_at`` and ``next_change_by`` answer
the earlier of the decay crossing and the SLA deadline, and ``no_crossing_before``
is False once the deadline is within reach, so the worker's timer fires then and
``advance`` publishes the breach.

Only these caches change here, never a stage, score or clock: ``scoring.engine``
applies the changes found as transitions.

>>> from scoring.engine import apply
>>> from scoring.modelfile import load_default_model
>>> from scoring.state import LeadState
>>> m = load_default_model()
>>> demo = {"event_id": "e1", "lead_id": "L1", "source": "web", "time": 0.0, "path": "/demo"}
>>> s, _ = apply(LeadState("L1"), demo, m)   # 20 points: warm (entry 20, exit 10)
>>> s.stage, round(next_change_at(s, m) / 86400, 9)   # 20 * 2**(-x/30d) = 10: 30 days
('warm', 30.0)
>>> next_change_by(s, m, 86400.0) is None   # not due within a day
True
"""

from __future__ import annotations

import math

from scoring.decay import first_crossing
from scoring.groupcaps import held, release_after
from scoring.model import GRADE_RANK, ScoringModel
from scoring.state import LeadState

__all__ = [
    "compute_next_change",
    "next_change_at",
    "next_change_by",
    "no_crossing_before",
    "refresh_bound",
    "refresh_thresholds",
    "thresholds",
]

_exp = math.exp
_NEG_INF = -math.inf
_INF = math.inf
#: A category the model does not know (a state from another model): no decay, no cap.
_NO_INFO = (0.0, math.inf)


# ---------------------------------------------------------------------- exact time


def thresholds(state: LeadState, model: ScoringModel, idx: int) -> tuple[float, float]:
    """(exit score of the current stage or -inf, lowest reachable higher entry or inf)."""
    stages = model.stages
    lower = stages[idx].exit_score if idx > 0 else _NEG_INF
    grade = GRADE_RANK[state.grade]
    bant = state.bant_count
    for st in stages[idx + 1 :]:
        if grade >= st.entry_grade and bant >= st.entry_bant:
            return lower, st.entry_score
    return lower, _INF


def compute_next_change(state: LeadState, model: ScoringModel) -> None:
    """Solve for the next change and cache it (``next_change``, ``nc_up``, ``nc_valid``)."""
    state.nc_valid = True
    state.next_change = None
    clock = state._clock
    if state.disqualifier is not None or clock == _NEG_INF:
        return
    idx = model.stage_index.get(state.stage)
    if idx is None or model.stages[idx].sales:
        return
    lower, upper = thresholds(state, model, idx)
    rates = model.rates
    caps = model.category_caps
    k = 0.0
    terms: list[tuple[float, float]] = []  # (rate, value at clock) of decaying categories
    held_back: list[tuple[float, float, float, float]] = []  # (release, cap, rate, value)
    for cat, acc in state.categories.items():
        rate = rates.get(cat, 0.0)
        n = caps.get(cat) if caps else None
        if not rate:
            k += held(model, cat, acc[0])
            continue
        v = acc[0] * _exp((acc[1] - clock) * rate)
        if n is not None and abs(v) > n:
            held_back.append((release_after(v, n, rate), math.copysign(n, v), rate, v))
        else:
            terms.append((rate, v))
    # The total cap holds every threshold (scoring.groupcaps): it moves no crossing.
    if not held_back:
        found = _first_change(terms, k, lower, upper, clock)
    else:
        found = _first_change_held(terms, held_back, k, lower, upper, clock)
    if found is not None:
        state.next_change = clock + found[0]
        state.nc_up = found[1]


def _first_change(
    terms: list[tuple[float, float]], k: float, lower: float, upper: float, clock: float
) -> tuple[float, bool] | None:
    """(offset from ``clock``, up?) of the first crossing of ``lower`` (down) or
    ``upper`` (up) by ``k + sum v * exp(-rate * x)``; None if none."""
    by_rate: dict[float, float] = {}
    for rate, v in terms:
        by_rate[rate] = by_rate.get(rate, 0.0) + v
    mus = [r for r, c in by_rate.items() if c != 0.0]
    if not mus:
        return None
    cs = [by_rate[r] for r in mus]
    tol = max(1e-9, abs(clock) * 1e-15)
    best: float | None = None
    up = False
    if lower != _NEG_INF:
        x = first_crossing(cs, mus, k, lower, False, tol)
        if x is not None:
            best = x
    if upper != _INF:
        x = first_crossing(cs, mus, k, upper, True, tol)
        if x is not None and (best is None or x < best):
            best, up = x, True
    return None if best is None else (best, up)


def _first_change_held(
    terms: list[tuple[float, float]],
    held_back: list[tuple[float, float, float, float]],
    k: float,
    lower: float,
    upper: float,
    clock: float,
) -> tuple[float, bool] | None:
    """``_first_change`` while some categories are held at their cap: between two
    release times the held ones are constants, so solve piece by piece (a held
    category reads its cap until its decaying sum comes back within it, then decays
    as its own term)."""
    held_back.sort()
    start = 0.0
    for i, (release, _, rate, value) in enumerate(held_back):
        piece_k = k + sum(cap for _, cap, _, _ in held_back[i:])
        found = _first_change(_shifted(terms, start), piece_k, lower, upper, clock + start)
        if found is not None and start + found[0] <= release:
            return start + found[0], found[1]
        terms.append((rate, value))
        start = release
    found = _first_change(_shifted(terms, start), k, lower, upper, clock + start)
    return None if found is None else (start + found[0], found[1])


def _shifted(terms: list[tuple[float, float]], start: float) -> list[tuple[float, float]]:
    """The terms as values at offset ``start`` instead of 0."""
    return [(r, v * _exp(-r * start)) for r, v in terms]


def next_change_at(state: LeadState, model: ScoringModel) -> float | None:
    """When decay alone would next move the lead to another stage (None: never).

    Exact: the score ``k + sum_c A_c 2**(-(t - a_c)/h_c)`` is solved for the first time
    after ``clock`` it drops below the current stage's exit score or rises to the entry
    score of a higher stage the lead's grade and BANT allow (see ``scoring.decay``).
    Cached in the state until an event or profile change invalidates it. A pending
    follow-up SLA deadline counts as a change (the breach ``advance`` publishes).
    """
    if not state.nc_valid:
        compute_next_change(state, model)
    return _first(state.next_change, state.sla_due)


def _first(nc: float | None, due: float | None) -> float | None:
    if due is None:
        return nc
    return due if nc is None or due < nc else nc


def next_change_by(state: LeadState, model: ScoringModel, until: float) -> float | None:
    """``next_change_at`` if it is at or before ``until``, else None.

    For a caller that only needs the changes due soon (a worker scheduling them as it
    scores, before the state is written): the cached bound rules out a change before
    ``until`` for most states without solving for the exact time.
    """
    due = state.sla_due
    if due is not None and due <= until:
        return next_change_at(state, model)
    if not state.nc_valid:
        # A millisecond past ``until``: at the crossing itself, the bound and the
        # root may round to either side of the threshold.
        if no_crossing_before(state, model, until + 1e-3):
            return None
        compute_next_change(state, model)
    nc = state.next_change
    return nc if nc is not None and nc <= until else None


# ------------------------------------------------------------------- cached bound


def refresh_bound(state: LeadState, model: ScoringModel, at: float) -> float:
    """The score at ``at``; also caches the fast-path bound as of ``at``."""
    info = model.category_info
    k = pos = neg = 0.0
    for cat, acc in state.categories.items():
        rate, n = info.get(cat, _NO_INFO)
        v = acc[0] * _exp((acc[1] - at) * rate) if rate else acc[0]
        # Held within its cap (inf: none), a decaying value still only moves towards
        # 0: the bound holds.
        if v > n:
            v = n
        elif v < -n:
            v = -n
        if not rate:
            k += v
        elif v > 0.0:
            pos += v
        else:
            neg += v
    if not state.b_valid:  # else the thresholds are current (see refresh_thresholds)
        refresh_thresholds(state, model)
        state.b_valid = True
    state.b_t0 = at
    state.b_k = k
    state.b_pos = pos
    state.b_neg = neg
    total = k + neg + pos
    n = model.total_cap
    return n if total > n else -n if total < -n else total


def refresh_thresholds(state: LeadState, model: ScoringModel) -> None:
    """Cache the thresholds: on every stage change and with every bound rebuilt after
    a grade/BANT change (which clears ``b_valid``)."""
    idx = model.stage_index.get(state.stage)
    if state.disqualifier is not None or idx is None or model.stages[idx].sales:
        state.b_lower, state.b_upper = _NEG_INF, _INF
    else:
        state.b_lower, state.b_upper = thresholds(state, model, idx)


def no_crossing_before(state: LeadState, model: ScoringModel, until: float) -> bool:
    """Cheap sufficient test that decay cannot change the stage in (clock, until].

    Layers: the cached exact next change; the cached bound (positive terms only shrink,
    negative ones only grow towards 0, and nothing decays faster than the fastest
    rate); the bound recomputed from every term at both ends (each is monotone). A
    follow-up SLA due by ``until`` is a change.
    """
    due = state.sla_due
    if due is not None and due <= until:
        return False
    if state.nc_valid:
        nc = state.next_change
        return nc is None or nc > until
    if state.b_valid:
        k = state.b_k
        pos = state.b_pos
        if k + pos < state.b_upper:
            lower = state.b_lower
            if lower == _NEG_INF:
                return True
            if k + state.b_neg + pos * _exp((state.b_t0 - until) * model.max_rate) >= lower:
                return True
    if state.disqualifier is not None:
        return True
    idx = model.stage_index.get(state.stage)
    if idx is None or model.stages[idx].sales:
        return True
    lower, upper = thresholds(state, model, idx)
    clock = state._clock
    rates = model.rates
    caps = model.category_caps
    lo = hi = 0.0
    for cat, acc in state.categories.items():
        rate = rates.get(cat, 0.0)
        if rate:
            a = acc[0] * _exp((acc[1] - clock) * rate)
            b = a * _exp((clock - until) * rate)
            if caps:  # holding is monotone: the ends still bound the interval
                a, b = held(model, cat, a), held(model, cat, b)
            if a < b:
                lo += a
                hi += b
            else:
                lo += b
                hi += a
        else:
            v = held(model, cat, acc[0]) if caps else acc[0]
            lo += v
            hi += v
    return lo >= lower and hi < upper
