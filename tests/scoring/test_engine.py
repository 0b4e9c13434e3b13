"""Scoring transitions: apply, advance, snapshot and the score read at a time
(scoring.engine); properties over random event sets."""

from __future__ import annotations

import bisect
import itertools
import math
import random
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import LeadState, advance, apply, next_change_at, snapshot
from scoring.engine import TRANSITION_NAMESPACE, breakdown_at, cap_insert, reasons_at, score_at
from scoring.state import cap_pairs

from .models import email, profile, small_model, web, webinar
from .strategies import EXAMPLES as N
from .strategies import events

M = small_model()


def run(events: list[dict[str, object]], state: LeadState | None = None) -> tuple[LeadState, list]:
    s = state or LeadState("L")
    out = []
    for e in events:
        s, ts = apply(s, e, M)
        out.extend(ts)
    return s, out


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_exact_decay_of_one_event() -> None:
    s, ts = run([web("/pricing", 0.0)])
    assert score_at(s, M, 0.0) == 30.0
    assert score_at(s, M, 10.0) == pytest.approx(15.0, rel=1e-12)
    assert score_at(s, M, 30.0) == pytest.approx(3.75, rel=1e-12)
    assert [(t["from_stage"], t["to_stage"], t["direction"], t["cause"]) for t in ts] == [
        ("cold", "warm", "up", "event")
    ]


def test_late_arriving_event_adds_its_decayed_worth() -> None:
    s, _ = run([web("/blog", 20.0), web("/blog", 10.0)])
    assert s.clock == 20.0
    assert score_at(s, M, 20.0) == pytest.approx(5 + 2.5, rel=1e-12)


def test_categories_decay_with_their_own_half_lives() -> None:
    s, _ = run([web("/blog", 0.0), email("click", 0.0), webinar("attended", 0.0)])
    b = breakdown_at(s, M, 4.0)
    assert b == pytest.approx(
        {"web": 5 * 2**-0.4, "email": 6.0, "webinar": 25 * 2 ** (-4 / 25), "profile": 0.0}
    )


def test_no_decay_category_is_a_plain_sum() -> None:
    s, _ = run([profile(0.0, phone="1"), profile(5.0, phone="2")])
    assert breakdown_at(s, M, 1e6)["profile"] == 6.0


def test_profile_latest_wins_whatever_the_order() -> None:
    a = [profile(5.0, "p2", seniority="vp"), profile(1.0, "p1", seniority="manager", country="US")]
    s1, _ = run(a)
    s2, _ = run(list(reversed(a)))
    assert s1.profile == s2.profile == {"seniority": "vp", "country": "US"}
    # same time: the larger event id wins
    s3, _ = run([profile(1.0, "b", seniority="vp"), profile(1.0, "a", seniority="c_level")])
    assert s3.profile["seniority"] == "vp"


def test_fit_grade_and_bant_follow_the_profile() -> None:
    s, _ = run(
        [
            profile(
                0.0,
                seniority="vp",
                company_size=500,
                budget_status="approved",
                decision_role="decision_maker",
                email_domain="mail.GMAIL.com",
            )
        ]
    )
    assert s.fit_points == 20.0 and s.grade == "B"
    assert s.fit_hits == ["f-senior", "f-size", "f-free"]
    assert s.bant == {"budget": True, "authority": True, "need": False, "timeline": False}
    assert s.bant_count == 2


def test_duplicates_count_once() -> None:
    e = web("/pricing", 1.0, "dup")
    s, _ = run([e, e, dict(e, time=2.0)])
    assert s.events_seen == 1
    assert score_at(s, M, 1.0) == 30.0


def test_late_events_are_dropped_and_counted() -> None:
    s, _ = run([web("/blog", 1000.0)])
    s, ts = apply(s, web("/pricing", 899.0), M)  # clock - 101 s: late
    assert ts == [] and s.late_dropped == 1 and s.events_seen == 1
    s, _ = apply(s, web("/blog", 900.0), M)  # exactly clock - max_lateness: scored
    assert s.late_dropped == 1 and s.events_seen == 2
    # advance() moves the clock too, so the window follows the lead's time
    s, _ = advance(s, 2000.0, M)
    s, _ = apply(s, web("/blog", 1850.0), M)
    assert s.late_dropped == 2


def test_cap_counts_the_earliest_events_whatever_the_arrival_order() -> None:
    # w-pricing: 30 points, at most 2 per aligned 10 s window
    evs = [web("/pricing", t, f"e{t}") for t in (3.0, 5.0, 1.0, 12.0)]
    s, _ = run(evs)
    expected = 30 * (2 ** (-(20 - 1) / 10) + 2 ** (-(20 - 3) / 10) + 2 ** (-(20 - 12) / 10))
    assert score_at(s, M, 20.0) == pytest.approx(expected, rel=1e-12)
    assert s.caps["w-pricing"] == {0: [1.0, "e1.0", 3.0, "e3.0"], 1: [12.0, "e12.0"]}
    s2, _ = run(sorted(evs, key=lambda e: e["time"]))  # type: ignore[arg-type, return-value]
    assert score_at(s2, M, 20.0) == pytest.approx(expected, rel=1e-12)


def test_old_cap_windows_are_pruned() -> None:
    s, _ = run([web("/pricing", t) for t in range(0, 600, 10)])
    windows = s.caps["w-pricing"]
    assert len(windows) <= 12 and max(windows) == 59 and min(windows) >= 45


def test_dedup_window_is_bounded_by_count() -> None:
    from .models import TEST_MODEL

    m = small_model(TEST_MODEL.replace("dedup_max_ids = 64", "dedup_max_ids = 3"))
    s = LeadState("L")
    for i in range(5):
        s, _ = apply(s, web("/blog", float(i), f"b{i}"), m)
    assert sorted(s.seen) == ["b2", "b3", "b4"]
    s, _ = apply(s, web("/blog", 0.0, "b0"), m)  # evicted: counts again (documented)
    assert s.events_seen == 6


def test_unsubscribe_sets_a_profile_key_that_disqualifies() -> None:
    s, ts = run([web("/pricing", 0.0), email("unsubscribe", 1.0, "u1")])
    assert s.profile["unsubscribed"] is True and s.profile_times["unsubscribed"] == (1.0, "u1")
    assert [(t["from_stage"], t["to_stage"], t["cause"], t["direction"]) for t in ts] == [
        ("cold", "warm", "event", "up"),
        ("warm", "disqualified", "disqualifier", "down"),
    ]
    assert next_change_at(s, M) is None
    s, ts = advance(s, 1000.0, M)
    assert ts == [] and s.stage == "disqualified"
    # events still score while disqualified, but the stage stays
    s, ts = apply(s, web("/pricing", 1000.0), M)
    assert ts == [] and s.stage == "disqualified"
    # a later profile event lifts it: evaluated from the bottom
    s, ts = apply(s, profile(1001.0, unsubscribed=False), M)
    assert [(t["from_stage"], t["to_stage"], t["cause"], t["direction"]) for t in ts] == [
        ("disqualified", "warm", "disqualifier", "up")
    ]
    # an older profile event does not override the later one
    s, ts = apply(s, profile(1000.5, unsubscribed=True), M)
    assert ts == [] and s.profile["unsubscribed"] is False


def test_student_profile_disqualifies() -> None:
    s, ts = run([profile(0.0, seniority="student")])
    assert s.stage == "disqualified" and ts[0]["cause"] == "disqualifier"
    assert snapshot(s, M, 5.0)["disqualifier"] == "student"


def test_event_can_jump_several_stages() -> None:
    from .models import TEST_MODEL

    m = small_model(TEST_MODEL.replace("points = 25", "points = 60"))
    s = LeadState("L")
    s, _ = apply(s, profile(0.0, seniority="vp", company_size=500), m)  # grade A
    s, ts = apply(s, webinar("attended", 1.0, "big"), m)
    assert [(t["from_stage"], t["to_stage"], t["direction"]) for t in ts] == [("cold", "mql", "up")]


def test_profile_change_can_cause_a_transition() -> None:
    s, _ = run([webinar("attended", 0.0), webinar("attended", 0.0, "w2"), web("/blog", 0.0)])
    assert s.stage == "warm" and score_at(s, M, 0.0) == 55.0  # grade D blocks mql
    s, ts = apply(s, profile(0.0, "p", seniority="vp"), M)
    assert [(t["from_stage"], t["to_stage"], t["cause"], t["trigger_event_id"]) for t in ts] == [
        ("warm", "mql", "profile", "p")
    ]
    assert ts[0]["grade"] == "B" and ts[0]["fit_score"] == 20.0


def test_transition_payload() -> None:
    s, _ = run([profile(0.0, seniority="vp", company_size=500)])
    s, ts = apply(s, webinar("attended", 1.0, "x"), M)
    (t,) = ts
    assert t["event_id"] == str(uuid.uuid5(TRANSITION_NAMESPACE, "L|cold|warm|event|x"))
    assert t["lead_id"] == "L" and t["trigger_event_id"] == "x" and t["changed_at"] == 1.0
    assert t["score"] == 25.0 and t["breakdown"]["webinar"] == 25.0
    assert t["grade"] == "A" and t["fit_score"] == 30.0
    assert t["model_id"] == "test" and t["model_version"] == "7"
    assert t["reasons"] == [
        {"rule_id": "wb-attended", "description": "Attended", "points": 25.0},
        {"rule_id": "f-senior", "description": "Senior", "points": 20.0},
        {"rule_id": "f-size", "description": "Size", "points": 10.0},
    ]
    orjson.dumps(t)  # plain data


def test_transition_ids_are_deterministic() -> None:
    def go() -> list[str]:
        s = LeadState("L")
        ids = []
        for e in [web("/pricing", 0.0, "a"), web("/pricing", 1.0, "b")]:
            s, ts = apply(s, e, M)
            ids += [t["event_id"] for t in ts]
        s, ts = advance(s, 100.0, M)
        return ids + [t["event_id"] for t in ts]

    first, second = go(), go()
    assert first == second and len(first) == 2 and len(set(first)) == 2
    s, _ = run([web("/pricing", 0.0, "a")])
    s, ts = advance(s, 100.0, M)
    (t,) = ts
    ms = round(t["changed_at"] * 1000)
    assert t["event_id"] == str(uuid.uuid5(TRANSITION_NAMESPACE, f"L|warm|cold|decay|{ms}"))
    assert t["trigger_event_id"] is None and t["cause"] == "decay"


def test_decay_path_follows_hysteresis_at_exact_times() -> None:
    # grade B, bant 2; 90 points of pricing+... decay through sql -> mql -> warm -> cold.
    s, _ = run([profile(0.0, seniority="vp", budget_status="planned", pain_identified=True)])
    s, _ = run(
        [
            web("/pricing", 0.0, "p1"),
            web("/pricing", 0.0, "p2"),
            web("/blog", 0.0, "b"),
            web("/blog", 0.0, "b2"),
            web("/blog", 0.0, "b3"),
            web("/blog", 0.0, "b4"),
            web("/blog", 0.0, "b5"),
            web("/blog", 0.0, "b6"),
        ],
        s,
    )
    assert s.stage == "sql" and score_at(s, M, 0.0) == 90.0
    s, ts = advance(s, 1000.0, M)
    got = [(t["from_stage"], t["to_stage"], t["changed_at"]) for t in ts]
    # 90 * 2**(-x/10) = level  <=>  x = 10 * log2(90 / level)
    expected = [("sql", "mql", 65.0), ("mql", "warm", 40.0), ("warm", "cold", 10.0)]
    assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in expected]
    for (_, _, at), (_, _, level) in zip(got, expected, strict=True):
        assert at == pytest.approx(10 * math.log2(90 / level), abs=1e-9)
    assert all(t["direction"] == "down" for t in ts)
    assert s.clock == 1000.0 and next_change_at(s, M) is None


def test_apply_advances_first_then_scores_at_event_time() -> None:
    s, _ = run([web("/pricing", 0.0)])  # warm until 30*2^(-x/10) < 10: x = 15.85
    s, ts = apply(s, web("/blog", 100.0, "late-visit"), M)
    assert [(t["from_stage"], t["to_stage"], t["cause"]) for t in ts] == [("warm", "cold", "decay")]
    assert ts[0]["changed_at"] == pytest.approx(10 * math.log2(3), abs=1e-9)
    assert s.clock == 100.0


def test_snapshot_reflects_due_decay_without_changing_the_state() -> None:
    s, _ = run([web("/pricing", 0.0)])
    before = s.to_dict()
    snap = snapshot(s, M, 20.0)
    assert snap["stage"] == "cold" and snap["score"] == pytest.approx(7.5)
    assert snap["next_change_at"] is None and snap["clock"] == 20.0
    assert s.stage == "warm" and s.clock == 0.0
    after = s.to_dict()
    assert {k: v for k, v in after.items() if not k.startswith("next_change")} == {
        k: v for k, v in before.items() if not k.startswith("next_change")
    }
    snap = snapshot(s, M, 1.0)
    assert snap["stage"] == "warm" and snap["next_change_at"] == pytest.approx(10 * math.log2(3))
    assert snap["reasons"] == reasons_at(s, M, 1.0)
    fresh = snapshot(LeadState("N"), M, 5.0)
    assert fresh["stage"] == "cold" and fresh["score"] == 0.0 and fresh["clock"] == 5.0


def test_advance_on_a_fresh_lead_sets_the_clock() -> None:
    s, ts = advance(LeadState("N"), 42.0, M)
    assert ts == [] and s.clock == 42.0 and s.stage == "cold"
    s, ts = advance(s, 10.0, M)
    assert s.clock == 42.0


def test_events_matching_nothing_change_nothing_but_dedup() -> None:
    s, ts = run([web("/about", 0.0, "a"), email("delivered", 1.0)])
    assert ts == [] and s.events_seen == 2 and s.rules == {} and s.stage == "cold"


def test_unknown_stage_from_another_model_is_reevaluated_from_the_bottom() -> None:
    s, _ = run([web("/pricing", 0.0)])
    d = s.to_dict()
    d["stage"] = "legacy"
    s = LeadState.from_dict(d)
    assert next_change_at(s, M) is None
    s, ts = apply(s, web("/pricing", 1.0), M)
    assert [(t["from_stage"], t["to_stage"], t["direction"]) for t in ts] == [
        ("legacy", "warm", "up")
    ]


@settings(max_examples=N, deadline=None)
@given(events(), st.randoms(use_true_random=False))
def test_order_independence(evs: list[dict[str, Any]], rnd: random.Random) -> None:
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    (a, _), (b, _) = run(evs), run(shuffled)
    t = 70.0
    assert close(score_at(a, M, t), score_at(b, M, t))
    ba, bb = breakdown_at(a, M, t), breakdown_at(b, M, t)
    assert all(close(ba[k], bb[k]) for k in ba)
    assert a.profile == b.profile
    assert (a.fit_points, a.grade, a.bant, a.disqualifier) == (
        b.fit_points,
        b.grade,
        b.bant,
        b.disqualifier,
    )
    assert a.events_seen == b.events_seen == len(evs)
    for rid in a.rules.keys() | b.rules.keys():
        rate = M.rule_by_id[rid].rate  # type: ignore[union-attr]
        va = a.rules.get(rid, [0.0, 0.0])
        vb = b.rules.get(rid, [0.0, 0.0])
        assert close(va[0] * math.exp((va[1] - t) * rate), vb[0] * math.exp((vb[1] - t) * rate))


@settings(max_examples=N, deadline=None)
@given(events(), st.data())
def test_duplicates_are_idempotent(evs: list[dict[str, Any]], data: Any) -> None:
    dups = data.draw(st.lists(st.sampled_from(evs), max_size=10))
    mixed = list(evs)
    for d in dups:
        mixed.insert(data.draw(st.integers(0, len(mixed))), dict(d))
    (a, _), (b, _) = run(evs), run(mixed)
    assert b.events_seen == a.events_seen == len(evs)
    assert a.to_dict() == b.to_dict() or (
        close(score_at(a, M, 70.0), score_at(b, M, 70.0)) and a.profile == b.profile
    )


@settings(max_examples=N, deadline=None)
@given(events(positive_only=True), st.lists(st.floats(0.0, 500.0), min_size=2, max_size=8))
def test_decay_is_monotone_without_events(evs: list[dict[str, Any]], offsets: list[float]) -> None:
    s, _ = run(evs)
    clock = s.clock
    assert clock is not None
    scores = [score_at(s, M, clock + dt) for dt in sorted(offsets)]
    assert all(x >= y for x, y in itertools.pairwise(scores))
    assert all(x >= 0 for x in scores)


@settings(max_examples=N, deadline=None)
@given(events())
def test_caps_are_never_exceeded(evs: list[dict[str, Any]]) -> None:
    s, _ = run(evs)
    for rid, windows in s.caps.items():
        rule = M.rule_by_id[rid]
        for w, flat in windows.items():
            counted = cap_pairs(flat)
            assert len(counted) <= rule.cap_count  # type: ignore[union-attr]
            assert counted == sorted(counted)
            assert all(math.floor(t / rule.cap_per) == w for t, _ in counted)  # type: ignore[union-attr]
    # independently: the capped rule is worth exactly its earliest N per window
    pricing = sorted(
        (e["time"], e["event_id"])
        for e in evs
        if e["source"] == "web" and e["path"].startswith("/pricing")
    )
    per_window: dict[int, list[tuple[float, str]]] = {}
    for t, eid in pricing:
        per_window.setdefault(math.floor(t / 10.0), []).append((t, eid))
    expected = sum(
        30.0 * 2 ** (-(70.0 - t) / 10.0) for lst in per_window.values() for t, _ in lst[:2]
    )
    acc = s.rules.get("w-pricing", [0.0, 0.0])
    assert close(acc[0] * 2 ** (-(70.0 - acc[1]) / 10.0), expected)


@settings(max_examples=N, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 1.0, 2.5]), st.sampled_from("abcd")), max_size=12),
    st.integers(min_value=1, max_value=4),
)
def test_cap_insert_keeps_what_insort_on_pairs_keeps(
    arrivals: list[tuple[float, str]], cap_count: int
) -> None:
    # The reference: the window as a list of pairs (schema version 1), and the
    # equal pairs a re-sent event makes once the dedup window has forgotten its id.
    pairs: list[tuple[float, str]] = []
    flat: list[Any] = []
    for t, eid in arrivals:
        expected_drop: float | None = None
        if len(pairs) < cap_count:
            bisect.insort(pairs, (t, eid))
            expected_admit = True
        elif (t, eid) < pairs[-1]:
            expected_drop = pairs.pop()[0]
            bisect.insort(pairs, (t, eid))
            expected_admit = True
        else:
            expected_admit = False
        got = cap_insert(flat, t, eid, cap_count)
        assert (got is not None) == expected_admit
        if got is not None:
            assert got[1] == expected_drop
            assert got[0] is not flat  # a new list: copies of the state share the old one
            flat = got[0]
        assert cap_pairs(flat) == pairs
