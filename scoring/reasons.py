"""Why a lead is where it is: the reasons a stage change and a lead's view give.

- **trigger**: the rules of the event that caused the change, with the points that
  event added or took back (a bot's retracted points, a fit rule gained or lost, the
  disqualifier that matched), first;
- **engagement**: the behavioural rules (what the lead did) holding the most points
  now, decayed, each within its group's cap;
- **fit**: the demographic and firmographic rules (who the lead is) that match;
- ``reasons``: the top of engagement and fit together, as before these were separate.

Each list holds at most the model's ``reasons_top_n``, largest |points| first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypedDict

from scoring.groupcaps import held
from scoring.model import Rule, ScoringModel
from scoring.state import LeadState

__all__ = [
    "Reason",
    "engagement_reasons",
    "explain",
    "fit_reasons",
    "reasons_at",
    "trigger_reasons",
]

_exp = math.exp


class Reason(TypedDict):
    rule_id: str
    description: str
    points: float


def _shares(state: LeadState, model: ScoringModel, t: float) -> dict[str, float]:
    """Category -> what its rules' points are scaled by to sum to the category as held
    by its cap (1 unless capped and beyond the cap)."""
    out: dict[str, float] = {}
    rates = model.rates
    for cat, acc in state.categories.items():
        if cat not in model.category_caps:
            continue
        rate = rates.get(cat, 0.0)
        raw = acc[0] * _exp((acc[1] - t) * rate) if rate else acc[0]
        kept = held(model, cat, raw)
        if kept != raw and raw != 0.0:
            out[cat] = kept / raw
    return out


def _engagement_items(
    state: LeadState, model: ScoringModel, t: float
) -> list[tuple[float, str, float]]:
    by_id = model.rule_by_id
    shares = _shares(state, model, t) if model.category_caps else None
    items: list[tuple[float, str, float]] = []
    for rid, acc in state.rules.items():
        rule = by_id.get(rid)
        rate = rule.rate if isinstance(rule, Rule) else 0.0
        pts = acc[0] * _exp((acc[1] - t) * rate) if rate else acc[0]
        if shares and isinstance(rule, Rule):
            pts *= shares.get(rule.category, 1.0)
        if pts != 0.0:
            items.append((-abs(pts), rid, pts))
    return items


def _fit_items(state: LeadState, model: ScoringModel) -> list[tuple[float, str, float]]:
    by_id = model.rule_by_id
    items: list[tuple[float, str, float]] = []
    for rid in state.fit_hits:
        rule = by_id.get(rid)
        if rule is not None and rule.points != 0.0:
            items.append((-abs(rule.points), rid, rule.points))
    return items


def _top(model: ScoringModel, items: list[tuple[float, str, float]]) -> list[Reason]:
    items.sort()
    by_id = model.rule_by_id
    out: list[Reason] = []
    for _, rid, pts in items[: model.reasons_top_n]:
        rule = by_id.get(rid)
        out.append(
            {"rule_id": rid, "description": rule.description if rule else rid, "points": pts}
        )
    return out


def engagement_reasons(state: LeadState, model: ScoringModel, t: float) -> list[Reason]:
    """The engagement rules holding the most points at ``t`` (by |points|)."""
    return _top(model, _engagement_items(state, model, t))


def fit_reasons(state: LeadState, model: ScoringModel) -> list[Reason]:
    """The matching fit rules with the most points (by |points|)."""
    return _top(model, _fit_items(state, model))


def reasons_at(state: LeadState, model: ScoringModel, t: float) -> list[Reason]:
    """The top ``reasons_top_n`` rules, engagement and fit together, by |points at t|."""
    return _top(model, _engagement_items(state, model, t) + _fit_items(state, model))


def explain(
    state: LeadState, model: ScoringModel, t: float
) -> tuple[list[Reason], list[Reason], list[Reason]]:
    """``reasons_at``, ``engagement_reasons`` and ``fit_reasons`` at once."""
    engagement = _engagement_items(state, model, t)
    fit = _fit_items(state, model)
    return _top(model, engagement + fit), _top(model, engagement), _top(model, fit)


def trigger_reasons(
    model: ScoringModel, effects: Sequence[Any], disqualifier: str | None = None
) -> list[Reason]:
    """What the triggering event did: ``effects`` (flat ``rule id, points, ...`` in
    the order they happened) summed per rule, zero sums left out, the disqualifier it
    set first."""
    out: list[Reason] = []
    if disqualifier is not None:
        d = model.disqualifier_by_id.get(disqualifier)
        out.append(
            {
                "rule_id": disqualifier,
                "description": d.description if d else disqualifier,
                "points": 0.0,
            }
        )
    summed: dict[str, float] = {}
    for i in range(0, len(effects), 2):
        rid = effects[i]
        summed[rid] = summed.get(rid, 0.0) + effects[i + 1]
    by_id = model.rule_by_id
    for rid, pts in summed.items():
        if pts != 0.0:
            rule = by_id.get(rid)
            out.append(
                {"rule_id": rid, "description": rule.description if rule else rid, "points": pts}
            )
    return out[: model.reasons_top_n]
