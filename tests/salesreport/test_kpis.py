"""The KPIs over histories whose rates and times are known by construction."""

from __future__ import annotations

import math

import pytest

from streams.salesreport.kpis import (
    ALL_MODELS,
    FUNNEL,
    NO_REASON,
    FunnelStages,
    Rate,
    compute,
    quantile,
    spread,
    stage_order,
    top_reasons,
)
from tests.salesreport.histories import (
    HOUR,
    MODEL,
    T0,
    Record,
    change,
    history_of,
    known,
    outcome,
    shuffled,
)

V2 = ("leadstream-default", "2.0.0")


def small(prefix: str = "b", model: tuple[str, str] = V2) -> list[Record]:
    """10 leads: 5 MQLs (grade B), 4 SQLs, 2 accepted and 2 rejected, 1 opportunity, won."""
    records: list[Record] = []
    for i in range(10):
        lead, at = f"{prefix}-{i}", T0 + 86400 + i * 60
        records.append(change(lead, 1, "warm", at, model=model))
        if i < 5:
            records.append(change(lead, 2, "mql", at + HOUR, grade="B", model=model))
        if i < 4:
            records.append(change(lead, 3, "sql", at + 3 * HOUR, grade="B", model=model))
            name = "accepted" if i < 2 else "rejected"
            records.append(outcome(lead, name, at + 4 * HOUR, None if i < 2 else "no budget"))
        if i == 0:
            records.append(outcome(lead, "opportunity_created", at + 5 * HOUR))
            records.append(outcome(lead, "won", at + 9 * HOUR))
    return records


def rate(r: Rate) -> float | None:
    return r.value


def test_the_funnel_and_its_conversions() -> None:
    report = compute(history_of(known()))
    c = report.overall
    assert c.leads == 250
    assert c.funnel == [250, 100, 40, 20, 10, 4]
    conversions = [rate(c.conversion(s)) for s in FUNNEL[1:]]
    assert conversions == [0.4, 0.4, 0.5, 0.5, 0.4]
    with pytest.raises(ValueError):
        c.conversion("lead")


def test_the_rates() -> None:
    c = compute(history_of(known())).overall
    assert c.lead_to_opportunity == Rate(10, 250)
    assert c.mql_precision == Rate(10, 100)
    assert c.opportunities_from_mqls == Rate(10, 10)
    # 4 won, 5 lost, 1 still open: the open one is not a loss yet.
    assert c.win_rate == Rate(4, 9)
    assert rate(c.win_rate) == pytest.approx(4 / 9)


def test_conversion_by_the_grade_at_mql_entry() -> None:
    c = compute(history_of(known())).overall
    assert c.grades == {"A": [30, 20, 20, 10, 4], "B": [40, 20, 0, 0, 0], "C": [30, 0, 0, 0, 0]}
    assert [c.grade_conversion("A", s) for s in ("sql", "accepted", "opportunity", "won")] == [
        Rate(20, 30),
        Rate(20, 20),
        Rate(10, 20),
        Rate(4, 10),
    ]
    assert c.grade_conversion("B", "accepted") == Rate(0, 20)
    assert rate(c.grade_conversion("B", "opportunity")) is None  # none accepted: no rate
    assert c.grade_precision("A") == Rate(10, 30)
    assert c.grade_precision("B") == Rate(0, 40)
    assert c.grade_precision("D") == Rate(0, 0)


def test_medians_and_p90_of_known_durations() -> None:
    c = compute(history_of(known())).overall
    hours = {name: spread(v) for name, v in c.milestones.items()}
    mql_sql = hours["MQL → SQL"]  # 1..40 h
    assert (mql_sql.n, mql_sql.median, mql_sql.p90) == (40, 20.5 * HOUR, pytest.approx(36.1 * HOUR))
    assert spread(c.milestones["SQL → accepted"])[:3] == (20, 2 * HOUR, 2 * HOUR)
    assert spread(c.milestones["SQL → contacted"]).median == 3 * HOUR
    assert spread(c.milestones["accepted → opportunity"]).median == 22 * HOUR
    lead_opp = spread(c.milestones["lead → opportunity"])  # 26..35 h
    assert (lead_opp.n, lead_opp.median, lead_opp.p90) == (
        10,
        30.5 * HOUR,
        pytest.approx(34.1 * HOUR),
    )
    won = spread(c.milestones["opportunity → won"])  # 10, 20, 30, 40 h
    assert (won.n, won.median, won.p90) == (4, 25 * HOUR, pytest.approx(37 * HOUR))


def test_time_in_each_stage_counts_the_stays_that_ended() -> None:
    c = compute(history_of(known())).overall
    assert spread(c.stays["warm"])[:3] == (100, HOUR, HOUR)
    assert spread(c.stays["mql"]).median == 20.5 * HOUR
    assert "sql" not in c.stays  # no SQL left SQL
    assert c.open_stays == {"warm": 150, "mql": 60, "sql": 40}
    assert c.entering == {"warm": 250, "mql": 100, "sql": 40}


def test_outcomes_and_the_reasons_why_not() -> None:
    c = compute(history_of(known())).overall
    assert c.outcome_leads == {
        "accepted": 20,
        "rejected": 20,
        "contacted": 16,
        "opportunity_created": 10,
        "won": 4,
        "lost": 5,
        "recycled": 5,
    }
    assert top_reasons(c, "rejected") == [("bad timing", 10), ("no budget", 10)]  # ties by name
    assert top_reasons(c, "lost") == [("competitor", 3), ("price", 2)]
    assert top_reasons(c, "lost", 1) == [("competitor", 3)]


def test_two_model_versions_are_kept_apart_and_add_up() -> None:
    report = compute(history_of(shuffled(known() + small())))
    assert list(report.models) == ["leadstream-default v1.0.0", "leadstream-default v2.0.0"]
    assert [name for name, _ in report.cohorts()] == [ALL_MODELS, *report.models]
    v1, v2 = report.models.values()
    assert v1.funnel == [250, 100, 40, 20, 10, 4]
    assert v2.funnel == [10, 5, 4, 2, 1, 1]
    assert report.overall.funnel == [260, 105, 44, 22, 11, 5]
    assert v2.grades == {"B": [5, 4, 2, 1, 1]}
    assert v2.mql_precision == Rate(1, 5) and v2.win_rate == Rate(1, 1)
    assert v2.reasons["rejected"] == {"no budget": 2}
    assert report.overall.reasons["rejected"]["no budget"] == 12
    assert spread(v2.milestones["MQL → SQL"]).median == 2 * HOUR
    assert spread(report.overall.milestones["MQL → SQL"]).n == 44


def test_one_model_version_is_shown_alone() -> None:
    report = compute(history_of(known()))
    assert report.cohorts() == [("leadstream-default v1.0.0", report.overall)]


def test_a_lead_belongs_to_the_model_that_made_it_an_mql() -> None:
    records = [
        change("x", 1, "warm", T0, model=MODEL),
        change("x", 2, "mql", T0 + HOUR, grade="C", model=MODEL),
        # The model was changed; the new one made it an SQL, graded A.
        change("x", 3, "sql", T0 + 2 * HOUR, grade="A", model=V2),
        change("y", 1, "warm", T0, model=MODEL),
        change("y", 2, "cold", T0 + HOUR, model=V2),  # never an MQL: its latest model's
    ]
    report = compute(history_of(records))
    v1, v2 = report.models.values()
    assert (v1.leads, v1.funnel[:3], v1.grades) == (1, [1, 1, 1], {"C": [1, 1, 0, 0, 0]})
    assert (v2.leads, v2.funnel[:3]) == (1, [1, 0, 0])


def test_a_jump_past_mql_counts_as_an_mql_that_took_no_time() -> None:
    # BANT complete and the score high at once: warm -> sql, never published as mql.
    # It entered MQL and SQL at the same instant (the live metric observes 0 s too),
    # and it is one of the MQLs MQL precision is over.
    records = [
        change("j", 1, "warm", T0),
        change("j", 2, "sql", T0 + HOUR, grade="B"),
        outcome("j", "opportunity_created", T0 + 5 * HOUR),
        change("m", 1, "warm", T0),
        change("m", 2, "mql", T0 + HOUR, grade="B"),  # an MQL that went no further
    ]
    c = compute(history_of(records)).overall
    assert c.funnel[:3] == [2, 2, 1]
    assert c.grades == {"B": [2, 1, 1, 1, 0]}
    assert c.milestones["MQL → SQL"] == [0.0]
    assert c.mql_precision == Rate(1, 2)
    assert c.opportunities_from_mqls == Rate(1, 1)
    assert c.skipped_mql == 1
    assert c.entering == {"warm": 2, "mql": 1, "sql": 1}  # as published: j never entered mql


def test_a_lead_that_was_an_mql_before_its_sql_did_not_jump() -> None:
    records = [
        change("d", 1, "mql", T0),
        change("d", 2, "warm", T0 + HOUR),  # decayed
        change("d", 3, "sql", T0 + 2 * HOUR),  # and came back straight into sql
    ]
    c = compute(history_of(records)).overall
    assert c.skipped_mql == 0
    assert c.milestones["MQL → SQL"] == [2 * HOUR]


def test_later_sales_stages_stand_for_earlier_ones() -> None:
    records = [
        change("w", 1, "mql", T0),
        change("w", 2, "sql", T0 + HOUR),
        outcome("w", "won", T0 + 5 * HOUR),  # the CRM sync sent only the win
    ]
    c = compute(history_of(records)).overall
    assert c.funnel == [1, 1, 1, 1, 1, 1]
    assert c.milestones["SQL → accepted"] == [4 * HOUR]
    assert c.milestones["opportunity → won"] == [0.0]
    assert c.win_rate == Rate(1, 1)


def test_an_opportunity_the_model_never_qualified_is_not_in_the_funnel() -> None:
    records = [
        change("m", 1, "mql", T0),
        change("s", 1, "warm", T0),  # sales found it on their own
        outcome("s", "accepted", T0 + HOUR),
        outcome("s", "opportunity_created", T0 + 2 * HOUR),
    ]
    c = compute(history_of(records)).overall
    assert c.funnel == [2, 1, 0, 0, 0, 0]
    assert c.lead_to_opportunity == Rate(1, 2)
    assert c.mql_precision == Rate(0, 1)
    assert c.opportunities_from_mqls == Rate(0, 1)  # the model missed it
    assert c.milestones["lead → opportunity"] == [2 * HOUR]


def test_repeats_count_once() -> None:
    records = known()
    changes, outcomes = ([r for r in records if r[0] == kind] for kind in ("qualified", "outcome"))
    repeated = records + changes[:30] + outcomes[:7]
    report = compute(history_of(shuffled(repeated)))
    assert report.overall.funnel == [250, 100, 40, 20, 10, 4]
    assert report.overall.outcome_leads["accepted"] == 20
    n = report.counts
    assert (n.changes, n.repeated_changes) == (390, 30)
    assert (n.outcomes, n.repeated_outcomes) == (80, 7)
    assert n.leads == 250


def test_the_order_records_are_read_in_does_not_matter() -> None:
    records = known() + small()
    a, b = compute(history_of(records)), compute(history_of(shuffled(records, seed=7)))
    assert a == b


def test_a_gap_in_the_sequence_leaves_that_stay_unmeasured() -> None:
    records = [
        change("g", 1, "warm", T0),
        change("g", 3, "sql", T0 + 5 * HOUR),  # 2 (mql) is not in the input
        change("g", 4, "mql", T0 + 9 * HOUR),
    ]
    c = compute(history_of(records)).overall
    assert c.stays == {"sql": [4 * HOUR]}
    assert c.open_stays == {"mql": 1}


def test_outcomes_of_leads_with_no_stage_change_are_counted_apart() -> None:
    records = [
        change("a", 1, "sql", T0),
        outcome("a", "accepted", T0 + HOUR),
        outcome("ghost", "accepted", T0),
        outcome("ghost", "won", T0 + HOUR),
        outcome("ghost", "won", T0 + HOUR),  # a repeat
    ]
    report = compute(history_of(records))
    assert report.overall.funnel[:4] == [1, 1, 1, 1]
    n = report.counts
    assert (n.outcomes, n.unmatched_outcomes, n.unmatched_leads) == (1, 2, 1)
    assert report.overall.won == 0


def test_invalid_records_are_left_out_and_counted_by_why() -> None:
    good = change("a", 1, "mql", T0)[1]
    history = history_of(
        [
            ("qualified", good),
            ("qualified", {**good, "grade": None}),
            ("qualified", {**good, "sequence": 0}),
            ("qualified", {**good, "changed_at": "yesterday"}),
            ("qualified", {k: v for k, v in good.items() if k != "model_id"}),
            ("qualified", ["not", "an", "object"]),  # type: ignore[list-item]
            ("outcome", {**outcome("a", "accepted", T0)[1], "outcome": "signed"}),
            ("outcome", {**outcome("a", "accepted", T0)[1], "occurred_at": 1.5}),
            ("outcome", outcome("a", "lost", T0, reason=None)[1]),
        ]
    )
    assert history.skipped == {
        "stage change: no valid grade": 1,
        "stage change: no valid sequence": 1,
        "stage change: no valid changed_at": 1,
        "stage change: no valid model_id": 1,
        "stage change: not a JSON object": 1,
        "outcome: unknown outcome": 1,
        "outcome: no valid occurred_at": 1,
    }
    report = compute(history)
    assert report.overall.leads == 1
    assert report.overall.reasons["lost"] == {NO_REASON: 1}
    assert report.skipped == history.skipped


def test_other_stage_names_for_mql_and_sql() -> None:
    records = [change("a", 1, "marketing", T0), change("a", 2, "sales", T0 + HOUR)]
    c = compute(history_of(records), FunnelStages(mql="marketing", sql="sales")).overall
    assert c.funnel[:3] == [1, 1, 1]
    assert compute(history_of(records)).overall.funnel[:3] == [1, 0, 0]


def test_an_empty_history() -> None:
    report = compute(history_of([]))
    assert report.overall.leads == 0 and report.models == {}
    assert report.first_at is None and report.overall.mql_precision.value is None


def test_stages_low_to_high() -> None:
    seen = {"disqualified", "sql", "customer", "accepted", "warm", "mql", "cold", "nurture"}
    assert stage_order(seen, FunnelStages()) == [
        "cold",
        "warm",
        "mql",
        "sql",
        "accepted",
        "customer",
        "nurture",
        "disqualified",
    ]


def test_quantiles_interpolate_between_ranks() -> None:
    assert quantile([1.0, 2.0], 0.5) == 1.5
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9) == pytest.approx(9.1)
    assert quantile([5.0], 0.9) == 5.0
    assert math.isnan(quantile([], 0.5))
    assert spread([3.0, 1.0, 2.0]) == (3, 1.2, 1.5, 2.0, 2.5, 2.8)


def test_an_sla_breach_is_counted_and_is_not_a_stage_change() -> None:
    records = [
        change("s", 1, "warm", T0),
        change("s", 2, "mql", T0 + HOUR),
        change("s", 3, "sql", T0 + 2 * HOUR),
        change("s", 4, "sql", T0 + 6 * HOUR, from_stage="sql", cause="sla_breach"),
        change("s", 5, "accepted", T0 + 8 * HOUR, cause="outcome"),
        change("t", 7, "sql", T0, from_stage="sql", cause="sla_breach"),  # its stay is gone
    ]
    report = compute(history_of(records))
    c = report.overall
    assert c.sla_breaches == {"sql": 1}
    assert c.stays["sql"] == [6 * HOUR]  # the breach did not end the stay
    assert c.entries == {"warm": 1, "mql": 1, "sql": 1, "accepted": 1}
    assert c.funnel[:3] == [1, 1, 1] and c.milestones["MQL → SQL"] == [HOUR]
    n = report.counts
    assert (n.leads, n.changes, n.sla_breaches, n.repeated_changes) == (1, 4, 1, 0)
    assert n.unmatched_breaches == 1
