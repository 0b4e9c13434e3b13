"""The sales loop in the engine: outcomes, stages sales own, follow-up SLAs and
recycling (scoring.engine, scoring.nextchange); properties with outcomes mixed in."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import LeadState, ModelError, advance, apply, load_model_text, next_change_at
from scoring.engine import KEPT_CONTRIBUTIONS, breakdown_at, score_at, snapshot
from scoring.nextchange import next_change_by, no_crossing_before

from .models import SALES_MODEL, email, outcome, profile, small_model, web, webinar
from .strategies import ALL_OUTCOMES, events_with_outcomes
from .strategies import EXAMPLES as N

M = small_model(SALES_MODEL)


def run(evs: list[dict[str, Any]], state: LeadState | None = None) -> tuple[LeadState, list]:
    s = state or LeadState("L")
    out = []
    for e in evs:
        s, ts = apply(s, e, M)
        out.extend(ts)
    return s, out


def to_sql() -> tuple[LeadState, list]:
    """A lead that reaches sql at t=0.3 (score 85, grade B, 2 BANT criteria)."""
    return run(
        [
            profile(
                0.0, "p", seniority="vp", budget_status="planned", decision_role="decision_maker"
            ),
            web("/pricing", 0.1, "w1"),
            web("/pricing", 0.2, "w2"),
            webinar("attended", 0.3, "wb"),
        ]
    )


def moves(ts: list) -> list[tuple[str, str, str]]:
    return [(t["from_stage"], t["to_stage"], t["cause"]) for t in ts]


# ------------------------------------------------------------------ sales own sql


def test_a_stage_sales_own_is_not_left_by_decay_or_score() -> None:
    s, ts = to_sql()
    assert s.stage == "sql"
    assert s.entered["sql"] == 0.3 and s.since == 0.0
    # Decay alone would take it below sql's exit within a few half-lives (10 s).
    assert score_at(s, M, 30.0) < 65
    assert next_change_at(s, M) == pytest.approx(100.3)  # only the SLA
    s, ts = advance(s, 99.0, M)
    assert ts == [] and s.stage == "sql"
    s, ts = apply(s, web("/careers", 99.5, "neg"), M)  # negative points: still sql
    assert ts == [] and s.stage == "sql"


def test_a_disqualifier_still_takes_a_lead_out_of_a_sales_stage() -> None:
    s, _ = to_sql()
    s, ts = apply(s, email("unsubscribe", 5.0, "u"), M)
    assert moves(ts) == [("sql", "disqualified", "disqualifier")]


# --------------------------------------------------------------------------- SLA


def test_sla_breach_is_the_next_change_and_published_once_at_its_deadline() -> None:
    s, _ = to_sql()
    assert s.sla_due == pytest.approx(100.3)
    assert next_change_by(s, M, 100.0) is None
    assert next_change_by(s, M, 101.0) == pytest.approx(100.3)
    assert not no_crossing_before(s, M, 101.0)
    s, ts = advance(s, 250.0, M)
    assert len(ts) == 1
    breach = ts[0]
    assert (breach["from_stage"], breach["to_stage"], breach["cause"]) == (
        "sql",
        "sql",
        "sla_breach",
    )
    assert breach["direction"] == "none"
    assert breach["changed_at"] == pytest.approx(100.3)
    assert breach["trigger_event_id"] is None
    assert s.sla_due is None and next_change_at(s, M) is None
    s, again = advance(s, 400.0, M)
    assert again == []
    # Re-done from the same events (a crash before the write): the same message id.
    s2, _ = to_sql()
    _, ts2 = advance(s2, 250.0, M)
    assert ts2[0]["event_id"] == breach["event_id"]


def test_a_later_event_first_publishes_the_breach_it_passed() -> None:
    s, _ = to_sql()
    s, ts = apply(s, web("/blog/a", 150.0, "b"), M)
    assert moves(ts) == [("sql", "sql", "sla_breach")]
    assert ts[0]["changed_at"] == pytest.approx(100.3)


def test_an_outcome_that_meets_the_sla_stops_its_clock() -> None:
    s, _ = to_sql()
    s, ts = apply(s, outcome("accepted", 10.0, "acc"), M)
    assert moves(ts) == [("sql", "accepted", "outcome")]
    # accepted has its own SLA (50 s) met only by contacted
    assert s.sla_due == pytest.approx(60.0)
    s, ts = apply(s, outcome("contacted", 20.0, "c"), M)
    assert ts == [] and s.sla_due is None
    s, ts = advance(s, 500.0, M)
    assert ts == [] and s.stage == "accepted"


def test_an_outcome_the_stage_does_not_name_leaves_the_sla_running() -> None:
    s, _ = to_sql()
    s, ts = apply(s, outcome("contacted", 10.0, "acc"), M)  # met_by default includes it
    assert s.sla_due is None
    s, _ = to_sql()
    s, ts = apply(s, outcome("won", 10.0, "won"), M)  # not a follow-up of the hand-off
    assert moves(ts) == [("sql", "customer", "outcome")]
    assert s.sla_due is None  # customer has no SLA: a new stage replaces the old SLA


def test_snapshot_reports_the_sla_as_the_next_change() -> None:
    s, _ = to_sql()
    view = snapshot(s, M, 50.0)
    assert view["next_change_at"] == view["sla_due"] == pytest.approx(100.3)
    assert view["stage_entered_at"] == 0.3


# ----------------------------------------------------------------- the full loop


def test_accepted_opportunity_won() -> None:
    s, _ = to_sql()
    s, a = apply(s, outcome("accepted", 10.0, "o1"), M)
    s, b = apply(s, outcome("opportunity_created", 20.0, "o2", amount=1000), M)
    s, c = apply(s, outcome("won", 30.0, "o3"), M)
    assert moves(a + b + c) == [
        ("sql", "accepted", "outcome"),
        ("accepted", "opportunity", "outcome"),
        ("opportunity", "customer", "outcome"),
    ]
    assert [t["direction"] for t in a + b + c] == ["up", "up", "up"]
    assert b[0]["trigger_reasons"][0]["rule_id"] == "o-opportunity"
    assert s.entered == {
        "warm": 0.1,
        "mql": 0.2,
        "sql": 0.3,
        "accepted": 10.0,
        "opportunity": 20.0,
        "customer": 30.0,
    }
    s, ts = advance(s, 10_000.0, M)
    assert ts == [] and s.stage == "customer"


def test_outcome_rules_add_and_subtract_points() -> None:
    s, _ = run([web("/pricing", 0.0, "w")])
    before = score_at(s, M, 0.0)
    s, _ = apply(s, outcome("opportunity_created", 0.0, "o"), M)
    assert score_at(s, M, 0.0) == pytest.approx(before + 20)


# ------------------------------------------------------------------- recycling


def test_rejected_recycles_to_warm_with_half_the_score_and_qualifies_again() -> None:
    s, _ = to_sql()
    at_5 = score_at(s, M, 5.0)
    s, ts = apply(s, outcome("rejected", 5.0, "rej", reason="bad timing"), M)
    assert moves(ts) == [("sql", "warm", "outcome")]
    assert ts[0]["direction"] == "down"
    assert score_at(s, M, 5.0) == pytest.approx(at_5 / 2)
    # Engaging again: up through mql to sql, by score as any lead.
    s, ts = run(
        [
            web("/pricing", 12.0, "x1"),
            web("/pricing", 12.1, "x2"),
            webinar("attended", 12.2, "x3", webinar_id="w2"),
        ],
        s,
    )
    assert s.stage == "sql"


def test_lost_resets_the_score_to_nothing() -> None:
    s, _ = to_sql()
    s, ts = apply(s, outcome("lost", 5.0, "lost"), M)
    assert moves(ts) == [("sql", "warm", "outcome")]
    assert score_at(s, M, 5.0) == pytest.approx(-10.0)  # the lost rule's own points only


def test_a_late_event_from_before_a_reset_counts_what_the_reset_left() -> None:
    base = [web("/blog/a", 1.0, "b1")]
    late = web("/pricing", 4.0, "p")
    reset = outcome("recycled", 5.0, "r")
    in_order, _ = run([*base, late, reset])
    late_first, _ = run([*base, reset, late])
    assert score_at(late_first, M, 6.0) == pytest.approx(score_at(in_order, M, 6.0))


def test_a_recycling_outcome_can_lift_a_disqualifier_the_model_names() -> None:
    s, _ = to_sql()
    s, ts = apply(s, email("unsubscribe", 5.0, "u"), M)
    assert s.stage == "disqualified"
    s, ts = apply(s, outcome("recycled", 6.0, "r1", reason="bad timing"), M)
    assert ts == [] and s.stage == "disqualified"  # no rule lifts it for that reason
    s, ts = apply(s, outcome("recycled", 7.0, "r2", reason="resubscribed"), M)
    assert moves(ts) == [("disqualified", "warm", "outcome")]


def test_a_profile_change_lifts_a_reversible_disqualifier() -> None:
    s, _ = run([profile(0.0, "p1", seniority="student")])
    assert s.stage == "disqualified"
    s, ts = apply(s, profile(1.0, "p2", seniority="vp"), M)
    assert s.disqualifier is None and ts[0]["from_stage"] == "disqualified"


# ------------------------------------------------------------------ the model file


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (('owner = "sales"', 'owner = "crm"'), "owner: 'crm' is not"),
        (('sla_met_by = ["contacted"]', 'sla_met_by = ["called"]'), "'called' is not one of"),
        (('stage = "customer"', 'stage = "client"'), "outcomes.won.stage: unknown stage 'client'"),
        (("reset = 0.0", "reset = 2"), "outcomes.lost.reset: 2 is not a factor"),
        (('name = "customer"', 'name = "warm"'), "'warm' is already a stage"),
        (("[outcomes.won]", "[outcomes.signed]"), "outcomes.signed: unknown key"),
        (('stage = "customer"', 'stage = "disqualified"'), "unknown stage 'disqualified'"),
    ],
)
def test_model_errors(edit: tuple[str, str], problem: str) -> None:
    with pytest.raises(ModelError, match=problem):
        load_model_text(SALES_MODEL.replace(*edit, 1), "m.toml")


def test_the_first_stage_cannot_belong_to_sales() -> None:
    text = SALES_MODEL.replace(
        '[[stages]]\nname = "cold"\n', '[[stages]]\nname = "cold"\nowner = "sales"\n', 1
    )
    with pytest.raises(ModelError, match=r"stages\[0\]\.owner"):
        load_model_text(text, "m.toml")


# -------------------------------------------------------------------- properties


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=N, deadline=None)
@given(events_with_outcomes(ALL_OUTCOMES), st.randoms(use_true_random=False))
def test_order_independence_with_outcomes(evs: list[dict[str, Any]], rnd: random.Random) -> None:
    # Score resets included, with events on both sides of them in any order: one newer
    # than a reset that arrives before it keeps its points whole (no group or total
    # cap in M: the reset's share does not depend on what a cap held back).
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    (a, _), (b, _) = run(evs), run(shuffled)
    t = 70.0
    assert close(score_at(a, M, t), score_at(b, M, t))
    for rid in a.rules.keys() | b.rules.keys():
        rate = M.rule_by_id[rid].rate  # type: ignore[union-attr]
        va, vb = a.rules.get(rid, [0.0, 0.0]), b.rules.get(rid, [0.0, 0.0])
        assert close(va[0] * math.exp((va[1] - t) * rate), vb[0] * math.exp((vb[1] - t) * rate))
    assert a.profile == b.profile
    assert (a.grade, a.bant, a.disqualifier) == (b.grade, b.bant, b.disqualifier)
    assert a.events_seen == b.events_seen == len(evs)


#: M with group and total caps that hold points back: a reset keeps its share of the
#: score as read through them.
CAPPED = small_model(SALES_MODEL + "\n[caps]\nweb = 45\nemail = 20\ntotal = 90\n")
RESETTING = {o for o, move in M.outcome_moves.items() if move.reset != 1.0}


@settings(max_examples=N, deadline=None)
@given(events_with_outcomes(ALL_OUTCOMES), st.randoms(use_true_random=False))
def test_under_caps_events_newer_than_a_reset_may_arrive_in_any_order(
    evs: list[dict[str, Any]], rnd: random.Random
) -> None:
    # What a reset keeps through a cap depends on the score at its time, so the
    # events (and resets) from before it arrive before it; newer ones at any point.
    arrival = {e["event_id"]: rnd.random() for e in evs}
    resets = [e for e in evs if e["source"] == "outcome" and e["outcome"] in RESETTING]
    for r in sorted(resets, key=lambda e: e["time"]):
        older = [arrival[e["event_id"]] for e in evs if e["time"] < r["time"]]
        arrival[r["event_id"]] = max([arrival[r["event_id"]], *older]) + 1e-9
    shuffled = sorted(evs, key=lambda e: arrival[e["event_id"]])
    in_time = sorted(evs, key=lambda e: (e["time"], arrival[e["event_id"]]))
    a, b = LeadState("L"), LeadState("L")
    for e in in_time:
        a, _ = apply(a, e, CAPPED)
    for e in shuffled:
        b, _ = apply(b, e, CAPPED)
    for t in (60.0, 70.0):
        assert close(score_at(a, CAPPED, t), score_at(b, CAPPED, t))
        ba, bb = breakdown_at(a, CAPPED, t), breakdown_at(b, CAPPED, t)
        assert all(close(ba[k], bb[k]) for k in ba)


@settings(max_examples=N, deadline=None)
@given(events_with_outcomes(ALL_OUTCOMES), st.data())
def test_duplicates_are_idempotent_with_outcomes(evs: list[dict[str, Any]], data: Any) -> None:
    mixed = list(evs)
    for d in data.draw(st.lists(st.sampled_from(evs), max_size=10)):
        # a duplicate arrives after its original: insert it after the first copy
        i = mixed.index(d)
        mixed.insert(data.draw(st.integers(i + 1, len(mixed))), dict(d))
    (a, ta), (b, tb) = run(evs), run(mixed)
    assert b.events_seen == a.events_seen == len(evs)
    assert a.to_dict() == b.to_dict()
    assert [t["event_id"] for t in ta] == [t["event_id"] for t in tb]


def test_a_reset_keeps_its_share_of_the_score_as_read_through_the_caps() -> None:
    from .models import SIGNAL_MODEL

    capped = small_model(SIGNAL_MODEL + '\n[outcomes.recycled]\nstage = "warm"\nreset = 0.5\n')
    s = LeadState("L")
    # 90 web points held at the web cap of 45, and a webinar's 25 on top: 70 shown
    for e in [
        web("/pricing", 0.0, "a", duration_seconds=30.0),
        web("/pricing", 0.0, "b", duration_seconds=30.0),
        web("/pricing", 0.0, "c", duration_seconds=30.0),
        webinar("attended", 0.0, "w"),
    ]:
        s, _ = apply(s, e, capped)
    shown = 45 + 30 * 2 ** (-1 / 25)  # web still above its cap at 1 s; and wb-once's 5
    assert score_at(s, capped, 1.0) == pytest.approx(shown)
    s, _ = apply(s, outcome("recycled", 1.0, "r"), capped)
    assert score_at(s, capped, 1.0) == pytest.approx(shown / 2)
    rules = sum(  # the rules agree
        a[0] * math.exp((a[1] - 1.0) * capped.rule_by_id[rid].rate)  # type: ignore[union-attr]
        for rid, a in s.rules.items()
    )
    assert rules == pytest.approx(shown / 2)


def test_an_event_newer_than_a_reset_that_arrives_before_it_keeps_its_points() -> None:
    # Issue 27: the CRM's rejection at 5 s arrives after the lead's visit at 6 s.
    blog, pricing, reset = (
        web("/blog/a", 1.0, "b"),
        web("/pricing", 6.0, "p"),
        outcome("rejected", 5.0, "r"),
    )
    in_order, _ = run([blog, reset, pricing])
    late_reset, _ = run([blog, pricing, reset])
    expected = 5 * 2 ** (-6 / 10) / 2 + 30 * 2 ** (-1 / 10)
    assert score_at(in_order, M, 7.0) == pytest.approx(expected)
    assert score_at(late_reset, M, 7.0) == pytest.approx(expected)
    assert late_reset.rules["w-pricing"][0] == pytest.approx(30.0)  # whole, at 6 s
    # One at the reset's own time counts after it too, whichever arrives first.
    same = web("/pricing", 5.0, "s")
    first, _ = run([blog, same, reset])
    after, _ = run([blog, reset, same])
    assert score_at(first, M, 5.0) == pytest.approx(score_at(after, M, 5.0))
    assert score_at(after, M, 5.0) == pytest.approx(5 * 2 ** (-4 / 10) / 2 + 30)


def test_a_late_reset_keeps_what_its_newer_points_were_through_the_caps() -> None:
    # 90 web points at 0 s held at 45 and halved by the reset at 1 s; the 30 of 2 s
    # that arrived first do not count in what the cap held, and stay whole.
    evs = [web("/pricing", 0.0, "a"), web("/pricing", 0.0, "b"), web("/pricing", 0.0, "c")]
    newer, reset = webinar("attended", 2.0, "w"), outcome("rejected", 1.0, "r")
    capped = small_model(
        SALES_MODEL.replace('cap = { count = 2, per = "10s" }\n', "", 1) + "\n[caps]\nweb = 45\n"
    )
    a, b = LeadState("L"), LeadState("L")
    for e in [*evs, reset, newer]:
        a, _ = apply(a, e, capped)
    for e in [*evs, newer, reset]:
        b, _ = apply(b, e, capped)
    assert score_at(b, capped, 2.0) == pytest.approx(score_at(a, capped, 2.0))
    assert breakdown_at(b, capped, 2.0) == pytest.approx({**breakdown_at(a, capped, 2.0)})
    assert breakdown_at(b, capped, 2.0)["webinar"] == pytest.approx(25.0)


def test_contributions_are_kept_for_resets_only_and_bounded() -> None:
    s, _ = run([web("/blog/a", float(t), f"b{t}") for t in range(2 * KEPT_CONTRIBUTIONS)])
    assert len(s.contributions) == 3 * KEPT_CONTRIBUTIONS  # the newest, in time order
    times = [float(t) for t in range(KEPT_CONTRIBUTIONS, 2 * KEPT_CONTRIBUTIONS)]
    assert s.contributions[::3] == times
    assert s.contributions[1:3] == ["w-blog", 5.0]
    s, _ = apply(s, web("/blog/a", 1000.0, "later"), M)  # max_lateness is 100 s
    assert s.contributions == [1000.0, "w-blog", 5.0]
    s, _ = apply(s, web("/blog/a", 1000.0, "same time"), M)
    assert s.contributions == [1000.0, "w-blog", 10.0]  # one rule at one time: summed
    plain = small_model()  # no outcome resets a score: nothing to keep them for
    assert not plain.has_resets and M.has_resets
    assert apply(LeadState("L"), web("/blog/a", 1.0), plain)[0].contributions == []


def test_a_reset_older_than_the_kept_contributions_scales_the_ones_it_forgot() -> None:
    n = KEPT_CONTRIBUTIONS + 2  # the first two are dropped before the reset arrives
    s, _ = run([web("/blog/a", 10.0 + i / 10, f"b{i}") for i in range(n)])
    s, _ = apply(s, outcome("lost", 5.0, "late"), M)  # keeps nothing from before 5 s
    worth = [5 * 2 ** (-(20.0 - 10.0 - i / 10) / 10) for i in range(n)]
    # All of them are newer than the reset, but the two it no longer knows are reset.
    assert score_at(s, M, 20.0) == pytest.approx(sum(worth[2:]) - 10)
