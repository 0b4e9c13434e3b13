"""Per-lead state: plain data, serialisable, mutated in place by the engine.

``apply``/``advance`` take ownership of the state they are given and return it
(mutated): keep no other reference to it if you need the old value (``copy()``).

>>> s = LeadState("lead-1")
>>> s.lead_id, s.stage, s.clock, s.events_seen
('lead-1', '', None, 0)
>>> LeadState.from_dict(s.to_dict()).to_dict() == s.to_dict()
True
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["SCHEMA_VERSION", "LeadState", "cap_pairs"]

#: 6: ``contributions`` (the points each rule got at each recent time: what a late
#: score reset leaves out). 5: ``entered`` (when the lead last entered each stage),
#: ``since`` (its first event time), ``sla_due`` (the pending follow-up deadline) and
#: ``resets`` (recent score resets by outcomes). 4: ``history`` (the lead's recent
#: scored and filtered events and stage changes), ``recent`` (what bot patterns compare
#: a new event with), ``caps_by`` (rule caps counted per field value) and
#: ``bots_filtered``. 3: ``applied`` (the highest input position applied, per source),
#: ``changes`` (stage changes so far, the per-lead sequence number of the last one),
#: ``model`` (the fingerprint of the model it was scored under) and ``rule_points``. 2:
#: a cap window is one flat list ``[t0, id0, t1, id1, ...]`` (1: a list of ``[t, id]``
#: pairs). Versions 1 to 5 are still read (with what they lack empty).
SCHEMA_VERSION = 6
_NEG_INF = -math.inf
_READABLE = frozenset({1, 2, 3, 4, 5, SCHEMA_VERSION})
#: What ``LeadState.filtered`` is between events: nothing filtered (shared, immutable).
_NOTHING: tuple[str, ...] = ()


class LeadState:
    """Everything leadstream knows about one lead.

    ``stage`` is "" until the lead is first scored (then the model's first stage);
    ``clock`` (None before anything happened) is the lead's time: the latest event
    time applied or time advanced to. Accumulators are ``[value, anchor]`` pairs
    (see ``scoring.decay``).
    """

    __slots__ = (
        "_clock",
        "applied",
        "b_k",
        "b_lower",
        "b_neg",
        "b_pos",
        "b_t0",
        "b_upper",
        "b_valid",
        "bant",
        "bant_count",
        "bots_filtered",
        "caps",
        "caps_by",
        "categories",
        "changes",
        "contributions",
        "disqualifier",
        "entered",
        "events_seen",
        "filtered",
        "filtered_self",
        "fit_hits",
        "fit_points",
        "grade",
        "history",
        "late_dropped",
        "lead_id",
        "model",
        "nc_up",
        "nc_valid",
        "next_change",
        "profile",
        "profile_times",
        "recent",
        "resets",
        "rule_points",
        "rules",
        "seen",
        "seen_heap",
        "since",
        "sla_due",
        "stage",
    )

    lead_id: str
    stage: str
    _clock: float
    events_seen: int
    late_dropped: int
    #: rule id -> [decayed value, anchor time]
    rules: dict[str, list[float]]
    #: category -> [decayed value, anchor time] (no-decay categories: [sum, last time])
    categories: dict[str, list[float]]
    profile: dict[str, Any]
    #: attribute -> (event time, event id) of the value kept (latest wins)
    profile_times: dict[str, tuple[float, str]]
    fit_points: float
    fit_hits: list[str]
    grade: str
    bant: dict[str, bool]
    bant_count: int
    disqualifier: str | None
    #: event id -> event time, of the events counted (the dedup window)
    seen: dict[str, float]
    seen_heap: list[tuple[float, str]]
    #: capped rule id -> window index -> the events counted, sorted by (time, event
    #: id), as one flat list ``[t0, id0, t1, id1, ...]`` (see :func:`cap_pairs`)
    caps: dict[str, dict[int, list[Any]]]
    #: rule id -> field value -> its counted events, flat as in ``caps`` (a rule
    #: capped ``by`` a field: once per webinar)
    caps_by: dict[str, dict[str, list[Any]]]
    #: The lead's recent scored and filtered events and stage changes, oldest first,
    #: at most the model's ``history_size`` (see ``scoring.history``). Entries are
    #: never changed once appended (copies share them).
    history: list[tuple[Any, ...]]
    #: What bot patterns compare a new event with: recent delivered, clicked (or
    #: held: ``email_no_open``) and opened emails and short web views, sorted by
    #: (time, event id), bounded (see ``scoring.bots``). Entries are replaced, never
    #: changed in place. Kinds ``"h"`` and ``"o"`` came without a new schema
    #: version: only a model with ``email_no_open`` writes them, which code that
    #: predates them refuses to load, and such code ignores both kinds.
    recent: list[list[Any]]
    #: Events found not to be a person's and not scored (on arrival or later).
    bots_filtered: int
    #: source -> highest position applied from it. Opaque here: the caller names its
    #: sources and positions (the worker: input topic-partition -> offset) and skips a
    #: record at or below what the stored state has applied, so a replay after a crash
    #: counts nothing twice. Stored with the state, so both change together.
    applied: dict[str, int]
    #: Stage changes so far: the last one's per-lead sequence number.
    changes: int
    #: Fingerprint of the model the state was scored under ("": before states
    #: recorded it), and the points each rule in ``rules`` had then: what
    #: ``scoring.migrate`` needs to carry the state over to another model.
    model: str
    rule_points: dict[str, float]
    #: stage -> when the lead last entered it (the KPIs' time to stage; one entry per
    #: stage at most)
    entered: dict[str, float]
    #: The time of the lead's first event (None: none yet): where "lead to
    #: opportunity" starts.
    since: float | None
    #: When the current stage's follow-up SLA is breached unless an outcome meeting it
    #: arrives first (None: no SLA pending). Part of the next change's time.
    sla_due: float | None
    #: (time, factor) of outcomes' score resets within ``max_lateness`` of the clock:
    #: a late event from before a reset counts ``factor`` of its points.
    resets: list[tuple[float, float]]
    #: The points each rule's accumulator got at each time (``_add`` in
    #: ``scoring.engine``), flat ``[t0, rule_id0, points0, t1, ...]`` sorted by time,
    #: those at one time and rule summed: the lead's last ``KEPT_CONTRIBUTIONS``
    #: within ``max_lateness`` of the clock, kept only under a model whose outcomes
    #: reset scores. A reset takes the ones at or after its time out before it
    #: scales the score and puts them back after: they came after it.
    contributions: list[Any]
    next_change: float | None
    nc_up: bool
    nc_valid: bool
    # Not serialised: what the last ``apply`` filtered as bots (reasons, the applied
    # event's first when ``filtered_self``), for the caller to count.
    filtered: tuple[str, ...]
    filtered_self: bool
    # Not serialised: a cheap bound for "can decay change the stage before t?" (the
    # engine's fast path). At b_t0: no-decay sum, positive and negative decaying sums,
    # and the current stage's exit / next reachable entry thresholds.
    b_valid: bool
    b_t0: float
    b_k: float
    b_pos: float
    b_neg: float
    b_lower: float
    b_upper: float

    def __init__(self, lead_id: str) -> None:
        """A lead nothing is known about yet. (``copy`` and ``from_dict`` start here
        and overwrite: mypyc's compiled classes have no bare ``__new__``.)"""
        self.lead_id = lead_id
        self.stage = ""
        self._clock = _NEG_INF
        self.events_seen = 0
        self.late_dropped = 0
        self.rules = {}
        self.categories = {}
        self.profile = {}
        self.profile_times = {}
        self.fit_points = 0.0
        self.fit_hits = []
        self.grade = "D"
        self.bant = {"budget": False, "authority": False, "need": False, "timeline": False}
        self.bant_count = 0
        self.disqualifier = None
        self.seen = {}
        self.seen_heap = []
        self.caps = {}
        self.caps_by = {}
        self.history = []
        self.recent = []
        self.bots_filtered = 0
        self.filtered = _NOTHING
        self.filtered_self = False
        self.applied = {}
        self.changes = 0
        self.model = ""
        self.rule_points = {}
        self.entered = {}
        self.since = None
        self.sla_due = None
        self.resets = []
        self.contributions = []
        self.next_change = None
        self.nc_up = False
        self.nc_valid = False
        self.b_valid = False

    @property
    def clock(self) -> float | None:
        """The lead's time (None before the first event or advance)."""
        c = self._clock
        return None if c == _NEG_INF else c

    def __repr__(self) -> str:
        return (
            f"LeadState({self.lead_id!r}, stage={self.stage!r}, clock={self.clock}, "
            f"events_seen={self.events_seen})"
        )

    def copy(self) -> LeadState:
        """An independent copy (``from_dict(to_dict())`` without the round trip: a
        worker copies a hot lead's state when a batch changes it while an older
        version still waits to be written)."""
        s = LeadState(self.lead_id)
        s.stage = self.stage
        s._clock = self._clock
        s.events_seen = self.events_seen
        s.late_dropped = self.late_dropped
        s.rules = {k: [a[0], a[1]] for k, a in self.rules.items()}
        s.categories = {k: [a[0], a[1]] for k, a in self.categories.items()}
        s.profile = dict(self.profile)
        s.profile_times = dict(self.profile_times)  # values are immutable tuples
        s.fit_points = self.fit_points
        s.fit_hits = list(self.fit_hits)
        s.grade = self.grade
        s.bant = dict(self.bant)
        s.bant_count = self.bant_count
        s.disqualifier = self.disqualifier
        s.seen_heap = list(self.seen_heap)
        s.seen = dict(self.seen)
        # The window lists are shared: the engine replaces a window's list when it
        # changes, never mutates it (a hot lead has ~200 of them).
        s.caps = {rid: dict(wins) for rid, wins in self.caps.items()}
        s.caps_by = {rid: dict(wins) for rid, wins in self.caps_by.items()}
        s.history = list(self.history)
        s.recent = list(self.recent)
        s.bots_filtered = self.bots_filtered
        s.applied = dict(self.applied)
        s.changes = self.changes
        s.model = self.model
        s.rule_points = dict(self.rule_points)
        s.entered = dict(self.entered)
        s.since = self.since
        s.sla_due = self.sla_due
        s.resets = list(self.resets)
        s.contributions = list(self.contributions)  # flat: its items are immutable
        s.nc_valid = self.nc_valid
        s.next_change = self.next_change
        s.nc_up = self.nc_up
        s.b_valid = False
        return s

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str keys, lists, numbers, bools, None) that orjson can dump."""
        d = self.to_dict_view()
        # The view's keys and order, with its containers copied into plain lists/dicts.
        d["rules"] = {k: [a[0], a[1]] for k, a in self.rules.items()}
        d["categories"] = {k: [a[0], a[1]] for k, a in self.categories.items()}
        d["profile"] = dict(self.profile)
        d["profile_times"] = {k: [t[0], t[1]] for k, t in self.profile_times.items()}
        d["fit_hits"] = list(self.fit_hits)
        d["bant"] = dict(self.bant)
        d["seen"] = [[t, e] for t, e in self.seen_heap]
        d["caps"] = {
            rid: {str(w): list(flat) for w, flat in wins.items()} for rid, wins in self.caps.items()
        }
        d["caps_by"] = {
            rid: {key: list(flat) for key, flat in wins.items()}
            for rid, wins in self.caps_by.items()
        }
        d["history"] = [_plain(e) for e in self.history]  # tuples as lists, as JSON reads
        d["recent"] = [_plain(e) for e in self.recent]
        d["applied"] = dict(self.applied)
        d["rule_points"] = dict(self.rule_points)
        d["entered"] = dict(self.entered)
        d["resets"] = [[t, f] for t, f in self.resets]
        d["contributions"] = list(self.contributions)
        return d

    def to_dict_view(self) -> dict[str, Any]:
        """:meth:`to_dict` without the copies, for immediate serialisation only.

        The containers are the state's own (tuples where ``to_dict`` has lists, int
        window keys in ``caps``): a JSON encoder that writes tuples as arrays and int
        keys as strings (orjson with ``OPT_NON_STR_KEYS``) gives the same bytes as
        encoding :meth:`to_dict`, without copying every nested list per write.
        """
        return {
            "v": SCHEMA_VERSION,
            "lead_id": self.lead_id,
            "stage": self.stage,
            "clock": self.clock,
            "events_seen": self.events_seen,
            "late_dropped": self.late_dropped,
            "rules": self.rules,
            "categories": self.categories,
            "profile": self.profile,
            "profile_times": self.profile_times,
            "fit_points": self.fit_points,
            "fit_hits": self.fit_hits,
            "grade": self.grade,
            "bant": self.bant,
            "disqualifier": self.disqualifier,
            "seen": self.seen_heap,
            "caps": self.caps,
            "caps_by": self.caps_by,
            "history": self.history,
            "recent": self.recent,
            "bots_filtered": self.bots_filtered,
            "model": self.model,
            "rule_points": self.rule_points,
            "applied": self.applied,
            "changes": self.changes,
            "entered": self.entered,
            "since": self.since,
            "sla_due": self.sla_due,
            "resets": self.resets,
            "contributions": self.contributions,
            # Last, in this order: streams.core.statecodec reads them off the end. A
            # pending SLA is part of the next change (when the worker's timer fires);
            # from_dict solves the decay part again.
            "next_change": self._next_due() if self.nc_valid else None,
            "next_change_up": self.nc_up,
            "next_change_valid": self.nc_valid,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LeadState:
        """Inverse of :meth:`to_dict` (``from_dict(x).to_dict() == x``, except that a
        state with an SLA pending reads its next change as not yet solved); also reads
        versions 1 (cap windows as pairs) to 5."""
        version = d.get("v")
        if version not in _READABLE:
            raise ValueError(f"unsupported LeadState schema version {version!r}")
        s = cls(d["lead_id"])
        s.stage = d["stage"]
        clock = d["clock"]
        s._clock = _NEG_INF if clock is None else clock
        s.events_seen = d["events_seen"]
        s.late_dropped = d["late_dropped"]
        s.rules = {k: [a[0], a[1]] for k, a in d["rules"].items()}
        s.categories = {k: [a[0], a[1]] for k, a in d["categories"].items()}
        s.profile = dict(d["profile"])
        s.profile_times = {k: (t[0], t[1]) for k, t in d["profile_times"].items()}
        s.fit_points = d["fit_points"]
        s.fit_hits = list(d["fit_hits"])
        s.grade = d["grade"]
        s.bant = dict(d["bant"])
        s.bant_count = sum(1 for v in s.bant.values() if v)
        s.disqualifier = d["disqualifier"]
        s.seen_heap = [(t, e) for t, e in d["seen"]]
        s.seen = {e: t for t, e in s.seen_heap}
        if version == 1:
            s.caps = {
                rid: {int(w): [x for pair in lst for x in pair] for w, lst in wins.items()}
                for rid, wins in d["caps"].items()
            }
        else:
            s.caps = {
                rid: {int(w): list(flat) for w, flat in wins.items()}
                for rid, wins in d["caps"].items()
            }
        s.caps_by = {
            rid: {key: list(flat) for key, flat in wins.items()}
            for rid, wins in d.get("caps_by", {}).items()
        }
        s.history = [tuple(e) for e in d.get("history", ())]
        s.recent = [_plain(e) for e in d.get("recent", ())]
        s.bots_filtered = d.get("bots_filtered", 0)
        s.applied = dict(d.get("applied", {}))
        s.changes = d.get("changes", 0)
        s.model = d.get("model", "")
        s.rule_points = dict(d.get("rule_points", {}))
        s.entered = dict(d.get("entered", {}))
        s.since = d.get("since")
        s.sla_due = d.get("sla_due")
        s.resets = [(t, f) for t, f in d.get("resets", ())]
        s.contributions = list(d.get("contributions", ()))
        # With an SLA pending, the stored next change may be its deadline, not
        # decay's: solve again.
        s.nc_valid = d["next_change_valid"] and s.sla_due is None
        s.next_change = d["next_change"]
        s.nc_up = d["next_change_up"]
        s.b_valid = False
        return s

    def _next_due(self) -> float | None:
        """The cached decay change or the SLA deadline, whichever is first."""
        nc = self.next_change
        due = self.sla_due
        if due is None:
            return nc
        return due if nc is None or due < nc else nc


def _plain(entry: list[Any] | tuple[Any, ...]) -> list[Any]:
    """A history or pattern entry as plain lists, nested ones too (what ``to_dict``
    hands out and JSON reads back; never the state's own lists)."""
    return [_plain(x) if isinstance(x, list | tuple) else x for x in entry]


def cap_pairs(flat: list[Any]) -> list[tuple[float, str]]:
    """A cap window's events as (time, event id) pairs.

    >>> cap_pairs([1.0, "e1", 3.0, "e3"])
    [(1.0, 'e1'), (3.0, 'e3')]
    """
    return list(zip(flat[::2], flat[1::2], strict=True))
