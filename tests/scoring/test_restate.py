"""scoring.restate: a lead's stage changes stay consistent when it falls back to an
earlier state after its published changes."""

from __future__ import annotations

from scoring import LeadState, apply, load_default_model, restate
from tests.scoring.models import web

MODEL = load_default_model()
T0 = 1_700_000_000.0


def visits(lead: str, n: int, path: str = "/pricing") -> LeadState:
    state = LeadState(lead)
    for i in range(n):
        state, _ = apply(state, web(path, T0 + i, f"{lead}-{path}-{i}", lead=lead), MODEL)
    return state


def test_a_fallback_publishes_where_the_lead_is_after_the_changes_seen() -> None:
    good = visits("lead-1", 1, "/blog")
    shown = visits("lead-1", 6)  # reached a higher stage: its changes were published
    assert shown.changes > good.changes and shown.stage != good.stage
    before = good.copy()
    [change] = restate(good, shown, T0 + 10, MODEL)
    assert (change["from_stage"], change["to_stage"], change["cause"]) == (
        shown.stage,
        good.stage,
        "restored",
    )
    assert change["sequence"] == shown.changes + 1 == good.changes
    assert change["trigger_event_id"] is None
    # A repeat (the same fallback after a crash) carries the same id and number.
    [again] = restate(before, shown, T0 + 10, MODEL)
    assert again["event_id"] == change["event_id"] and again["sequence"] == change["sequence"]


def test_nothing_to_say_when_nothing_was_published_beyond_it_or_the_stage_is_the_same() -> None:
    good = visits("lead-1", 6)
    assert restate(good, visits("lead-1", 1, "/blog"), T0 + 10, MODEL) == []
    same_stage = good.copy()
    same_stage.changes += 2  # published more, ending where the good state is
    assert restate(good, same_stage, T0 + 10, MODEL) == []
    assert good.changes == same_stage.changes  # numbering still goes on after them


def test_a_lead_with_no_earlier_state_starts_afresh_after_its_changes() -> None:
    shown = visits("lead-2", 6)
    fresh = LeadState("lead-2")
    [change] = restate(fresh, shown, T0 + 10, MODEL)
    assert change["to_stage"] == MODEL.stages[0].name == fresh.stage
    assert fresh.model == MODEL.fingerprint and fresh.changes == shown.changes + 1
