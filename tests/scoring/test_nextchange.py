"""When decay alone next changes the stage (scoring.nextchange); properties over random
event sets."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scoring import LeadState, advance, apply, next_change_at, next_change_by
from scoring.engine import score_at
from scoring.model import ScoringModel
from scoring.nextchange import thresholds
from scoring.stages import evaluate_stage

from .models import SIGNAL_MODEL, small_model, web, webinar
from .strategies import EXAMPLES as N
from .strategies import events

M = small_model()
#: Group caps hold web at 45 and email at 30: random events often pass them, so
#: crossings are solved piecewise between release times (scoring.groupcaps).
S = small_model(SIGNAL_MODEL)
MODELS = pytest.mark.parametrize("model", [M, S], ids=["plain", "group-caps"])


def run(evs: list[dict[str, Any]], model: ScoringModel = M) -> LeadState:
    s = LeadState("L")
    for e in evs:
        s, _ = apply(s, e, model)
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


@MODELS
@settings(max_examples=N, deadline=None)
@given(events())
def test_next_change_at_agrees_with_advance(model: ScoringModel, evs: list[dict[str, Any]]) -> None:
    M = model
    s = run(evs, M)
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


@MODELS
@settings(max_examples=N, deadline=None)
@given(
    events(),
    st.floats(min_value=-50.0, max_value=500.0),
    st.booleans(),
    st.sampled_from(["as scored", "copied", "decoded"]),
)
def test_next_change_by_is_next_change_at_cut_at_until(
    model: ScoringModel, evs: list[dict[str, Any]], offset: float, from_change: bool, how: str
) -> None:
    """Whatever the bound cached (fresh from scoring, dropped by a copy or a decode),
    the cheap answer is the exact next change when it is due by ``until``, else None.
    ``until`` is drawn around the clock, or around the change itself (edges)."""
    M = model
    s = run(evs, M)
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


def test_a_category_held_at_its_cap_decays_only_once_back_within_it() -> None:
    # 3 webinars: 75 + 15 (once each) = 90 points, no cap on webinar in S. Web 90
    # points held at 45: the score stays at 45 + webinar until web's decaying sum
    # comes back to 45 (one half-life: 10 s), and then decays as usual.
    evs = [web("/pricing", 0.0, f"p{i}") for i in range(3)]
    s = run(evs, S)
    assert score_at(s, S, 0.0) == 45.0 and score_at(s, S, 9.9) == 45.0
    assert score_at(s, S, 20.0) == pytest.approx(22.5)
    # warm (entry 20, exit 10): down when 45 * 2**(-(t - 10)/10) < 10
    nc = next_change_at(s, S)
    assert nc == pytest.approx(10.0 + 10.0 * math.log2(4.5), abs=1e-6)


HELD = small_model(
    """
id = "held"
version = 1
[decay]
a = "10s"
b = "2s"
[caps]
a = 40
[[rules]]
id = "plus"
source = "web"
category = "a"
points = 80
match = { path = "/plus" }
[[rules]]
id = "minus"
source = "web"
category = "b"
points = -20
match = { path = "/minus" }
[[stages]]
name = "cold"
[[stages]]
name = "hot"
entry = { score = 35 }
exit = { score = 5 }
"""
)


def test_a_crossing_while_a_category_is_held_is_solved_with_it_held() -> None:
    # a: 80 points held at 40 until t = 10 s; b: -20 decaying fast. The score rises
    # 20 -> 40 as b decays: 40 - 20 * 2**(-t/2) = 35 at t = 4 s (a still held).
    s = LeadState("L")
    for path in ("/minus", "/plus"):
        s, _ = apply(s, web(path, 0.0), HELD)
    assert s.stage == "cold" and score_at(s, HELD, 0.0) == 20.0
    assert next_change_at(s, HELD) == pytest.approx(4.0, abs=1e-6)
    s, ts = advance(s, 5.0, HELD)
    assert [(t["to_stage"], round(t["changed_at"], 6)) for t in ts] == [("hot", 4.0)]


@settings(max_examples=N, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["/plus", "/minus"]), st.floats(0.0, 30.0).map(round)),
        min_size=1,
        max_size=8,
    )
)
# A touch: "plus" is released at 28 s just as the score comes up to 35, then falls.
@example(views=[("/plus", 18), ("/minus", 22), ("/minus", 22)])
def test_crossings_with_held_categories_agree_with_the_score(
    views: list[tuple[str, float]],
) -> None:
    s = LeadState("L")
    for i, (path, t) in enumerate(views):
        s, _ = apply(s, web(path, t, f"v{i}"), HELD)
    clock = s.clock
    assert clock is not None
    nc = next_change_at(s, HELD)
    end = clock + 200.0 if nc is None else nc - 1e-6
    for i in range(81):  # no crossing before the one found
        t = clock + (end - clock) * i / 80
        assert evaluate_stage(HELD, s.stage, score_at(s, HELD, t), s.grade, 0) == s.stage
    if nc is not None:  # and at it the score reaches the threshold (crosses, or touches:
        # a held category released exactly as the score comes up to its entry)
        lower, upper = thresholds(s, HELD, HELD.stage_index[s.stage])
        score = score_at(s, HELD, nc)
        assert score >= upper - 1e-6 if s.nc_up else score <= lower + 1e-6
