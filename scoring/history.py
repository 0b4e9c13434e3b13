"""A lead's history: its recent scored and filtered events and stage changes, each
with the points it added or removed and why. Bounded per lead by the model's
``history_size`` (default 50): the oldest entry goes when a new one comes.

Stored in the state (``LeadState.history``) as flat tuples of plain values, oldest
first, never changed once appended (state copies share them; stored as JSON arrays):

- ``(time, "event", event_id, source, rule_id, points, rule_id, points, ...)``: an
  event that changed the score or the fit; points as the rules gave them at the
  event's time (positive or negative; a cap displacing a later event shows it as
  minus);
- ``(time, "bot", event_id, source, reason)``: an event filtered as not a person's;
- ``(time, "retracted", event_id, reason, rule_id, -points, ...)``: an event scored
  before a pattern showed it was a bot's, and what was taken back;
- ``(time, "stage", trigger_event_id, cause, from, to, score)``: a stage change.

Events that change nothing (a page no rule scores, a duplicate, a late event) are not
kept: the history answers "why did this lead's score change", not "what did it do".
Descriptions are looked up in the model when read, so they cost the state nothing.

>>> from scoring.modelfile import load_default_model
>>> from scoring.state import LeadState
>>> m = load_default_model()
>>> s = LeadState("L1")
>>> record(s, m, (0.0, "event", "e1", "web", "web-pricing", 10.0))
>>> [(e["kind"], e["points"], e["rules"][0]["description"]) for e in entries(s, m)]
[('event', 10.0, 'Viewed the pricing page')]
"""

from __future__ import annotations

from typing import Any

from scoring.model import ScoringModel
from scoring.state import LeadState

__all__ = ["entries", "record"]


def record(state: LeadState, model: ScoringModel, entry: tuple[Any, ...]) -> None:
    """Append ``entry``, dropping the oldest past the model's ``history_size``.

    Entries are flat tuples of plain values: one allocation each, immutable, and
    untracked by Python's cyclic garbage collector, which would otherwise walk every
    lead's history on each full collection."""
    size = model.history_size
    if not size:
        return
    history = state.history
    history.append(entry)
    if len(history) > size:
        del history[: len(history) - size]


def entries(state: LeadState, model: ScoringModel) -> list[dict[str, Any]]:
    """The history as plain dicts, in time order (ties in the order recorded); times
    are epoch seconds, points exact (round them for people)."""
    out = [_entry(e, model) for e in state.history]
    out.sort(key=lambda e: e["at"])
    return out


def _rules(flat: tuple[Any, ...], model: ScoringModel) -> list[dict[str, Any]]:
    by_id = model.rule_by_id
    out = []
    for rid, points in zip(flat[::2], flat[1::2], strict=True):
        rule = by_id.get(rid)
        out.append(
            {"rule_id": rid, "description": rule.description if rule else rid, "points": points}
        )
    return out


def _entry(e: tuple[Any, ...], model: ScoringModel) -> dict[str, Any]:
    at, kind, event_id, what = e[:4]
    detail = e[4:]
    if kind == "event":
        rules = _rules(detail, model)
        return {
            "at": at,
            "kind": kind,
            "event_id": event_id,
            "source": what,
            "points": sum(r["points"] for r in rules),
            "rules": rules,
        }
    if kind == "bot":
        return {"at": at, "kind": kind, "event_id": event_id, "source": what, "reason": detail[0]}
    if kind == "retracted":
        rules = _rules(detail, model)
        return {
            "at": at,
            "kind": kind,
            "event_id": event_id,
            "reason": what,
            "points": sum(r["points"] for r in rules),
            "rules": rules,
        }
    from_stage, to_stage, score = detail
    return {
        "at": at,
        "kind": "stage",
        "trigger_event_id": event_id,
        "cause": what,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "score": score,
    }
