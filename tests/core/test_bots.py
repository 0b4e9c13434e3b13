"""streams.core.bots: known crawlers by user agent, the answers cached."""

from __future__ import annotations

from typing import Any

import pytest

from scoring import load_default_model
from streams.core import bots
from streams.core.bots import BotMarker

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
]
CRAWLERS = [
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "python-requests/2.31.0",
    "curl/8.4.0",
]


@pytest.mark.parametrize(
    ("ua", "crawler"), [(u, False) for u in BROWSERS] + [(u, True) for u in CRAWLERS]
)
def test_known_crawlers_are_marked_browsers_are_not(ua: str, crawler: bool) -> None:
    event: dict[str, Any] = {"source": "web", "user_agent": ua}
    assert BotMarker().mark(event) is crawler
    assert event.get("bot") == ("user_agent" if crawler else None)


@pytest.mark.parametrize("ua", [None, "", 42])
def test_no_user_agent_no_mark(ua: object) -> None:
    event = {"source": "email", "user_agent": ua}
    assert BotMarker().mark(event) is False and "bot" not in event


def test_answers_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def is_crawler(ua: str) -> bool:
        calls.append(ua)
        return ua.startswith("bot")

    monkeypatch.setattr(bots.crawleruseragents, "is_crawler", is_crawler)
    marker = BotMarker(cache_size=2)
    for ua in ["a", "bot", "a", "bot", "a", "c", "bot"]:
        marker.mark({"user_agent": ua})
    assert calls == ["a", "bot", "c", "bot"]  # 2 remembered: "bot" was the oldest at "c"


def test_the_model_decides_whether_to_look() -> None:
    assert isinstance(bots.for_model(load_default_model()), BotMarker)
