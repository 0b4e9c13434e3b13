"""Known bots by user agent: the worker's half of bot filtering.

The scoring model decides what counts as a bot (``[bots]``, ``scoring.bots``); this
module does the one check that needs data from outside the model: whether a web or
email event's ``user_agent`` is on the maintained crawler list (the
``crawler-user-agents`` package). A match marks the event ``bot = "user_agent"``
before ``scoring.apply``, which then filters it like any other bot's event.

Why here and not in ``scoring``: the list is ~1,500 regular expressions that change
with the package, not with the model (a model's fingerprint would not say which list
scored a lead), and matching one user agent against all of them takes ~0.2 ms, so
answers must be remembered across events and leads, a process-wide cache that has no
place in a pure, deterministic core. Scoring sees only the mark, an input like the
event's time, so the same events with the same marks always score the same.

User agents repeat (a lead's browser sends the same one on every page), so an LRU
cache of :data:`CACHE_SIZE` answers makes a repeated user agent cost a dict lookup;
only a user agent not seen recently pays the full match.

>>> marker = BotMarker()
>>> event = {"source": "web", "user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}
>>> marker.mark(event), event["bot"]
(True, 'user_agent')
>>> marker.mark({"source": "web", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"})
False
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from functools import lru_cache
from typing import Any, Final

import crawleruseragents  # type: ignore[import-untyped]

from scoring import ScoringModel

__all__ = ["CACHE_SIZE", "MARK", "BotMarker", "for_model"]

#: User agents whose answer is remembered (~0.3 KB each with the string).
CACHE_SIZE: Final = 16_384
#: The mark ``scoring.bots`` reads, and the reason it files the event under.
MARK: Final = "user_agent"
#: Sources whose events carry a user agent.
SOURCES: Final = frozenset({"web", "email"})


class BotMarker:
    """Marks events whose user agent is a known crawler's (answers cached)."""

    __slots__ = ("_is_crawler",)

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._is_crawler: Callable[[str], bool] = lru_cache(maxsize=cache_size)(
            crawleruseragents.is_crawler
        )

    def mark(self, event: MutableMapping[str, Any]) -> bool:
        """Mark ``event`` (a decoded web or email event) if its user agent is a known
        crawler's; True if it did."""
        ua = event.get("user_agent")
        if type(ua) is str and ua and self._is_crawler(ua):
            event["bot"] = MARK
            return True
        return False


def for_model(model: ScoringModel) -> BotMarker | None:
    """The marker the model asks for (``[bots]`` with ``known_user_agents``), or None."""
    bots = model.bots
    return BotMarker() if bots.enabled and bots.known_user_agents else None
