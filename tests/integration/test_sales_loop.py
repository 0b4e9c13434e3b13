"""The sales loop on a real broker: outcomes in on ``lead.outcomes``, the funnel's
stage changes and SLA breaches out on ``lead.qualified``, the KPIs on ``/metrics``.

One worker for the module, with the fast integration model plus an SQL stage sales
own with a 3 s follow-up SLA, stages only outcomes enter and recycling.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.core.contract import parse_time
from tests.integration.harness import (
    TopicReader,
    Topics,
    Worker,
    event,
    poll,
    produce_sync,
    to_record,
)

FAST_MODEL = Path(__file__).with_name("fast_model.toml")
SLA_SECONDS = 3.0
SALES = f"""
[[stages]]
name = "sql"
entry = {{ score = 90, grade = "B" }}
exit = {{ score = 70 }}
owner = "sales"
sla = "{SLA_SECONDS:g}s"

[[sales_stages]]
name = "accepted"

[[sales_stages]]
name = "opportunity"

[[sales_stages]]
name = "customer"

[outcomes.accepted]
stage = "accepted"

[outcomes.opportunity_created]
stage = "opportunity"

[outcomes.won]
stage = "customer"

[outcomes.rejected]
stage = "warm"
reset = 0.5

[[rules]]
id = "outcome.opportunity"
description = "Opportunity created"
source = "outcome"
category = "outcome"
points = 20
match = {{ outcome = "opportunity_created" }}
"""


def sales_model_text() -> str:
    text = FAST_MODEL.read_text()
    text = text.replace('profile = "none"\n', 'profile = "none"\noutcome = "none"\n', 1)
    # The SQL stage goes after mql, before the disqualifiers (stages are ordered).
    head, sep, tail = text.partition("[[disqualifiers]]")
    assert sep, "fast_model.toml has disqualifiers"
    return head + SALES + "\n" + sep + tail


@pytest.fixture(scope="module")
def topics() -> Topics:
    return Topics(f"its-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, topics: Topics, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    data = tmp_path_factory.mktemp("sales-loop")
    model = data / "sales_model.toml"
    model.write_text(sales_model_text())
    w = Worker(kafka_bootstrap, topics, data, model_path=model, store="memory://").start()
    try:
        w.wait_ready()
        yield w
    finally:
        assert w.stop() == 0, w.log_tail()


@pytest.fixture(scope="module")
def qualified(kafka_bootstrap: str, topics: Topics) -> TopicReader:
    return TopicReader(kafka_bootstrap, topics.qualified)


def new_lead() -> str:
    return f"lead-{uuid.uuid4().hex[:10]}"


def send(worker: Worker, items: list[tuple[str, dict[str, Any]]]) -> None:
    produce_sync(
        worker.bootstrap, [to_record(getattr(worker.topics, kind), m) for kind, m in items]
    )


def to_sql(lead: str, at: float) -> list[tuple[str, dict[str, Any]]]:
    """Grade A; 2 clicks (20) + webinar (40) + pricing (30) = 90 at one instant: sql."""
    attrs = {"seniority": "director", "company_size": 500}
    return [
        ("profiles", event("profile", lead, f"{lead}-p", at, attributes=attrs)),
        ("email", event("email", lead, f"{lead}-c1", at, action="click", campaign_id="c")),
        ("email", event("email", lead, f"{lead}-c2", at, action="click", campaign_id="c")),
        ("webinar", event("webinar", lead, f"{lead}-w", at, action="attended", webinar_id="w")),
        ("web", event("web", lead, f"{lead}-pr", at, url="https://x.io/pricing")),
    ]


def outcome(lead: str, eid: str, at: float, kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return "outcomes", event("outcome", lead, f"{lead}-{eid}", at, outcome=kind, **fields)


def wait_stage(worker: Worker, lead: str, stage: str) -> dict[str, Any]:
    def view() -> dict[str, Any] | None:
        status, body = worker.get_json(f"/leads/{lead}")
        return body if status == 200 and body["stage"] == stage else None

    return poll(view, timeout=30, what=f"{lead} in {stage}")  # type: ignore[no-any-return]


def changes_of(qualified: TopicReader, lead: str, n: int) -> list[dict[str, Any]]:
    got = qualified.wait_for(
        lambda ms: len([m for m in ms if m["lead_id"] == lead]) >= n,
        timeout=30,
        what=f"{n} messages for {lead}",
    )
    return [m for m in got if m["lead_id"] == lead]


def metric(worker: Worker, name: str, labels: dict[str, str]) -> float:
    status, body = worker.get("/metrics")
    assert status == 200
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_mql_sql_accepted_opportunity_won_with_the_funnel_kpis(
    worker: Worker, qualified: TopicReader
) -> None:
    lead = new_lead()
    at = time.time() - 2
    send(worker, to_sql(lead, at))
    wait_stage(worker, lead, "sql")
    send(worker, [outcome(lead, "acc", at + 0.5, "accepted", owner="rep-1")])
    wait_stage(worker, lead, "accepted")
    send(
        worker,
        [
            outcome(lead, "opp", at + 1.0, "opportunity_created", amount=5000, currency="EUR"),
            outcome(lead, "won", at + 1.5, "won"),
            outcome(lead, "won", at + 1.5, "won"),  # the CRM sync sent it twice
        ],
    )
    wait_stage(worker, lead, "customer")
    changes = qualified.wait_for(
        lambda ms: any(m["lead_id"] == lead and m["to_stage"] == "customer" for m in ms),
        timeout=30,
        what="the won deal published",
    )
    changes = [c for c in changes if c["lead_id"] == lead]
    # The inputs are consumed side by side: how the lead climbed to sql may differ
    # (one jump or stage by stage, on its last web event or on its profile, whichever
    # topic's batch came last); the sales part is the outcomes' order.
    assert changes[-4]["to_stage"] == "sql" and changes[-4]["cause"] in ("event", "profile")
    assert [(c["to_stage"], c["cause"]) for c in changes][-3:] == [
        ("accepted", "outcome"),
        ("opportunity", "outcome"),
        ("customer", "outcome"),
    ]
    assert "sla_breach" not in {c["cause"] for c in changes}  # accepted within 3 s
    labels = {"grade": "A", "model_version": "1"}
    for stage in ("sql", "accepted", "opportunity", "customer"):
        assert metric(worker, "leadstream_stage_entries_total", {"stage": stage, **labels}) >= 1
    spans = "leadstream_time_to_stage_seconds_count"
    assert metric(worker, spans, {"span": "sql_to_accepted"}) >= 1
    assert metric(worker, spans, {"span": "lead_to_opportunity"}) >= 1


def test_rejected_is_recycled_and_qualifies_again(worker: Worker, qualified: TopicReader) -> None:
    lead = new_lead()
    at = time.time() - 2
    send(worker, to_sql(lead, at))
    wait_stage(worker, lead, "sql")
    send(worker, [outcome(lead, "rej", at + 0.5, "rejected", reason="bad timing")])
    recycled = wait_stage(worker, lead, "warm")
    assert recycled["score"] < 60  # half of its points kept: below mql
    send(
        worker,
        [("web", event("web", lead, f"{lead}-pr2", time.time(), url="https://x.io/pricing"))],
    )
    wait_stage(worker, lead, "mql")
    changes = changes_of(qualified, lead, 1)
    tail = [(c["from_stage"], c["to_stage"], c["cause"]) for c in changes][-2:]
    assert tail == [("sql", "warm", "outcome"), ("warm", "mql", "event")]


def test_an_sla_breach_is_published_once_on_time(worker: Worker, qualified: TopicReader) -> None:
    lead = new_lead()
    at = time.time() - 1
    send(worker, to_sql(lead, at))
    wait_stage(worker, lead, "sql")
    got = qualified.wait_for(
        lambda ms: any(m["lead_id"] == lead and m["cause"] == "sla_breach" for m in ms),
        timeout=30,
        what="the SLA breach",
    )
    [breach] = [m for m in got if m["lead_id"] == lead and m["cause"] == "sla_breach"]
    assert (breach["from_stage"], breach["to_stage"], breach["direction"]) == ("sql", "sql", "none")
    due = parse_time(breach["changed_at"])
    assert due == pytest.approx(at + SLA_SECONDS, abs=0.01)
    assert 0 <= parse_time(breach["emitted_at"]) - due < 2.0
    assert metric(worker, "leadstream_sla_breaches_total", {"stage": "sql"}) >= 1
    # Once: a later tick or event publishes no second breach.
    send(worker, [("web", event("web", lead, f"{lead}-b", time.time(), url="https://x.io/blog"))])
    poll(lambda: lead_events_seen(worker, lead) >= 6, timeout=30, what="the later event applied")
    after = [m for m in qualified.values() if m["lead_id"] == lead and m["cause"] == "sla_breach"]
    assert len(after) == 1


def lead_events_seen(worker: Worker, lead: str) -> int:
    status, body = worker.get_json(f"/leads/{lead}")
    return int(body["events_seen"]) if status == 200 else 0
