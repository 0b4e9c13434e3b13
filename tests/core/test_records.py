"""The worker's decisions about one record, without a batch around them."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from scoring import LeadState, ScoringModel, load_default_model
from streams.core.contract import Rejected
from streams.core.records import (
    BOT,
    DUPLICATE,
    LATE,
    MAX_PROFILE_ATTRIBUTES,
    REPLAYED,
    SCORED,
    STATE_LIMIT,
    RecordScorer,
    decode,
    profile_overflows,
)

NOW = time.time()
SOURCE = "t.web:0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    return load_default_model()


def event(kind: str, eid: str, *, ago: float = 5.0, **fields: Any) -> dict[str, Any]:
    body = {"event_id": eid, "lead_id": "lead-1", "occurred_at": int((NOW - ago) * 1000)}
    return decode(kind, orjson.dumps(body | fields), NOW, 300)


def test_decode_gives_the_event_with_its_time_and_source() -> None:
    e = event("web", "e1", url="https://x.io/pricing?a=1")
    assert e["source"] == "web" and e["path"] == "/pricing"
    assert e["time"] == pytest.approx(NOW - 5, abs=0.001)


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("unknown", b"{}", "invalid_internal_record"),
        ("web", b"{", "invalid_json"),
        ("web", b"[]", "not_an_object"),
        ("web", b'{"event_id": "e1"}', "schema_violation"),
    ],
)
def test_decode_rejects_with_the_dead_letter_reason(kind: str, value: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as rejected:
        decode(kind, value, NOW, 300)
    assert rejected.value.reason == reason


def test_scored_then_duplicate_then_replayed(model: ScoringModel) -> None:
    scorer = RecordScorer(model)
    state = LeadState("lead-1")
    visit = event("web", "e1", url="https://x.io/pricing")
    outcome, state, _ = scorer.score(state, visit, "web", SOURCE, 10)
    assert outcome is SCORED and state.applied[SOURCE] == 10 and state.events_seen == 1
    outcome, state, _ = scorer.score(state, dict(visit), "web", SOURCE, 11)  # a retry
    assert outcome is DUPLICATE and state.applied[SOURCE] == 11
    outcome, state, transitions = scorer.score(state, dict(visit), "web", SOURCE, 11)
    assert outcome is REPLAYED and transitions == [] and state.events_seen == 1


def test_an_event_past_the_lateness_bound_is_late(model: ScoringModel) -> None:
    scorer = RecordScorer(model)
    state = LeadState("lead-1")
    _, state, _ = scorer.score(state, event("web", "e1", url="https://x.io/a"), "web", SOURCE, 1)
    old = event("web", "e0", ago=model.max_lateness + 60, url="https://x.io/a")
    outcome, state, _ = scorer.score(state, old, "web", SOURCE, 2)
    assert outcome is LATE and state.late_dropped == 1


def test_a_profile_past_the_attribute_bound_changes_nothing(model: ScoringModel) -> None:
    scorer = RecordScorer(model)
    state = LeadState("lead-1")
    for n in range(2):
        many = {f"a{n}_{i}": i for i in range(MAX_PROFILE_ATTRIBUTES // 2)}
        profile = event("profile", f"p{n}", attributes=many)
        outcome, state, _ = scorer.score(state, profile, "profile", SOURCE, n)
        assert outcome is SCORED
    one_more = event("profile", "p2", attributes={"new": 1})
    assert profile_overflows(state, one_more)
    assert not profile_overflows(state, event("profile", "p3", attributes={"a0_0": 2}))
    outcome, state, _ = scorer.score(state, one_more, "profile", SOURCE, 3)
    assert outcome is STATE_LIMIT and state.applied[SOURCE] == 1 and "new" not in state.profile


def test_a_crawler_is_marked_in_place_unless_the_event_is_shared(model: ScoringModel) -> None:
    for shared in (False, True):
        visit = event("web", "e1", url="https://x.io/demo", user_agent=GOOGLEBOT)
        scorer = RecordScorer(model, shared_events=shared)
        outcome, state, _ = scorer.score(LeadState("lead-1"), visit, "web", SOURCE, 1)
        assert outcome is BOT and state.filtered == ("user_agent",)
        assert ("bot" in visit) is not shared
