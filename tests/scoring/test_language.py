"""Model language for its owners: rule caps by field value, ``unless`` over the
profile as of the event, web actions (forms, downloads), group and total caps."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import LeadState, ModelError, apply, load_model_text
from scoring.engine import breakdown_at, score_at

from .models import TEST_MODEL, email, profile, small_model, web, webinar

LANG = small_model(
    TEST_MODEL.replace(
        'match = { action = "attended" }',
        'match = { action = "attended" }\ncap = { count = 1, by = "webinar_id" }',
    ).replace(
        'match = { action = "click" }',
        'match = { action = "click" }\nunless = { unsubscribed = true }',
    )
    + """
[[rules]]
id = "w-form"
description = "Submitted a form"
source = "web"
points = 25
match = { action = "form_submit" }

[[rules]]
id = "w-page"
description = "Viewed a page"
source = "web"
points = 1
match = { action = "page_view" }
"""
)


def run(evs: list[dict[str, Any]], model: Any = LANG) -> LeadState:
    s = LeadState("L")
    for e in evs:
        s, _ = apply(s, e, model)
    return s


def points(s: LeadState, rid: str, at: float = 10.0) -> float:
    """The rule's points at ``at`` (decayed with the rule's half-life)."""
    rule = LANG.rule_by_id[rid]
    value, anchor = s.rules.get(rid, [0.0, 0.0])
    return value * math.exp((anchor - at) * rule.rate)  # type: ignore[union-attr]


# ------------------------------------------------------------------------ cap by


def test_a_rule_capped_by_webinar_counts_once_per_webinar() -> None:
    s = run(
        [webinar("attended", float(t), webinar_id=w) for t, w in enumerate(["a", "a", "b", "a"])]
    )
    assert s.caps_by["wb-attended"].keys() == {"a", "b"}
    assert s.rules["wb-attended"][1] == 2.0  # the second counted event is b's, at t=2
    decayed = 25 * 2 ** (-2 / 25) + 25  # a's first (t=0) and b (t=2), seen at t=2
    assert points(s, "wb-attended", 2.0) == pytest.approx(decayed)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 50).map(round), st.sampled_from("abc")), max_size=12),
    st.randoms(use_true_random=False),
)
def test_once_per_webinar_whatever_the_order(
    attended: list[tuple[float, str]], rnd: random.Random
) -> None:
    evs = [webinar("attended", t, f"e{i}", webinar_id=w) for i, (t, w) in enumerate(attended)]
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    a, b = run(evs), run(shuffled)
    first = {}
    for e in sorted(evs, key=lambda e: (e["time"], e["event_id"])):
        first.setdefault(e["webinar_id"], e["time"])
    expected = sum(25 * 2 ** (-(60 - t) / 25) for t in first.values())
    for s in (a, b):
        got = s.rules.get("wb-attended", [0.0, 60.0])
        assert math.isclose(got[0] * 2 ** (-(60 - got[1]) / 25), expected, abs_tol=1e-9)


def test_cap_by_must_name_a_field_of_the_source() -> None:
    bad = TEST_MODEL.replace(
        'match = { action = "attended" }',
        'match = { action = "attended" }\ncap = { count = 1, by = "webinar", per = "1d" }',
    )
    with pytest.raises(ModelError) as exc:
        load_model_text(bad)
    assert any(
        "cap.by: 'webinar' is not a field of webinar events" in p for p in exc.value.problems
    )
    assert any("per and by together" in p for p in exc.value.problems)


# ------------------------------------------------------------------------ unless


def test_unsubscribed_leads_email_clicks_stop_counting() -> None:
    s = run([email("click", 0.0), email("unsubscribe", 1.0), email("click", 2.0)])
    assert s.profile["unsubscribed"] is True
    assert points(s, "e-click") == pytest.approx(12 * 2 ** (-10 / 4))  # only the first


def test_a_click_made_before_the_unsubscribe_counts_when_it_arrives_after_it() -> None:
    s = run([email("unsubscribe", 5.0), email("click", 1.0)])
    assert points(s, "e-click") == pytest.approx(12 * 2 ** (-9 / 4))


def test_resubscribed_leads_count_again() -> None:
    s = run([email("unsubscribe", 0.0), profile(1.0, unsubscribed=False), email("click", 2.0)])
    assert points(s, "e-click") == pytest.approx(12 * 2 ** (-8 / 4))


# ----------------------------------------------------------------------- actions


def test_a_web_event_without_an_action_is_a_page_view() -> None:
    s = run([web("/x", 0.0), web("/x", 1.0, action="form_submit", form_id="demo")])
    assert points(s, "w-page", 1.0) == pytest.approx(2 ** (-1 / 10))
    assert points(s, "w-form", 1.0) == 25.0


def test_web_actions_are_checked_at_load() -> None:
    bad = TEST_MODEL.replace(
        'match = { path = { glob = "/blog*" } }', 'match = { action = "sumbit" }'
    )
    with pytest.raises(ModelError, match='"sumbit" is not one of download, form_submit, page_view'):
        load_model_text(bad)


# -------------------------------------------------------------------- group caps

CAPPED = small_model(TEST_MODEL + "\n[caps]\nweb = 40\ntotal = 85\n")


def test_a_category_reads_within_its_cap_and_the_score_within_the_total() -> None:
    evs = [web("/pricing", 0.0, f"p{i}") for i in range(2)]  # 60 raw web points
    evs += [webinar("attended", 0.0, f"w{i}") for i in range(3)]  # 75 webinar points
    s = run(evs, CAPPED)
    assert breakdown_at(s, CAPPED, 0.0)["web"] == 40.0
    assert score_at(s, CAPPED, 0.0) == 85.0  # 40 + 75, held by the total
    assert s.rules["w-pricing"][0] == 60.0  # stored exactly: holding is read-time only


def test_negative_points_are_held_too() -> None:
    s = run([web("/careers", 0.0, f"c{i}") for i in range(5)], CAPPED)  # -100 raw
    assert breakdown_at(s, CAPPED, 0.0)["web"] == -40.0


def test_reasons_share_a_held_category_between_its_rules() -> None:
    from scoring.reasons import engagement_reasons

    s = run([web("/pricing", 0.0, "p1"), web("/pricing", 0.0, "p2"), web("/blog", 0.0)], CAPPED)
    got = {r["rule_id"]: r["points"] for r in engagement_reasons(s, CAPPED, 0.0)}
    assert got == pytest.approx({"w-pricing": 40 * 60 / 65, "w-blog": 40 * 5 / 65})


@pytest.mark.parametrize(
    ("caps", "problem"),
    [
        ("nope = 3", "caps.nope: unknown category"),
        ("web = 0", "caps.web: 0 must be above 0"),
        ("total = 70", "caps.total: 70 leaves stage sql's entry.score 80 out of reach"),
        ('web = "x"', "caps.web: 'x' is not a finite number"),
    ],
)
def test_caps_are_checked_at_load(caps: str, problem: str) -> None:
    with pytest.raises(ModelError) as exc:
        load_model_text(TEST_MODEL + f"\n[caps]\n{caps}\n")
    assert any(problem in p for p in exc.value.problems), exc.value.problems


@pytest.mark.parametrize(
    ("bots", "problem"),
    [
        ("enabled = 1", "bots.enabled: 1 is not true or false"),
        (
            'web_burst = { count = 1, within = "5s" }',
            "bots.web_burst.count: 1 is not an integer >= 2",
        ),
        ('email_click_gap = "0s"', "bots.email_click_gap: must be longer than 0s"),
        (
            'email_links = { count = 3, within = "2h" }',
            "bots.memory: shorter than a pattern's window",
        ),
        ("colour = 3", "bots.colour: unknown key"),
    ],
)
def test_bots_are_checked_at_load(bots: str, problem: str) -> None:
    with pytest.raises(ModelError) as exc:
        load_model_text(TEST_MODEL + f"\n[bots]\n{bots}\n")
    assert any(problem in p for p in exc.value.problems), exc.value.problems


def test_history_size_is_bounded() -> None:
    with pytest.raises(ModelError, match=r"settings\.history_size: at most 500"):
        load_model_text(
            TEST_MODEL.replace("reasons_top_n = 3", "reasons_top_n = 3\nhistory_size = 501")
        )
