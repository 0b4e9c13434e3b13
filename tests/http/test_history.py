"""GET /leads/{id}/history: a lead's recent scored and filtered events and stage
changes, behind the same bearer token as /leads/{id}; and the same for a terminal
(streams.leadhistory)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from scoring import LeadState, apply, load_default_model
from streams.http import views
from streams.leadhistory import history_body, render

M = load_default_model()
T0 = 1_800_000_000.0
TOKEN = "a-token-of-sixteen-chars"


def scored() -> LeadState:
    s = LeadState("lead-1")
    events: list[dict[str, Any]] = [
        {"source": "profile", "attributes": {"seniority": "vp", "company_size": 900}},
        {"source": "web", "path": "/pricing", "url": "https://x/pricing", "duration_seconds": 40},
        {"source": "web", "path": "/demo", "url": "https://x/demo", "is_bot": True},
        {"source": "email", "action": "click", "campaign_id": "c", "link": "/a"},
        {"source": "email", "action": "click", "campaign_id": "c", "link": "/b"},
        {"source": "webinar", "action": "attended", "webinar_id": "w", "minutes_attended": 40},
    ]
    for i, e in enumerate(events):
        event = {"event_id": f"e{i}", "lead_id": "lead-1", "time": T0 + 10 * i, **e}
        if e["source"] == "email":
            event["time"] = T0 + 30 + i * 0.5  # two clicks 0.5 s apart: a scanner's
        s, _ = apply(s, event, M)
    return s


def test_the_body_has_every_kind_of_entry_rounded_and_in_time_order() -> None:
    body = history_body(scored(), M, T0 + 100)
    kinds = [(e["kind"], e.get("event_id") or e.get("trigger_event_id")) for e in body["entries"]]
    assert kinds == [
        ("event", "e0"),  # fit: vp, core company size
        ("event", "e1"),  # pricing
        ("bot", "e2"),  # the tracker's flag
        ("event", "e3"),  # a click, scored...
        ("retracted", "e3"),  # ...until the next one 0.5 s later showed a scanner
        ("bot", "e4"),
        ("event", "e5"),  # a webinar
        ("stage", "e5"),
    ]
    assert body["entries"][0]["at"] == "2027-01-15T08:00:00.000Z"
    assert body["entries"][0]["points"] == 33.0
    assert body["entries"][4]["rules"] == [
        {"rule_id": "email-click", "description": "Clicked a link in an email", "points": -8.0}
    ]
    assert (body["bots_filtered"], body["history_size"], body["stage"]) == (3, 50, "warm")
    assert isinstance(body["score"], float) and body["score"] == round(body["score"], 2)


def test_render_prints_one_line_per_entry() -> None:
    text = render(history_body(scored(), M, T0 + 100))
    lines = text.splitlines()
    assert lines[0] == "lead lead-1: warm, score 35.00, grade C (model leadstream-default 2.0.0)"
    assert lines[1] == "8 entries, at most 50 kept; 3 events filtered as bots"
    assert lines[3] == "2027-01-15 08:00:10Z   +10.00  web      e1  Viewed the pricing page +10.00"
    assert "stage cold -> warm (event by e5), score 35.00" in lines[-1]
    assert "e2  filtered as a bot (tracker_flag)" in lines[4]
    assert "-8.00           e3  taken back, a bot's (email_click_gap): Clicked a link" in lines[6]
    assert len(lines) == 2 + 8


class FakeWeb:
    def json(self, body: Any, status: int = 200) -> Any:
        return SimpleNamespace(status=status, body=body, headers={})


class FakeApp:
    def __init__(self) -> None:
        self.pages: dict[str, Any] = {}

    def page(self, path: str) -> Any:
        def register(fn: Any) -> Any:
            self.pages[path] = fn
            return fn

        return register

    def table_route(self, table: Any, match_info: str) -> Any:
        return lambda fn: fn  # this worker owns every lead


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(views, "add_middleware", lambda app, middleware: None)
    state = scored()
    app = FakeApp()
    ls = SimpleNamespace(
        app=app,
        model=M,
        table=SimpleNamespace(get=lambda key: None),
        loop=SimpleNamespace(
            lead_state=lambda lead_id, stored: state if lead_id == "lead-1" else None
        ),
        settings=SimpleNamespace(http_token=TOKEN, metrics_require_token=False),
    )
    views.register_views(ls)  # type: ignore[arg-type]
    return app.pages


def call(pages: dict[str, Any], lead_id: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = SimpleNamespace(headers=headers)
    handler = pages["/leads/{lead_id}/history"]
    response = asyncio.run(handler(FakeWeb(), request, lead_id))
    return response.status, response.body


def test_history_needs_the_token_like_the_lead_view(pages: dict[str, Any]) -> None:
    status, _ = call(pages, "lead-1", None)
    assert status == 401
    assert call(pages, "lead-1", "wrong-token-wrong-token")[0] == 401
    status, body = call(pages, "lead-1", TOKEN)
    assert status == 200 and body["lead_id"] == "lead-1" and len(body["entries"]) == 8
    assert call(pages, "nobody", TOKEN) == (404, {"error": "unknown lead", "lead_id": "nobody"})


def test_the_modules_example_holds() -> None:
    import doctest

    import streams.leadhistory

    assert doctest.testmod(streams.leadhistory).failed == 0
