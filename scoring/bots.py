"""Which events are not a person's: the tracker's flag, the worker's user-agent mark,
and per-lead time patterns of email scanners and crawlers (``[bots]`` in the model).

Scoring stays pure: a user agent is matched against the maintained crawler list by
the worker (``streams.core.bots``), which marks the event ``bot = "user_agent"``
before scoring. What only a lead's own events show is decided here:

- ``email_after_delivery``: a click within N seconds of that email's delivery (a
  security scanner follows every link as the email arrives);
- ``email_click_gap``: two clicks on one email within N seconds of each other;
- ``email_links``: ``count`` different links of one email clicked within ``within``;
- ``web_burst``: ``count`` page views with a reported dwell of at most ``max_dwell``
  within ``within`` (a crawler; a view without ``duration_seconds`` is no evidence).

A pattern can show only after its events: the second click of a pair arrives after
the first was scored. Then the first is *retracted*: its points are subtracted at its
own time (exactly what it added, as a cap does with a displaced event) and its place
in its cap windows freed. Every pattern only grows with more events, so which events
are filtered is a function of the set of events, whatever their order, within what
``recent`` keeps: events of the last ``memory`` seconds (of the lead's clock), at most
:data:`MAX_RECENT` of them. Only the events a pattern can use are kept: delivered and
clicked emails and short web views. Two limits follow: an event arriving later than
``memory`` is not compared with anything; and a cap window that turned a person's
event away while a retracted event held a place does not take it back (the engine
does not keep what caps turn away). Which pattern's name a filtered event carries is
the first that caught it.

``recent`` entries are ``[time, event_id, kind, campaign, link, counted]``: kind
``"d"`` delivered, ``"c"`` click, ``"w"`` short web view; ``counted`` the
``[rule_id, cap window]`` pairs the event counted for, or None once filtered.

>>> from scoring.model import BotRules
>>> rules = BotRules(enabled=True, memory=3600.0, email_click_gap=2.0)
>>> entries = [[0.0, "a", "c", "news", "/x", [["click", 0]]], [1.5, "b", "c", "news", "/y", []]]
>>> sorted(caught(entries, 1, rules).items())   # the second click exposes both
[(0, 'email_click_gap'), (1, 'email_click_gap')]
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from operator import itemgetter
from typing import Any

from scoring.model import BotRules, ScoringModel
from scoring.state import LeadState

__all__ = ["MARKS", "MAX_RECENT", "REASONS", "caught", "own_reason", "pattern_kind", "remember"]

#: Most pattern entries a lead keeps (each is stored with the state).
MAX_RECENT = 32
#: Marks the worker may put on an event (``bot``); any other value is ignored, so a
#: producer's own ``bot`` field neither filters nor names a reason.
MARKS = frozenset({"user_agent"})
#: Every reason an event is filtered for: a bounded set (a metric label).
REASONS = (
    "tracker_flag",
    "user_agent",
    "email_after_delivery",
    "email_click_gap",
    "email_links",
    "web_burst",
)

_time = itemgetter(0)


def _order(entry: list[Any]) -> tuple[float, str]:
    return entry[0], entry[1]


def own_reason(event: Mapping[str, Any], rules: BotRules) -> str:
    """Why the event itself is a bot's, without comparing it with others ("" if not):
    the worker's mark (``bot``, e.g. ``"user_agent"``) or the tracker's ``is_bot``."""
    mark = event.get("bot")
    if type(mark) is str and mark in MARKS:
        return mark
    if rules.tracker_flag and event.get("is_bot") is True:
        return "tracker_flag"
    return ""


def pattern_kind(event: Mapping[str, Any], source: str, rules: BotRules) -> str:
    """The pattern entry kind of a web or email event, "" if no pattern can use it."""
    if source == "web":
        if not rules.web_burst_count:
            return ""
        dwell = event.get("duration_seconds")
        if (type(dwell) is float or type(dwell) is int) and dwell <= rules.web_max_dwell:
            return "w"
        return ""
    action = event.get("action")
    if action == "click":
        return "c" if rules.email_patterns else ""
    if action == "delivered" and rules.email_after_delivery:
        return "d"
    return ""


def remember(
    state: LeadState, model: ScoringModel, event: Mapping[str, Any], kind: str, filtered: bool
) -> int:
    """Add the event (of ``pattern_kind`` ``kind``) to ``state.recent``: the new
    entry's index (its ``counted`` an empty list to fill, or None if ``filtered``), or
    -1 if it is too old to keep."""
    rules = model.bots
    t = event["time"]
    horizon = state._clock - rules.memory
    if t < horizon:
        return -1  # older than what is kept: nothing to compare it with
    campaign = event.get("campaign_id") if kind != "w" else None
    link = event.get("link") if kind == "c" else None
    eid = event["event_id"]
    recent = state.recent
    old = bisect_left(recent, horizon, key=_time)
    if old:
        del recent[:old]
    i = bisect_left(recent, (t, eid), key=_order)
    recent.insert(i, [t, eid, kind, campaign, link, None if filtered else []])
    if len(recent) > MAX_RECENT:
        del recent[0]  # the oldest goes first, even the new entry itself
        i -= 1
    return i


def caught(entries: list[list[Any]], i: int, rules: BotRules) -> dict[int, str]:
    """Entries the pattern rules catch because entry ``i`` arrived: index -> pattern.

    Only patterns that involve entry ``i`` are checked: the others were checked when
    their own last event arrived.
    """
    kind = entries[i][2]
    if kind == "w":
        return _dense(entries, i, "w", None, rules.web_burst_count, rules.web_burst_within)
    out: dict[int, str] = {}
    campaign = entries[i][3]
    if rules.email_after_delivery:
        near = _near(entries, i, rules.email_after_delivery)
        other = "c" if kind == "d" else "d"
        hits = [j for j in near if entries[j][2] == other and entries[j][3] == campaign]
        if hits:
            targets = hits if kind == "d" else [i]
            out.update(dict.fromkeys(targets, "email_after_delivery"))
    if kind != "c":
        return out
    if rules.email_click_gap:
        near = _near(entries, i, rules.email_click_gap)
        pair = [j for j in near if entries[j][2] == "c" and entries[j][3] == campaign]
        if pair:
            for j in [i, *pair]:
                out.setdefault(j, "email_click_gap")
    if rules.email_links_count:
        links = _dense(
            entries, i, "c", campaign, rules.email_links_count, rules.email_links_within, 4
        )
        for j in links:
            out.setdefault(j, "email_links")
    return out


def _near(entries: list[list[Any]], i: int, within: float) -> list[int]:
    """Indexes of the other entries at most ``within`` seconds from entry ``i``."""
    t = entries[i][0]
    lo = bisect_left(entries, t - within, key=_time)
    hi = bisect_right(entries, t + within, key=_time)
    return [j for j in range(lo, hi) if j != i]


def _dense(
    entries: list[list[Any]],
    i: int,
    kind: str,
    campaign: str | None,
    count: int,
    within: float,
    distinct: int = 0,
) -> dict[int, str]:
    """Entries in a window of ``within`` seconds holding ``count`` entries of
    ``kind`` (and ``campaign``) including entry ``i``; with ``distinct``, ``count``
    different values of that field (links). Index -> pattern name."""
    t = entries[i][0]
    lo = bisect_left(entries, t - within, key=_time)
    hi = bisect_right(entries, t + within, key=_time)
    group = [
        j
        for j in range(lo, hi)
        if entries[j][2] == kind and (campaign is None or entries[j][3] == campaign)
    ]
    name = "web_burst" if kind == "w" else "email_links"
    out: dict[int, str] = {}
    end = 0
    for a, start in enumerate(group):
        while end < len(group) and entries[group[end]][0] - entries[start][0] <= within:
            end += 1
        window = group[a:end]
        if i not in window:
            continue
        size = len({entries[j][distinct] for j in window}) if distinct else len(window)
        if size >= count:
            out.update(dict.fromkeys(window, name))
    return out
