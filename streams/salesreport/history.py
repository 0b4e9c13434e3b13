"""A sales history as the report reads it: the stage changes of ``lead.qualified`` and
the outcomes of ``lead.outcomes``, checked, kept small and grouped by lead.

Pure: values in, tuples out. A value the report cannot use (not an object, a field
missing or of the wrong type, an unknown outcome) is counted by why and left out, as
the worker would dead-letter an invalid input; the rest of the history still counts.
Repeats (at-least-once delivery) are kept here and dropped by :mod:`.kpis`, which
orders each lead's records first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from scoring.model import OUTCOMES  # lead.outcomes' values, in the order of a sale
from streams.core.contract import parse_time

#: The ``kind`` of each topic's lines in an export file (``docs/kpis.md``).
QUALIFIED_KIND: Final = "qualified"
OUTCOME_KIND: Final = "outcome"
KINDS: Final = (QUALIFIED_KIND, OUTCOME_KIND)

#: The ``cause`` of an SLA breach on ``lead.qualified`` (docs/events.md).
SLA_BREACH: Final = "sla_breach"

_CHANGE_FIELDS: Final = (
    ("lead_id", str),
    ("sequence", int),
    ("to_stage", str),
    ("grade", str),
    ("model_id", str),
    ("model_version", str),
)
_OUTCOME_FIELDS: Final = (("lead_id", str), ("event_id", str), ("outcome", str))


class Change(NamedTuple):
    """One message of a lead on ``lead.qualified`` (its ``lead_id`` is the key it is
    filed under): a stage change, or an SLA breach."""

    sequence: int
    #: ``changed_at``, epoch seconds.
    at: float
    to_stage: str
    grade: str
    #: ``model_id`` and ``model_version``, as the report names the model.
    model: str
    #: ``cause: "sla_breach"``: the follow-up deadline of ``to_stage`` passed; not a
    #: stage change, but it takes a ``sequence`` number like one.
    breach: bool = False


class Outcome(NamedTuple):
    """One outcome of a lead, as the CRM sync published it."""

    #: ``occurred_at``, epoch seconds.
    at: float
    event_id: str
    outcome: str
    reason: str | None


def model_label(model_id: str, model_version: str) -> str:
    return f"{model_id} v{model_version}"


@dataclass(slots=True)
class History:
    """Every lead's stage changes and outcomes, in the order they were read."""

    changes: dict[str, list[Change]] = field(default_factory=dict)
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    #: Records left out, by why (``"stage change: no valid grade"``).
    skipped: Counter[str] = field(default_factory=Counter)
    #: One copy of each stage, grade and model name: a million changes share a few.
    _names: dict[str, str] = field(default_factory=dict, repr=False)

    def add(self, kind: str, value: Any) -> None:
        """Add one record of an export line's ``kind`` (``value``: its parsed JSON)."""
        if kind == QUALIFIED_KIND:
            self.add_change(value)
        elif kind == OUTCOME_KIND:
            self.add_outcome(value)

    def add_change(self, value: Any) -> None:
        """Add a ``lead.qualified`` message (parsed JSON)."""
        try:
            lead, seq, stage = value["lead_id"], value["sequence"], value["to_stage"]
            grade, model_id, version = value["grade"], value["model_id"], value["model_version"]
            at = parse_time(value["changed_at"])
            valid = (
                type(lead) is str
                and type(seq) is int
                and type(stage) is str
                and type(grade) is str
                and type(model_id) is str
                and type(version) is str
                and seq >= 1
            )
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            self.skipped["stage change: " + _why(value, _CHANGE_FIELDS, "changed_at")] += 1
            return
        names = self._names
        change = Change(
            seq,
            at,
            names.setdefault(stage, stage),
            names.setdefault(grade, grade),
            self._model(model_id, version),
            value.get("cause") == SLA_BREACH,
        )
        self.changes.setdefault(lead, []).append(change)

    def add_outcome(self, value: Any) -> None:
        """Add a ``lead.outcomes`` message (parsed JSON)."""
        try:
            lead, event_id, outcome = value["lead_id"], value["event_id"], value["outcome"]
            at = parse_time(value["occurred_at"])
            reason = value.get("reason")
            valid = type(lead) is str and type(event_id) is str and outcome in OUTCOMES
        except (KeyError, TypeError, ValueError, AttributeError):
            valid = False
        if not valid:
            self.skipped["outcome: " + _why(value, _OUTCOME_FIELDS, "occurred_at")] += 1
            return
        record = Outcome(at, event_id, outcome, reason if type(reason) is str else None)
        self.outcomes.setdefault(lead, []).append(record)

    def _model(self, model_id: str, version: str) -> str:
        key = f"{model_id}\0{version}"
        label = self._names.get(key)
        if label is None:
            label = self._names[key] = model_label(model_id, version)
        return label


def _why(value: Any, fields: tuple[tuple[str, type], ...], time_field: str) -> str:
    """Why a record was left out, in a few words (the slow path: invalid records only)."""
    if not isinstance(value, dict):
        return "not a JSON object"
    for name, kind in fields:
        if type(value.get(name)) is not kind:
            return f"no valid {name}"
    if fields is _CHANGE_FIELDS and value["sequence"] < 1:
        return "no valid sequence"
    if fields is _OUTCOME_FIELDS and value["outcome"] not in OUTCOMES:
        return "unknown outcome"
    return f"no valid {time_field}"
