"""The per-batch path without Kafka: routing, outcomes and what leaves the batch."""

from __future__ import annotations

import hashlib
import itertools
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from scoring import LeadState, load_default_model, next_change_at
from streams.core.partitioning import Partitioner
from streams.core.pipeline import TICK_KIND, Message, Pipeline
from streams.metrics import Metrics
from tests.core.poison import half_done_poison

PARTITIONS = 4
NOW = time.time()


def pipeline() -> Pipeline:
    return Pipeline(
        model=load_default_model(),
        metrics=Metrics.create(),
        partitioner=Partitioner(PARTITIONS),
        max_future_skew_s=300,
    )


_offsets = itertools.count()


def msg(kind: str, lead: str, eid: str, *, partition: int | None = None, **fields: Any) -> Message:
    """A record at the next offset (every record here is read once)."""
    body = {"event_id": eid, "lead_id": lead, "occurred_at": int((NOW - 5) * 1000), **fields}
    p = Partitioner(PARTITIONS).partition_of(lead) if partition is None else partition
    return Message(f"t.{kind}", p, next(_offsets), lead.encode(), orjson.dumps(body), kind)


def count(p: Pipeline, topic: str, outcome: str) -> float:
    value = p.metrics.registry.get_sample_value(
        "leadstream_events_total", {"topic": topic, "outcome": outcome}
    )
    return value or 0.0


def test_scores_and_counts_duplicates_once() -> None:
    p = pipeline()
    demo = msg("web", "lead-1", "e1", url="https://x.io/demo")
    again = msg("web", "lead-1", "e1", url="https://x.io/demo")  # a producer's retry
    result = p.process([demo, again], now=NOW, load=lambda lead, i: None)
    state = result.touched["lead-1"][0]
    assert state.events_seen == 1
    assert count(p, "t.web", "scored") == 1
    assert count(p, "t.web", "duplicate") == 1


def test_state_is_loaded_once_per_lead_per_batch() -> None:
    p = pipeline()
    loads: list[str] = []

    def load(lead: str, index: int) -> LeadState | None:
        loads.append(lead)
        return None

    batch = [msg("web", "lead-1", f"e{i}", url="https://x.io/blog") for i in range(5)]
    result = p.process(batch, now=NOW, load=load)
    assert loads == ["lead-1"]
    assert result.touched["lead-1"][2] == 4  # index of the last message touching it


def test_wrong_partition_is_rerouted_keyed_by_lead() -> None:
    p = pipeline()
    right = Partitioner(PARTITIONS).partition_of("lead-2")
    m = msg(
        "email", "lead-2", "e1", partition=(right + 1) % PARTITIONS, action="click", campaign_id="c"
    )
    result = p.process([m], now=NOW, load=lambda lead, i: None)
    assert result.touched == {}
    origin = f"t.email:{m.partition}:{m.offset}".encode()
    headers = [("leadstream.kind", b"email"), ("leadstream.origin", origin)]
    assert result.reroute == [(b"lead-2", m.value, headers)]
    assert count(p, "t.email", "rerouted") == 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [(b"{", "invalid_json"), (b'"x"', "not_an_object"), (b"{}", "schema_violation")],
)
def test_bad_input_becomes_a_dead_letter(value: bytes, reason: str) -> None:
    p = pipeline()
    bad = Message("t.web", 1, 42, b"k", value, "web")
    result = p.process([bad], now=NOW, load=lambda lead, i: None)
    (key, raw, headers) = result.dead[0]
    h = dict(headers)
    assert (key, raw) == (b"k", value)
    assert h["leadstream.dlq.reason"] == reason.encode()
    assert h["leadstream.dlq.offset"] == b"42"
    dead = p.metrics.registry.get_sample_value(
        "leadstream_dlq_total", {"topic": "t.web", "reason": reason}
    )
    assert dead == 1


def test_transitions_become_lead_qualified_messages_and_touched_states() -> None:
    p = pipeline()
    batch = [
        msg("web", "lead-3", "e1", url="https://x.io/demo"),
        msg("web", "lead-3", "e2", url="https://x.io/pricing"),
    ]
    result = p.process(batch, now=NOW, load=lambda lead, i: None)
    assert result.qualified, "demo + pricing should leave cold"
    key, value = result.qualified[0]
    out = orjson.loads(value)
    assert key == b"lead-3"
    assert (out["from_stage"], out["lead_id"]) == ("cold", "lead-3")
    state, partition, _index = result.touched["lead-3"]
    assert partition == Partitioner(PARTITIONS).partition_of("lead-3")
    due = next_change_at(state, p.model)
    assert due is not None and due > NOW  # warm decays back to cold one day


def test_tick_for_unknown_lead_is_ignored_and_known_lead_advances() -> None:
    p = pipeline()
    first = p.process(
        [msg("web", "lead-4", "e1", url="https://x.io/demo")], now=NOW, load=lambda lead, i: None
    )
    state = first.touched["lead-4"][0]
    due = next_change_at(state, p.model)
    assert due is not None
    tick = Message("ticks", 0, 0, b"lead-4", b"", TICK_KIND)
    later = p.process([tick], now=due + 1, load=lambda lead, i: state)
    assert [orjson.loads(v)["cause"] for _, v in later.qualified] == ["decay"]
    nothing = p.process([tick], now=due + 1, load=lambda lead, i: None)
    assert nothing.touched == {}


def test_a_record_at_or_below_the_applied_position_is_a_replay() -> None:
    p = pipeline()
    first = msg("web", "lead-1", "e1", url="https://x.io/pricing")
    state = p.process([first], now=NOW, load=lambda lead, i: None).touched["lead-1"][0]
    assert state.applied == {f"t.web:{first.partition}": first.offset}
    later = msg("web", "lead-1", "e2", url="https://x.io/blog")
    # After a crash the partition is read again from an older offset: `first` again.
    result = p.process([first, later], now=NOW, load=lambda lead, i: state)
    assert result.touched["lead-1"][0].events_seen == 2
    assert result.touched["lead-1"][0].applied == {f"t.web:{first.partition}": later.offset}
    assert count(p, "t.web", "replayed") == 1


def test_a_rerouted_event_is_deduplicated_by_where_it_was_first_read() -> None:
    p = pipeline()
    home = Partitioner(PARTITIONS).partition_of("lead-1")
    body = orjson.dumps(
        {
            "event_id": "e1",
            "lead_id": "lead-1",
            "occurred_at": int(NOW * 1000) - 5000,
            "url": "https://x.io/pricing",
        }
    )
    # Rerouted twice: its origin (t.web, partition 3, offset 7) was read again after a
    # crash, so the repartition topic holds it at two offsets.
    copies = [Message("t.repart", home, at, b"lead-1", body, "web", "t.web:3", 7) for at in (0, 1)]
    result = p.process(copies, now=NOW, load=lambda lead, i: None)
    assert result.touched["lead-1"][0].events_seen == 1
    assert result.touched["lead-1"][0].applied == {"t.web:3": 7}
    assert count(p, "t.repart", "replayed") == 1


def test_a_tick_read_again_changes_nothing() -> None:
    p = pipeline()
    state = p.process(
        [msg("web", "lead-1", "e1", url="https://x.io/pricing")], now=NOW, load=lambda lead, i: None
    ).touched["lead-1"][0]
    home = Partitioner(PARTITIONS).partition_of("lead-1")
    tick = Message("t.ticks", home, 5, b"lead-1", b"0", TICK_KIND)
    once = p.process([tick], now=NOW + 1, load=lambda lead, i: state).touched["lead-1"][0]
    assert once.applied[f"t.ticks:{home}"] == 5
    result = p.process([tick], now=NOW + 2, load=lambda lead, i: once)
    assert result.touched == {} and count(p, "t.ticks", "replayed") == 1


# ------------------------------------------------------------------ poison input


def dead(result: Any) -> list[tuple[bytes | None, str]]:
    """(key, reason) of each dead letter."""
    return [
        (key, dict(headers)["leadstream.dlq.reason"].decode()) for key, _, headers in result.dead
    ]


def test_an_error_while_scoring_one_record_dead_letters_it_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = pipeline()
    half_done_poison(monkeypatch)
    batch = [
        msg("web", "lead-1", "e1", url="https://x.io/pricing"),
        msg("web", "lead-2", "poison", url="https://x.io/pricing"),
        msg("web", "lead-3", "e3", url="https://x.io/pricing"),
    ]
    result = p.process(batch, now=NOW, load=lambda lead, i: None)
    assert dead(result) == [(b"lead-2", "processing_error")]
    assert sorted(result.touched) == ["lead-1", "lead-3"]  # lead-2 keeps its stored state
    [(_, _, headers)] = result.dead
    assert dict(headers)["leadstream.dlq.error"] == b"RecursionError"


def test_an_error_after_a_lead_changed_in_the_batch_drops_the_change_and_names_its_offsets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = pipeline()
    half_done_poison(monkeypatch)
    first = msg("web", "lead-1", "e1", url="https://x.io/pricing")
    batch = [first, msg("web", "lead-1", "poison", url="https://x.io/blog")]
    result = p.process(batch, now=NOW, load=lambda lead, i: None)
    assert result.touched == {}  # the lead keeps what load gave: nothing
    assert dead(result) == [(b"lead-1", "processing_error")] * 2
    lost = orjson.loads(result.dead[1][1])
    assert lost == {
        "lead_id": "lead-1",
        "source": f"t.web:{first.partition}",
        "first_offset": 0,
        "last_offset": first.offset,
    }
    assert count(p, "t.web", "scored") == 1  # counted as scored, then dead-lettered
    dlq = p.metrics.registry.get_sample_value(
        "leadstream_dlq_total", {"topic": "t.web", "reason": "processing_error"}
    )
    assert dlq is not None and dlq == 2


def test_malformed_internal_records_are_dead_letters() -> None:
    p = pipeline()
    tick = Message("t.ticks", 0, 1, b"\xff\xfe", b"0", TICK_KIND)
    rerouted = Message("t.repart", 0, 2, b"lead-1", b"{}", "unknown")
    result = p.process([tick, rerouted], now=NOW, load=lambda lead, i: None)
    assert dead(result) == [
        (b"\xff\xfe", "invalid_internal_record"),
        (b"lead-1", "invalid_internal_record"),
    ]


def test_the_schemas_bound_what_a_profile_can_carry() -> None:
    p = pipeline()
    # Nested 300 deep: more than orjson can encode, so a state holding it could never
    # be written (written by hand: orjson will not produce it either).
    deep = b'{"a":' * 300 + b'"x"' + b"}" * 300
    shallow = msg("profile", "lead-1", "p1", attributes={"deep": "<deep>"})
    too_deep = shallow._replace(value=shallow.value.replace(b'"<deep>"', deep))
    too_many = msg("profile", "lead-1", "p2", attributes={f"a{i}": 1 for i in range(60_000)})
    too_long = msg("profile", "lead-1", "p3", attributes={"note": "x" * 400_000})
    result = p.process([too_deep, too_many, too_long], now=NOW, load=lambda lead, i: None)
    assert [reason for _, reason in dead(result)] == ["schema_violation"] * 3
    assert result.touched == {}


def test_a_profile_past_the_states_attribute_bound_is_a_dead_letter() -> None:
    p = pipeline()
    batches = [
        msg("profile", "lead-1", f"p{n}", attributes={f"a{n}_{i}": i for i in range(100)})
        for n in range(3)
    ]
    result = p.process(batches, now=NOW, load=lambda lead, i: None)
    assert dead(result) == [(b"lead-1", "state_limit")]
    assert len(result.touched["lead-1"][0].profile) == 200


def test_a_dead_letter_too_large_for_the_topic_is_truncated_with_its_digest() -> None:
    p = pipeline()
    huge = Message("t.web", 0, 3, b"k", b"{" + b" " * 1_000_000, "web")
    result = p.process([huge], now=NOW, load=lambda lead, i: None)
    [(_, value, headers)] = result.dead
    h = dict(headers)
    assert len(value) == p.max_dead_letter_bytes and value == huge.value[: len(value)]
    assert h["leadstream.dlq.original_size"] == str(len(huge.value)).encode()
    assert h["leadstream.dlq.sha256"] == hashlib.sha256(huge.value).hexdigest().encode()
    assert h["leadstream.dlq.reason"] == b"invalid_json"


def bots(p: Pipeline, topic: str, reason: str) -> float:
    value = p.metrics.registry.get_sample_value(
        "leadstream_bots_filtered_total", {"topic": topic, "reason": reason}
    )
    return value or 0.0


GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


def test_a_known_crawlers_visit_is_counted_as_a_bot_and_never_scored() -> None:
    p = pipeline()
    batch = [
        msg("web", "lead-b", "e1", url="https://x.io/demo", user_agent=GOOGLEBOT),
        msg("web", "lead-b", "e2", url="https://x.io/pricing", is_bot=True),
        msg("web", "lead-b", "e3", url="https://x.io/pricing", user_agent=FIREFOX),
    ]
    result = p.process(batch, now=NOW, load=lambda lead, i: None)
    state = result.touched["lead-b"][0]
    assert list(state.rules) == ["web-pricing"] and state.bots_filtered == 2
    assert count(p, "t.web", "bot") == 2 and count(p, "t.web", "scored") == 1
    assert bots(p, "t.web", "user_agent") == 1 and bots(p, "t.web", "tracker_flag") == 1
    assert [e[1] for e in state.history] == ["bot", "bot", "event"]


def test_scanner_clicks_are_counted_with_the_ones_taken_back() -> None:
    p = pipeline()
    t = int((NOW - 5) * 1000)
    batch = [
        msg(
            "email",
            "lead-s",
            f"c{i}",
            action="click",
            campaign_id="news",
            link=f"/l{i}",
            occurred_at=t + 300 * i,
        )
        for i in range(3)
    ]
    p.process(batch, now=NOW, load=lambda lead, i: None)
    # The first click was scored, then taken back when the second showed the pattern.
    assert count(p, "t.email", "scored") == 1 and count(p, "t.email", "bot") == 2
    assert bots(p, "t.email", "email_click_gap") == 3


def test_a_model_without_known_user_agents_marks_nothing() -> None:
    from scoring import load_model_text

    text = (Path(__file__).parents[2] / "scoring" / "default_model.toml").read_text()
    model = load_model_text(text.replace("known_user_agents = true", "known_user_agents = false"))
    p = Pipeline(
        model=model,
        metrics=Metrics.create(),
        partitioner=Partitioner(PARTITIONS),
        max_future_skew_s=300,
    )
    assert p.marker is None
    batch = [msg("web", "lead-u", "e1", url="https://x.io/demo", user_agent=GOOGLEBOT)]
    p.process(batch, now=NOW, load=lambda lead, i: None)
    assert count(p, "t.web", "scored") == 1


# ----------------------------------------------------------------- the sales loop


def sales_pipeline() -> Pipeline:
    from tests.scoring.models import SALES_MODEL, small_model

    return Pipeline(
        model=small_model(SALES_MODEL),
        metrics=Metrics.create(),
        partitioner=Partitioner(PARTITIONS),
        max_future_skew_s=300,
    )


def at(seconds_ago: float) -> int:
    return int((NOW - seconds_ago) * 1000)


def to_sql(lead: str) -> list[Message]:
    """Messages taking ``lead`` to sql in SALES_MODEL (engaged, grade B, 2 BANT)."""
    attrs = {"seniority": "vp", "budget_status": "planned", "decision_role": "decision_maker"}
    return [
        msg("profile", lead, f"{lead}-p", attributes=attrs, occurred_at=at(10)),
        msg("web", lead, f"{lead}-w1", url="https://x.io/pricing", occurred_at=at(10)),
        msg("web", lead, f"{lead}-w2", url="https://x.io/pricing", occurred_at=at(10)),
        msg("webinar", lead, f"{lead}-wb", action="attended", webinar_id="w", occurred_at=at(10)),
    ]


def sample(p: Pipeline, name: str, labels: dict[str, str]) -> float:
    return p.metrics.registry.get_sample_value(name, labels) or 0.0


def test_outcomes_move_the_lead_and_feed_the_funnel_kpis() -> None:
    p = sales_pipeline()
    lead = "lead-s1"
    outcomes = [
        msg("outcome", lead, "o1", outcome="accepted", owner="rep-1", occurred_at=at(6)),
        msg("outcome", lead, "o2", outcome="opportunity_created", amount=10, occurred_at=at(4)),
        msg("outcome", lead, "o1", outcome="accepted", occurred_at=at(6)),  # a CRM retry
    ]
    result = p.process([*to_sql(lead), *outcomes], now=NOW, load=lambda lead, i: None)
    changes = [orjson.loads(v) for _, v in result.qualified]
    assert [(c["to_stage"], c["cause"]) for c in changes] == [
        ("warm", "event"),
        ("mql", "event"),
        ("sql", "event"),
        ("accepted", "outcome"),
        ("opportunity", "outcome"),
    ]
    assert count(p, "t.outcome", "scored") == 2 and count(p, "t.outcome", "duplicate") == 1
    entries = "leadstream_stage_entries_total"
    for stage in ("sql", "accepted", "opportunity"):
        assert sample(p, entries, {"stage": stage, "grade": "B", "model_version": "7"}) == 1
    spans = "leadstream_time_to_stage_seconds"
    assert sample(p, spans + "_count", {"span": "sql_to_accepted"}) == 1
    assert sample(p, spans + "_sum", {"span": "sql_to_accepted"}) == pytest.approx(4.0, abs=0.01)
    assert sample(p, spans + "_sum", {"span": "lead_to_opportunity"}) == pytest.approx(
        6.0, abs=0.01
    )
    assert sample(p, spans + "_count", {"span": "mql_to_sql"}) == 1


def test_a_lead_that_skips_mql_completes_mql_to_sql_in_no_time() -> None:
    p = sales_pipeline()
    profile, *engagement = to_sql("lead-s3")
    result = p.process([*engagement, profile], now=NOW, load=lambda lead, i: None)
    changes = [orjson.loads(v) for _, v in result.qualified]
    assert [(c["from_stage"], c["to_stage"]) for c in changes] == [
        ("cold", "warm"),
        ("warm", "sql"),
    ]
    spans = "leadstream_time_to_stage_seconds"
    assert sample(p, spans + "_count", {"span": "mql_to_sql"}) == 1
    assert sample(p, spans + "_sum", {"span": "mql_to_sql"}) == 0.0
    assert sample(p, spans + "_count", {"span": "sql_to_accepted"}) == 0


def test_an_sla_breach_is_published_by_a_tick_and_counted_not_as_a_stage_change() -> None:
    p = sales_pipeline()
    lead = "lead-s2"
    state = p.process(to_sql(lead), now=NOW, load=lambda lead, i: None).touched[lead][0]
    due = next_change_at(state, p.model)
    assert due == pytest.approx(NOW - 10 + 100, abs=0.01)  # the SLA: 100 s in sql
    tick = Message(
        "ticks", Partitioner(PARTITIONS).partition_of(lead), 0, lead.encode(), b"", TICK_KIND
    )
    later = p.process([tick], now=due + 1, load=lambda lead, i: state)
    [breach] = [orjson.loads(v) for _, v in later.qualified]
    assert (breach["from_stage"], breach["to_stage"], breach["cause"]) == (
        "sql",
        "sql",
        "sla_breach",
    )
    assert breach["direction"] == "none"
    assert sample(p, "leadstream_sla_breaches_total", {"stage": "sql"}) == 1
    labels = {"from_stage": "sql", "to_stage": "sql", "cause": "sla_breach"}
    assert sample(p, "leadstream_transitions_total", labels) == 0


def test_an_unknown_outcome_is_a_dead_letter() -> None:
    p = sales_pipeline()
    bad = msg("outcome", "lead-s3", "o9", outcome="ghosted")
    result = p.process([bad], now=NOW, load=lambda lead, i: None)
    [(_, _, headers)] = result.dead
    assert dict(headers)["leadstream.dlq.reason"] == b"unknown_event_type"
