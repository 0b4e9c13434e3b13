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
  within ``within`` (a crawler; a view without ``duration_seconds`` is no evidence);
- ``email_no_open`` (opt-in): a click on an email with no open of that email (same
  ``campaign_id``, not itself a bot's) within ``memory`` of it, before or after. Such
  a click is *held*: filtered, not scored, until an open shows up.

A pattern can show only after its events: the second click of a pair arrives after
the first was scored. Then the first is *retracted*: its points are subtracted at its
own time (exactly what it added, as a cap does with a displaced event) and its place
in its cap windows freed. A held click is the reverse: when an open of its email
arrives it is *restored*, scored at its own time as a late event is (the engine's
``_score_rules``: decay, caps, resets and ``unless`` as of its time), exactly as if it
had been scored on arrival. The scanner patterns only grow with more events, and a
click is held only while no open is known, so which events are filtered is a function
of the set of events, whatever their order, within what ``recent`` keeps: events of
the last ``memory`` seconds (of the lead's clock), at most :data:`MAX_RECENT` of them.
Only the events a pattern can use are kept: delivered and clicked emails, opens (with
``email_no_open``) and short web views. Three limits follow: an event arriving later
than ``memory`` is not compared with anything (a click is then scored); a held click
dropped from ``recent`` (older than ``memory``, or the 33rd entry) is never restored;
and a cap window that turned a person's event away while a retracted event held a
place does not take it back (the engine does not keep what caps turn away). Which
pattern's name a filtered event carries is the first that caught it (a held click a
scanner pattern then catches stays ``email_no_open``, and is never restored).

``recent`` entries are ``[time, event_id, kind, campaign, link, counted]``: kind
``"d"`` delivered, ``"c"`` click, ``"h"`` held click (a click ``email_no_open``
holds: it counts as a click for the other patterns), ``"o"`` open (a person's, kept
only with ``email_no_open``), ``"w"`` short web view; ``counted`` the ``[rule_id,
cap window]`` pairs the event counted for, or None once filtered (and for opens:
they are never taken back). A held click's campaign and link are all a click rule
can test of it besides its action (``bounce_type`` belongs to bounces), which is
what it is scored from when restored.

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

__all__ = [
    "MARKS",
    "MAX_RECENT",
    "REASONS",
    "caught",
    "held_clicks",
    "opened",
    "own_reason",
    "pattern_kind",
    "remember",
]

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
    "email_no_open",
)

_time = itemgetter(0)
#: Entry kinds that are clicks: scored or held (``email_no_open``).
_CLICKS = "ch"


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
            # page views only: a form sent or a file downloaded is no crawler's reading
            action = event.get("action")
            return "w" if action is None or action == "page_view" else ""
        return ""
    action = event.get("action")
    if action == "click":
        return "c" if rules.email_patterns else ""
    if action == "delivered" and rules.email_after_delivery:
        return "d"
    if action == "open" and rules.email_no_open:
        return "o"
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
    t = entries[i][0]
    if entries[i][2] == "w":
        within = rules.web_burst_within
        shorts = [j for j in _around(entries, t, within) if entries[j][2] == "w"]
        return _windows(entries, shorts, i, rules.web_burst_count, within, 0, "web_burst")
    reach = max(rules.email_after_delivery, rules.email_click_gap, rules.email_links_within)
    campaign = entries[i][3]
    # One pass over the neighbourhood: this email's deliveries and clicks.
    same = [j for j in _around(entries, t, reach) if entries[j][3] == campaign]
    return _email(entries, i, same, rules)


def opened(entries: list[list[Any]], i: int, rules: BotRules) -> bool:
    """Is there an open of the email of click entry ``i`` within ``memory`` of it?"""
    t, campaign = entries[i][0], entries[i][3]
    return any(
        entries[j][2] == "o" and entries[j][3] == campaign
        for j in _around(entries, t, rules.memory)
    )


def held_clicks(entries: list[list[Any]], t: float, campaign: Any, rules: BotRules) -> list[int]:
    """Indexes of the held clicks an open of ``campaign`` at ``t`` releases: those on
    that email within ``memory`` of it.

    >>> rules = BotRules(enabled=True, memory=60.0, email_no_open=True)
    >>> entries = [[0.0, "a", "h", "news", "/x", None], [5.0, "b", "h", "other", "/x", None],
    ...            [9.0, "c", "c", "news", "/y", []], [99.0, "d", "h", "news", "/x", None]]
    >>> held_clicks(entries, 30.0, "news", rules)
    [0]
    """
    return [
        j
        for j in _around(entries, t, rules.memory)
        if entries[j][2] == "h" and entries[j][3] == campaign
    ]


def _around(entries: list[list[Any]], t: float, within: float) -> range:
    """Indexes of the entries at most ``within`` seconds from ``t``."""
    lo = bisect_left(entries, t - within, key=_time)
    return range(lo, bisect_right(entries, t + within, key=_time))


def _email(entries: list[list[Any]], i: int, same: list[int], rules: BotRules) -> dict[int, str]:
    """``caught`` for a delivered or clicked email; ``same``: the indexes of the same
    email's entries around it."""
    t, kind = entries[i][0], entries[i][2]
    out: dict[int, str] = {}
    if rules.email_after_delivery:
        others = _CLICKS if kind == "d" else "d"
        hits = [
            j
            for j in same
            if entries[j][2] in others and abs(entries[j][0] - t) <= rules.email_after_delivery
        ]
        if hits:
            out.update(dict.fromkeys(hits if kind == "d" else [i], "email_after_delivery"))
    if kind == "d":
        return out
    clicks = [j for j in same if entries[j][2] in _CLICKS]
    if rules.email_click_gap:
        gap = rules.email_click_gap
        pair = [j for j in clicks if j != i and abs(entries[j][0] - t) <= gap]
        for j in [i, *pair] if pair else ():
            out.setdefault(j, "email_click_gap")
    if rules.email_links_count and len(clicks) >= rules.email_links_count:
        within = rules.email_links_within
        near = [j for j in clicks if abs(entries[j][0] - t) <= within]
        links = _windows(entries, near, i, rules.email_links_count, within, 4, "email_links")
        for j in links:
            out.setdefault(j, "email_links")
    return out


def _windows(
    entries: list[list[Any]],
    group: list[int],
    i: int,
    count: int,
    within: float,
    distinct: int,
    name: str,
) -> dict[int, str]:
    """The entries of ``group`` (indexes, in time order) in a window of ``within``
    seconds holding ``count`` of them and entry ``i``; with ``distinct``, ``count``
    different values of that field (links). Index -> ``name``."""
    out: dict[int, str] = {}
    if len(group) < count:
        return out
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
