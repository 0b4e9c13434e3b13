"""Bot and scanner filtering (scoring.bots, in scoring.engine.apply): the tracker's flag,
the worker's user-agent mark, and per-lead time patterns; filtered events never count,
and events scored before a pattern showed are taken back exactly."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import LeadState, ScoringModel, apply
from scoring.bots import MAX_RECENT
from scoring.engine import score_at

from .models import SALES_MODEL, SIGNAL_MODEL, TEST_MODEL, email, outcome, small_model, web
from .strategies import EXAMPLES as N
from .strategies import events

#: SIGNAL_MODEL with room in the history for every event a property draws.
S = small_model(SIGNAL_MODEL.replace("reasons_top_n = 3", "reasons_top_n = 3\nhistory_size = 500"))
BOTS = S.bots
#: S with the opt-in pattern: clicks with no open of their email are held.
S_OPEN = small_model(
    SIGNAL_MODEL.replace("reasons_top_n = 3", "reasons_top_n = 3\nhistory_size = 500").replace(
        "[bots]\n", "[bots]\nemail_no_open = true\n", 1
    )
)


def run(evs: list[dict[str, Any]], model: ScoringModel = S) -> tuple[LeadState, list[Any]]:
    s = LeadState("L")
    out: list[Any] = []
    for e in evs:
        s, ts = apply(s, e, model)
        out.extend(ts)
    return s, out


def filtered(s: LeadState) -> dict[str, str]:
    """Event id -> reason of every event the history shows filtered."""
    return {
        e[2]: e[4] if e[1] == "bot" else e[3] for e in s.history if e[1] in ("bot", "retracted")
    }


def click(t: float, link: str = "/pricing", campaign: str = "news", **kw: Any) -> dict[str, Any]:
    return email("click", t, link=link, campaign_id=campaign, **kw)


# ------------------------------------------------------------------------- examples


def test_the_trackers_flag_and_the_workers_mark_filter_the_event_itself() -> None:
    s, _ = run(
        [
            web("/pricing", 0.0, "flagged", is_bot=True),
            web("/pricing", 100.0, "marked", bot="user_agent"),
            web("/pricing", 200.0, "person", is_bot=False),
        ]
    )
    assert filtered(s) == {"flagged": "tracker_flag", "marked": "user_agent"}
    assert s.bots_filtered == 2 and s.events_seen == 3
    assert s.rules["w-pricing"][0] == 30.0  # only the person's view counts
    assert s.filtered == () and not s.filtered_self  # the last apply filtered nothing


def test_a_filtered_event_tells_the_caller_why() -> None:
    s, _ = run([web("/pricing", 0.0, is_bot=True)])
    assert (s.filtered, s.filtered_self) == (("tracker_flag",), True)


def test_no_bots_section_filters_nothing() -> None:
    s, _ = run([web("/pricing", 0.0, "a", is_bot=True)], small_model(TEST_MODEL))
    assert s.bots_filtered == 0 and s.rules["w-pricing"][0] == 30.0


def test_a_second_click_within_the_gap_takes_the_first_back() -> None:
    s, _ = run([click(0.0, eid="c1"), click(1.5, "/demo", eid="c2")])
    assert s.rules["e-click"][0] == pytest.approx(0.0, abs=1e-9)
    assert filtered(s) == {"c1": "email_click_gap", "c2": "email_click_gap"}
    assert s.filtered == ("email_click_gap", "email_click_gap") and s.filtered_self
    assert s.history[-2][1:4] == ("retracted", "c1", "email_click_gap")
    assert s.history[-2][4:] == ("e-click", -12.0)


def test_clicks_on_other_emails_or_further_apart_are_a_persons() -> None:
    s, _ = run([click(0.0, campaign="a"), click(1.0, campaign="b"), click(30.0, campaign="a")])
    assert s.bots_filtered == 0
    assert s.rules["e-click"][0] > 12.0


@pytest.mark.parametrize("delivered_first", [True, False])
def test_a_click_seconds_after_delivery_is_a_scanners(delivered_first: bool) -> None:
    delivered = email("delivered", 100.0, "d1", campaign_id="news")
    c = click(105.0, eid="c1")
    s, _ = run([delivered, c] if delivered_first else [c, delivered])
    assert filtered(s) == {"c1": "email_after_delivery"}
    assert score_at(s, S, 105.0) == pytest.approx(0.0, abs=1e-9)
    late, _ = run([delivered, click(160.0, eid="c2")])
    assert late.bots_filtered == 0


def test_many_links_of_one_email_within_the_window() -> None:
    s, _ = run([click(0.0, "/a", eid="a"), click(4.0, "/b", eid="b"), click(8.0, "/c", eid="c")])
    assert filtered(s) == {"a": "email_links", "b": "email_links", "c": "email_links"}
    same_link, _ = run([click(0.0, "/a"), click(4.0, "/a"), click(8.0, "/a")])
    assert same_link.bots_filtered == 0  # one link, read three times: a person


def test_a_burst_of_short_views_is_a_crawler_long_views_are_not() -> None:
    views = [web("/pricing", t, f"v{t:g}", duration_seconds=0) for t in (0.0, 3.0, 6.0)]
    s, _ = run(views)
    assert set(filtered(s)) == {"v0", "v3", "v6"}
    assert s.rules["w-pricing"][0] == pytest.approx(0.0, abs=1e-9)
    forms = [web("/demo", t, duration_seconds=0, action="form_submit") for t in (0.0, 3.0, 6.0)]
    assert run(forms)[0].bots_filtered == 0  # forms and downloads are not reading
    read, _ = run([web("/pricing", t, duration_seconds=40) for t in (0.0, 3.0, 6.0)])
    unknown, _ = run([web("/pricing", t) for t in (0.0, 3.0, 6.0)])
    assert read.bots_filtered == unknown.bots_filtered == 0


def test_a_retraction_can_move_the_stage_down_and_says_why() -> None:
    _, ts = run(
        [
            web("/pricing", 0.0, "v1", duration_seconds=0.2),
            web("/blog", 1.0, "v2", duration_seconds=0.2),
            web("/blog", 2.0, "v3", duration_seconds=0.2),
        ]
    )
    assert [(t["from_stage"], t["to_stage"]) for t in ts] == [("cold", "warm"), ("warm", "cold")]
    down = ts[-1]
    assert down["trigger_event_id"] == "v3"
    assert [(r["rule_id"], r["points"]) for r in down["trigger_reasons"]] == [
        ("w-pricing", -30.0),
        ("w-blog", -5.0),
    ]


def test_patterns_forget_what_is_older_than_their_memory() -> None:
    evs = [click(0.0, eid="old"), click(4000.0, eid="new"), click(1.0, eid="late")]
    s, _ = run(evs)
    assert "old" not in {e[1] for e in s.recent}
    assert s.bots_filtered == 0  # "late" is older than memory: compared with nothing


def test_recent_is_bounded() -> None:
    s, _ = run([click(float(i * 60), eid=f"c{i}") for i in range(3 * MAX_RECENT)])
    assert len(s.recent) <= MAX_RECENT
    assert [e[1] for e in s.recent] == [f"c{i}" for i in range(2 * MAX_RECENT, 3 * MAX_RECENT)]


# ----------------------------------------------------------------------- properties


def reference(evs: list[dict[str, Any]]) -> set[str]:
    """The events the [bots] rules catch, from the whole set of events at once."""
    out = set()
    for e in evs:
        if e.get("is_bot") is True or e.get("bot"):
            out.add(e["event_id"])
    short = [
        e
        for e in evs
        if e["source"] == "web"
        and isinstance(e.get("duration_seconds"), int | float)
        and e["duration_seconds"] <= BOTS.web_max_dwell
    ]
    out |= _dense(short, BOTS.web_burst_count, BOTS.web_burst_within, key=None)
    for campaign in {e.get("campaign_id") for e in evs if e["source"] == "email"}:
        mine = [e for e in evs if e["source"] == "email" and e.get("campaign_id") == campaign]
        clicks = [e for e in mine if e["action"] == "click"]
        delivered = [e["time"] for e in mine if e["action"] == "delivered"]
        for c in clicks:
            t = c["time"]
            if any(abs(t - d) <= BOTS.email_after_delivery for d in delivered):
                out.add(c["event_id"])
            if any(o is not c and abs(o["time"] - t) <= BOTS.email_click_gap for o in clicks):
                out.add(c["event_id"])
        out |= _dense(clicks, BOTS.email_links_count, BOTS.email_links_within, key="link")
    return out


def _dense(evs: list[dict[str, Any]], count: int, within: float, key: str | None) -> set[str]:
    out = set()
    for start in evs:
        window = [e for e in evs if 0 <= e["time"] - start["time"] <= within]
        size = len({e.get(key) for e in window}) if key else len(window)
        if size >= count:
            out |= {e["event_id"] for e in window}
    return out


@st.composite
def marked_events(draw: Any) -> list[dict[str, Any]]:
    evs = draw(events())
    for e in evs:
        if e["source"] in ("web", "email") and draw(st.integers(0, 9)) == 0:
            e["is_bot"] = True
    return evs


@settings(max_examples=N, deadline=None)
@given(marked_events(), st.randoms(use_true_random=False))
def test_what_is_filtered_is_the_set_rule_whatever_the_order(
    evs: list[dict[str, Any]], rnd: random.Random
) -> None:
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    (a, _), (b, _) = run(evs), run(shuffled)
    assert set(filtered(a)) == set(filtered(b)) == reference(evs)
    assert a.bots_filtered == b.bots_filtered == len(reference(evs))
    assert math.isclose(score_at(a, S, 70.0), score_at(b, S, 70.0), rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=N, deadline=None)
@given(marked_events())
def test_the_score_is_what_the_persons_events_alone_give(evs: list[dict[str, Any]]) -> None:
    bots = reference(evs)
    people = [e for e in evs if e["event_id"] not in bots]
    # Without [bots] the persons' events alone score the same (webinar and profile
    # events are never screened; the other rules are uncapped in SIGNAL_MODEL).
    no_bots = small_model(
        SIGNAL_MODEL.split("[bots]")[0] + "[caps]" + SIGNAL_MODEL.split("[caps]")[1]
    )
    (a, _), (b, _) = run(evs), run(people, no_bots)
    for t in (60.0, 90.0):
        assert math.isclose(score_at(a, S, t), score_at(b, no_bots, t), rel_tol=1e-9, abs_tol=1e-9)


def test_a_producers_own_bot_field_is_ignored() -> None:
    s, _ = run([web("/pricing", 0.0, "x", bot="mine, any text"), web("/blog", 1.0, bot=["x"])])
    assert s.bots_filtered == 0


# ------------------------------------------------- email_no_open: clicks with no open


def opened(t: float, campaign: str = "news", **kw: Any) -> dict[str, Any]:
    return email("open", t, campaign_id=campaign, **kw)


def clicks_score(s: LeadState, model: ScoringModel, t: float) -> float:
    acc = s.rules.get("e-click", [0.0, t])
    return float(acc[0] * 2 ** ((acc[1] - t) / 4.0))  # email's half-life: 4 s


def test_without_the_pattern_a_click_with_no_open_is_a_persons() -> None:
    assert not S.bots.email_no_open  # off unless the model turns it on
    s, _ = run([click(0.0, eid="c1")])
    assert s.bots_filtered == 0 and s.rules["e-click"][0] == 12.0


def test_a_click_with_no_open_is_held() -> None:
    s, ts = run([click(0.0, eid="c1")], S_OPEN)
    assert "e-click" not in s.rules and ts == []
    assert (s.filtered, s.filtered_self, s.bots_filtered) == (("email_no_open",), True, 1)
    assert s.history[-1][1:] == ("bot", "c1", "email", "email_no_open")


def test_a_click_after_an_open_of_its_email_is_a_persons() -> None:
    s, _ = run([opened(0.0), click(30.0, eid="c1")], S_OPEN)
    assert s.bots_filtered == 0 and s.rules["e-click"][0] == 12.0
    other, _ = run([opened(0.0, campaign="other"), click(30.0)], S_OPEN)
    assert other.bots_filtered == 1  # an open of another email says nothing


def test_a_late_open_restores_the_held_click_as_if_scored_at_its_time() -> None:
    a, _ = run([opened(20.0, eid="o"), click(10.0, eid="c1")], S_OPEN)
    b, ts = run([click(10.0, eid="c1"), opened(20.0, eid="o")], S_OPEN)
    assert b.bots_filtered == 0 and b.filtered == () and not b.filtered_self
    assert b.rules["e-click"] == a.rules["e-click"] == [12.0, 10.0]
    assert b.recent == a.recent  # the same pattern entries: a scored click each
    assert clicks_score(b, S_OPEN, 30.0) == pytest.approx(12.0 * 2 ** (-20.0 / 4.0))
    assert b.history[-1] == (10.0, "event", "c1", "email", "e-click", 12.0)  # at its time
    assert ts == []  # 12 points at 10 s, decayed to 20 s, is no stage change


def test_restored_points_can_move_the_stage_and_say_why() -> None:
    evs = [click(t, eid=f"c{t:g}") for t in (0.0, 3.0, 6.0)] + [opened(6.0, eid="o")]
    s, ts = run(evs, S_OPEN)
    assert [(t["from_stage"], t["to_stage"], t["trigger_event_id"]) for t in ts] == [
        ("cold", "warm", "o")
    ]
    assert [(r["rule_id"], r["points"]) for r in ts[0]["trigger_reasons"]] == [("e-click", 36.0)]
    assert score_at(s, S_OPEN, 6.0) == pytest.approx(12 * (2**-1.5 + 2**-0.75 + 1))


def test_a_bots_open_releases_nothing() -> None:
    s, _ = run([click(0.0, eid="c1"), opened(5.0, is_bot=True)], S_OPEN)
    assert s.bots_filtered == 2 and "e-click" not in s.rules


def test_an_open_further_than_memory_from_the_click_does_not_count() -> None:
    s, _ = run([opened(0.0), click(S_OPEN.bots.memory + 1.0, eid="c1")], S_OPEN)
    assert s.bots_filtered == 1 and "e-click" not in s.rules


def test_a_held_click_a_scanner_pattern_then_catches_is_never_restored() -> None:
    evs = [click(0.0, eid="c1"), click(1.0, eid="c2"), opened(5.0, eid="o")]
    s, _ = run(evs, S_OPEN)
    assert s.bots_filtered == 2  # the held click is counted once
    assert "e-click" not in s.rules
    assert filtered(s) == {"c1": "email_no_open", "c2": "email_click_gap"}  # the first name


def test_a_restored_click_is_taken_back_exactly_when_a_pattern_shows() -> None:
    evs = [click(0.0, eid="c1"), opened(5.0, eid="o"), click(1.0, eid="c2")]
    s, _ = run(evs, S_OPEN)
    assert s.bots_filtered == 2
    assert s.rules["e-click"][0] == pytest.approx(0.0, abs=1e-9)
    assert s.history[-2][1:] == ("retracted", "c1", "email_click_gap", "e-click", -12.0)


def test_a_restored_click_counts_what_a_reset_after_it_left() -> None:
    m = small_model(SALES_MODEL + "\n[bots]\nemail_no_open = true\n")
    evs = [click(10.0, eid="c1"), outcome("rejected", 20.0, "r"), opened(30.0, eid="o")]
    held, _ = run(evs, m)
    in_order, _ = run([opened(5.0, eid="o"), click(10.0, eid="c1"), evs[1]], m)
    assert held.rules["e-click"] == pytest.approx(in_order.rules["e-click"])
    assert held.rules["e-click"][0] == pytest.approx(6.0)  # the rejection kept half


def test_the_pattern_is_opt_in_and_a_boolean() -> None:
    from scoring import ModelError, load_model_text

    assert not small_model(SIGNAL_MODEL).bots.email_no_open
    with pytest.raises(ModelError, match=r"bots.email_no_open: '1h' is not true or false"):
        load_model_text(SIGNAL_MODEL.replace("[bots]\n", '[bots]\nemail_no_open = "1h"\n'))


def held_reference(evs: list[dict[str, Any]]) -> set[str]:
    """The clicks ``email_no_open`` holds, from the whole set of events at once: no
    scanner pattern's, with no open of their email by a person within memory."""
    bots = reference(evs)
    opens = [e for e in evs if e["source"] == "email" and e["action"] == "open"]
    return {
        c["event_id"]
        for c in evs
        if c["source"] == "email"
        and c["action"] == "click"
        and c["event_id"] not in bots
        and not any(
            o.get("is_bot") is not True
            and o["campaign_id"] == c["campaign_id"]
            and abs(o["time"] - c["time"]) <= S_OPEN.bots.memory
            for o in opens
        )
    }


@settings(max_examples=N, deadline=None)
@given(marked_events(), st.data())
def test_clicks_with_no_open_are_held_whatever_the_order_and_repeats(
    evs: list[dict[str, Any]], data: Any
) -> None:
    shuffled = data.draw(st.permutations(evs))
    for d in data.draw(st.lists(st.sampled_from(evs), max_size=5)):
        shuffled.insert(data.draw(st.integers(0, len(shuffled))), dict(d))
    (a, _), (b, _) = run(evs, S_OPEN), run(shuffled, S_OPEN)
    expected = reference(evs) | held_reference(evs)
    assert a.bots_filtered == b.bots_filtered == len(expected)
    clicks = {e["event_id"] for e in evs if e["source"] == "email" and e["action"] == "click"}
    for s in (a, b):
        assert {e[1] for e in s.recent if e[5] is None and e[2] in "ch"} == expected & clicks
    people = [e for e in evs if e["event_id"] not in expected]
    no_bots = small_model(
        SIGNAL_MODEL.split("[bots]")[0] + "[caps]" + SIGNAL_MODEL.split("[caps]")[1]
    )
    c, _ = run(people, no_bots)
    for t in (60.0, 90.0):
        want = score_at(c, no_bots, t)
        assert math.isclose(score_at(a, S_OPEN, t), want, rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(score_at(b, S_OPEN, t), want, rel_tol=1e-9, abs_tol=1e-9)
