"""Rule caps: at most N events of a rule counted per window.

A window is an aligned span of time (``cap = { count = 3, per = "1d" }``: window
``floor(time / per)``, in ``LeadState.caps``) or one value of an event field
(``cap = { count = 1, by = "webinar_id" }``: once per webinar, in
``LeadState.caps_by``). In both, the events counted are the N smallest by
``(time, event id)``, whatever the arrival order: an earlier event arriving at a full
window replaces the latest counted one, whose points the caller takes back.

A window's list is flat, ``[t0, id0, t1, id1, ...]``, sorted by (time, id), and is
replaced, never changed in place: ``LeadState.copy`` shares these lists.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from scoring.model import Rule, ScoringModel
from scoring.state import LeadState

__all__ = ["DENIED", "cap_admit", "cap_insert", "cap_key", "uncap"]


class _Denied:
    def __repr__(self) -> str:
        return "DENIED"


#: :func:`cap_admit`'s answer when the window is full of earlier events.
DENIED: Any = _Denied()


def cap_key(rule: Rule, data: Mapping[str, Any], t: float) -> int | str:
    """The window of an event: its time window, or its value of the ``by`` field."""
    by = rule.cap_by
    if by is None:
        return math.floor(t / rule.cap_per)
    value = data.get(by)
    return value if type(value) is str else "" if value is None else str(value)


def cap_admit(
    state: LeadState,
    model: ScoringModel,
    rule: Rule,
    data: Mapping[str, Any],
    t: float,
    eid: str,
) -> Any:
    """Count the event (its fields ``data``) in its window? :data:`DENIED` if the
    window is full of earlier events; else None, or the time of the later event that
    dropped out (the caller subtracts its points)."""
    if rule.cap_by is None:
        key: int | str = math.floor(t / rule.cap_per)
        store: dict[str, dict[Any, list[Any]]] = state.caps
    else:
        key = cap_key(rule, data, t)
        store = state.caps_by
    wins = store.get(rule.id)
    if wins is None:
        wins = store[rule.id] = {}
    counted = wins.get(key)
    if counted is None:
        if len(wins) >= 4:  # prune now and then: bounded memory, little work per event
            _prune(wins, rule, state._clock - model.max_lateness)
        wins[key] = [t, eid]
        return None
    admitted = cap_insert(counted, t, eid, rule.cap_count)
    if admitted is None:
        return DENIED
    wins[key], dropped_at = admitted
    return dropped_at


def _prune(wins: dict[Any, list[Any]], rule: Rule, cutoff: float) -> None:
    """Drop the windows every event of which would now be late (a value window: whose
    latest counted event would be; that value may then count again)."""
    if rule.cap_by is None:
        per = rule.cap_per
        old = [w for w in wins if (w + 1) * per <= cutoff]
    else:
        old = [w for w, flat in wins.items() if flat[-2] < cutoff]
    for w in old:
        del wins[w]


def uncap(state: LeadState, rule: Rule, key: int | str, t: float, eid: str) -> bool:
    """Take the event out of its window (a retracted bot's); False if it was not
    counted there (a later event displaced it, or the window is gone)."""
    store: dict[str, dict[Any, list[Any]]] = state.caps_by if rule.cap_by else state.caps
    wins = store.get(rule.id)
    counted = wins.get(key) if wins else None
    if not counted or wins is None:
        return False
    for i in range(0, len(counted), 2):
        if counted[i] == t and counted[i + 1] == eid:
            rest = counted[:i] + counted[i + 2 :]
            if rest:
                wins[key] = rest
            else:
                del wins[key]
            return True
    return False


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
