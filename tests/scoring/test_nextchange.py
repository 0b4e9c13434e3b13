"""When decay alone next changes the stage (scoring.nextchange); properties over random
event sets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import LeadState, advance, apply, next_change_at, next_change_by
from scoring.engine import score_at
from scoring.stages import evaluate_stage

from .models import small_model, web, webinar
from .strategies import EXAMPLES as N
from .strategies import events

M = small_model()


def run(evs: list[dict[str, Any]]) -> LeadState:
    s = LeadState("L")
    for e in evs:
        s, _ = apply(s, e, M)
    return s


def test_negative_points_decaying_away_can_move_a_lead_up() -> None:
    s = run(
        [web("/careers", 0.0, f"c{i}") for i in range(3)]
        + [webinar("attended", 0.0, f"w{i}") for i in range(3)]
    )
    assert s.stage == "cold" and score_at(s, M, 0.0) == 15.0
    nc = next_change_at(s, M)
    assert nc is not None
    # 75*2^(-x/25) - 60*2^(-x/10) = 20
    assert score_at(s, M, nc) == pytest.approx(20.0, abs=1e-6)
    s, ts = advance(s, nc + 1.0, M)
    assert [(t["from_stage"], t["to_stage"], t["cause"], t["direction"]) for t in ts] == [
        ("cold", "warm", "decay", "up")
    ]


@settings(max_examples=N, deadline=None)
@given(events())
def test_next_change_at_agrees_with_advance(evs: list[dict[str, Any]]) -> None:
    s = run(evs)
    clock = s.clock
    assert clock is not None
    nc = next_change_at(s, M)
    if nc is None:
        _far, ts = advance(s.copy(), clock + 1e4, M)
        assert ts == []
        return
    assert nc >= clock
    delta = 1e-6
    stage = s.stage
    if nc - delta > clock:
        before, ts = advance(s.copy(), nc - delta, M)
        assert ts == [] and before.stage == stage
        # no crossing is skipped: direct evaluation on a grid up to just before
        for i in range(41):
            t = clock + (nc - delta - clock) * i / 40
            got = evaluate_stage(M, stage, score_at(s, M, t), s.grade, s.bant_count)
            assert got == stage, (t, nc)
    after, ts = advance(s.copy(), nc + delta, M)
    assert ts and ts[0]["changed_at"] == nc and ts[0]["cause"] == "decay"
    assert ts[0]["from_stage"] == stage and after.stage != stage
    direct = evaluate_stage(M, stage, score_at(s, M, nc + delta), s.grade, s.bant_count)
    assert direct == ts[0]["to_stage"]


@settings(max_examples=N, deadline=None)
@given(
    events(),
    st.floats(min_value=-50.0, max_value=500.0),
    st.booleans(),
    st.sampled_from(["as scored", "copied", "decoded"]),
)
def test_next_change_by_is_next_change_at_cut_at_until(
    evs: list[dict[str, Any]], offset: float, from_change: bool, how: str
) -> None:
    """Whatever the bound cached (fresh from scoring, dropped by a copy or a decode),
    the cheap answer is the exact next change when it is due by ``until``, else None.
    ``until`` is drawn around the clock, or around the change itself (edges)."""
    s = run(evs)
    if how == "copied":
        s = s.copy()
    elif how == "decoded":
        s = LeadState.from_dict(orjson.loads(orjson.dumps(s.to_dict())))
    clock = s.clock
    assert clock is not None
    exact = next_change_at(s.copy(), M)
    # Near the change: from 0.5 s before it to 5 s after.
    until = exact + offset / 100 if from_change and exact is not None else clock + offset
    got = next_change_by(s, M, until)
    assert got == (exact if exact is not None and exact <= until else None)
