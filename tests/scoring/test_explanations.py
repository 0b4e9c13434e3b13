"""Explanations and history: a stage change names its triggering event's rules first,
then the top engagement and fit reasons apart; a lead's history says what each recent
event added or took away (scoring.reasons, scoring.history)."""

from __future__ import annotations

from typing import Any

from scoring import LeadState, advance, apply, snapshot
from scoring.history import entries

from .models import TEST_MODEL, email, profile, small_model, web, webinar

M = small_model()


def run(evs: list[dict[str, Any]], model: Any = M) -> tuple[LeadState, list[Any]]:
    s = LeadState("L")
    out: list[Any] = []
    for e in evs:
        s, ts = apply(s, e, model)
        out.extend(ts)
    return s, out


def ids(reasons: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(r["rule_id"], round(r["points"], 6)) for r in reasons]


def test_the_triggering_events_rules_come_first_then_engagement_and_fit_apart() -> None:
    _, ts = run(
        [
            profile(0.0, "p", seniority="vp", company_size=500),
            webinar("attended", 0.0, "w"),
            web("/blog", 0.0, "b"),
        ]
    )
    warm = ts[-1]
    assert (warm["from_stage"], warm["to_stage"], warm["trigger_event_id"]) == ("cold", "warm", "w")
    assert ids(warm["trigger_reasons"]) == [("wb-attended", 25.0)]
    assert ids(warm["engagement_reasons"]) == [("wb-attended", 25.0)]
    assert ids(warm["fit_reasons"]) == [("f-senior", 20.0), ("f-size", 10.0)]
    # reasons keeps its meaning: the top of both together
    assert ids(warm["reasons"]) == [("wb-attended", 25.0), ("f-senior", 20.0), ("f-size", 10.0)]


def test_a_pricing_visit_is_named_even_when_fit_outweighs_it() -> None:
    _, ts = run(
        [
            profile(0.0, "p", seniority="vp", company_size=500),
            web("/blog", 0.0, "b1"),
            web("/blog", 0.0, "b2"),
            web("/pricing", 1.0, "pr"),
        ]
    )
    assert ids(ts[-1]["trigger_reasons"]) == [("w-pricing", 30.0)]


def test_a_profile_change_names_the_fit_rules_it_gained_or_lost() -> None:
    _, ts = run(
        [
            profile(0.0, "p1", seniority="vp", company_size=500),
            webinar("attended", 0.0, "w1"),
            webinar("attended", 0.0, "w2"),
            profile(1.0, "p2", seniority="manager"),
        ]
    )
    down = ts[-1]
    assert (down["cause"], down["from_stage"], down["to_stage"]) == ("profile", "mql", "warm")
    assert ids(down["trigger_reasons"]) == [("f-senior", -20.0)]


def test_a_disqualifier_is_named_first() -> None:
    _, ts = run([webinar("attended", 0.0), email("unsubscribe", 1.0, "u")])
    out = ts[-1]
    assert out["cause"] == "disqualifier"
    assert ids(out["trigger_reasons"]) == [("unsubscribed", 0.0), ("e-unsub", -5.0)]


def test_decay_has_no_trigger() -> None:
    s, _ = run([webinar("attended", 0.0)])
    _, ts = advance(s, 1000.0, M)
    assert ts and all(t["trigger_reasons"] == [] for t in ts)


def test_the_snapshot_gives_engagement_and_fit_apart() -> None:
    s, _ = run([profile(0.0, seniority="vp"), webinar("attended", 0.0)])
    snap = snapshot(s, M, 0.0)
    assert ids(snap["engagement_reasons"]) == [("wb-attended", 25.0)]
    assert ids(snap["fit_reasons"]) == [("f-senior", 20.0)]
    assert snap["bots_filtered"] == 0


# ------------------------------------------------------------------------- history


def test_history_keeps_what_changed_the_score_and_the_stage_changes() -> None:
    s, _ = run(
        [
            web("/about", 0.0, "nothing"),  # no rule: not kept
            web("/pricing", 1.0, "pr"),
            profile(2.0, "p", seniority="vp"),
            web("/careers", 3.0, "job"),
        ]
    )
    got = [
        (e["kind"], e.get("event_id") or e.get("trigger_event_id"), e.get("points"))
        for e in entries(s, M)
    ]
    assert got == [
        ("event", "pr", 30.0),
        ("stage", "pr", None),
        ("event", "p", 20.0),
        ("event", "job", -20.0),
        ("stage", "job", None),  # 30 decayed to 24.6, -20: below warm's exit
    ]
    stage = entries(s, M)[1]
    assert (stage["from_stage"], stage["to_stage"], stage["cause"]) == ("cold", "warm", "event")
    assert entries(s, M)[2]["rules"] == [
        {"rule_id": "f-senior", "description": "Senior", "points": 20.0}
    ]


def test_history_keeps_the_last_entries_only() -> None:
    short = small_model(
        TEST_MODEL.replace("reasons_top_n = 3", "reasons_top_n = 3\nhistory_size = 3")
    )
    s, _ = run([web("/blog", float(t), f"b{t}") for t in range(10)], short)
    assert [e["event_id"] for e in entries(s, short)] == ["b7", "b8", "b9"]
    none = small_model(
        TEST_MODEL.replace("reasons_top_n = 3", "reasons_top_n = 3\nhistory_size = 0")
    )
    s, _ = run([web("/pricing", 0.0)], none)
    assert s.history == []


def test_history_is_in_time_order_even_when_events_arrive_late() -> None:
    s, _ = run([web("/blog", 5.0, "late"), web("/blog", 1.0, "early")])
    assert [e["event_id"] for e in entries(s, M)] == ["early", "late"]


def test_a_removed_rule_reads_as_its_id() -> None:
    s, _ = run([web("/blog", 0.0, "b")])
    other = small_model(TEST_MODEL.replace('id = "w-blog"', 'id = "w-blog2"'))
    assert entries(s, other)[0]["rules"][0]["description"] == "w-blog"
