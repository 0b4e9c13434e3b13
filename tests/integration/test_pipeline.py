"""The product as users meet it: events in, ``lead.qualified`` out, on a real broker.

One worker per module (its own app id and topics); each test uses its own leads.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.core.partitioning import Partitioner
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
#: Web half-life of the fast model, seconds.
WEB_HALF_LIFE = 4.0


@pytest.fixture(scope="module")
def topics() -> Topics:
    return Topics(f"it-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, topics: Topics, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    w = Worker(
        kafka_bootstrap,
        topics,
        tmp_path_factory.mktemp("worker"),
        model_path=FAST_MODEL,
        store="memory://",
    ).start()
    try:
        w.wait_ready()
        yield w
    finally:
        assert w.stop() == 0, w.log_tail()


@pytest.fixture(scope="module")
def qualified(kafka_bootstrap: str, topics: Topics) -> TopicReader:
    return TopicReader(kafka_bootstrap, topics.qualified)


@pytest.fixture(scope="module")
def minute_windows(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, TopicReader]]:
    """A worker that writes its lead states a minute apart: decay changes due sooner
    must not wait for the write. It runs on asyncio's own loop, the others on uvloop
    (the default)."""
    topics = Topics(f"itm-{uuid.uuid4().hex[:8]}")
    w = Worker(
        kafka_bootstrap,
        topics,
        tmp_path_factory.mktemp("minute-windows"),
        model_path=FAST_MODEL,
        store="memory://",
        extra_env={"LEADSTREAM_FLUSH_INTERVAL_SECONDS": "60", "LEADSTREAM_EVENT_LOOP": "asyncio"},
    ).start()
    try:
        w.wait_ready()
        yield w, TopicReader(kafka_bootstrap, topics.qualified)
    finally:
        assert w.stop() == 0, w.log_tail()


def new_lead() -> str:
    return f"lead-{uuid.uuid4().hex[:10]}"


def lead_view(worker: Worker, lead_id: str) -> dict[str, Any] | None:
    status, body = worker.get_json(f"/leads/{lead_id}")
    return body if status == 200 else None


def wait_lead(worker: Worker, lead_id: str, check: Any, what: str) -> dict[str, Any]:
    return poll(  # type: ignore[no-any-return]
        lambda: (v := lead_view(worker, lead_id)) is not None and check(v) and v,
        timeout=30,
        what=what,
    )


def for_lead(messages: list[dict[str, Any]], lead_id: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["lead_id"] == lead_id]


def good_fit_profile(lead: str, eid: str, at: float) -> dict[str, Any]:
    return event(
        "profile",
        lead,
        eid,
        at,
        attributes={"seniority": "director", "company_size": 500, "decision_role": "user"},
    )


def engaging_events(lead: str, at: float) -> list[tuple[str, dict[str, Any]]]:
    """Profile (grade A), two clicks (20: warm), webinar (60: MQL), a capped click."""
    return [
        ("profiles", good_fit_profile(lead, f"{lead}-p", at)),
        ("email", event("email", lead, f"{lead}-c1", at + 1, action="click", campaign_id="c")),
        ("email", event("email", lead, f"{lead}-c2", at + 2, action="click", campaign_id="c")),
        (
            "webinar",
            event("webinar", lead, f"{lead}-w", at + 3, action="attended", webinar_id="w1"),
        ),
        ("email", event("email", lead, f"{lead}-c3", at + 4, action="click", campaign_id="c")),
    ]


def send(worker: Worker, items: list[tuple[str, dict[str, Any]]], **kw: Any) -> None:
    produce_sync(
        worker.bootstrap,
        [to_record(getattr(worker.topics, kind), msg, **kw) for kind, msg in items],
    )


def test_each_stage_change_is_published_exactly_once(
    worker: Worker, qualified: TopicReader
) -> None:
    lead = new_lead()
    send(worker, engaging_events(lead, time.time() - 60))

    view = wait_lead(worker, lead, lambda v: v["stage"] == "mql", "lead to reach mql")
    assert view["score"] == pytest.approx(60.0)  # third click is over the cap of 2/day
    assert view["grade"] == "A"
    got = qualified.wait_for(lambda ms: len(for_lead(ms, lead)) >= 2, timeout=30, what="2 changes")
    changes = for_lead(got, lead)
    # The four input topics are consumed side by side: which event tipped each change
    # depends on how they interleave, the path does not.
    assert [(c["from_stage"], c["to_stage"]) for c in changes] == [
        ("cold", "warm"),
        ("warm", "mql"),
    ]
    triggers = [c["trigger_event_id"] for c in changes]
    assert len(set(triggers)) == 2
    assert set(triggers) <= {m["event_id"] for _, m in engaging_events(lead, 0)}
    assert changes[1]["direction"] == "up"
    assert "webinar.attended" in {r["rule_id"] for r in changes[1]["reasons"]}
    assert changes[1]["model_id"] == "integration-fast"
    assert len({c["event_id"] for c in changes}) == 2


def test_shuffled_events_give_the_same_final_state(worker: Worker) -> None:
    in_order, shuffled = new_lead(), new_lead()
    at = time.time() - 600
    items = engaging_events(in_order, at)
    mixed = engaging_events(shuffled, at)
    random.Random(4).shuffle(mixed)
    assert [m["event_id"][-2:] for _, m in mixed] != [m["event_id"][-2:] for _, m in items]
    send(worker, items)
    send(worker, mixed)

    a = wait_lead(worker, in_order, lambda v: v["stage"] == "mql", "in-order lead")
    b = wait_lead(worker, shuffled, lambda v: v["stage"] == "mql", "shuffled lead")
    for key in ("stage", "grade", "bant", "fit_score"):
        assert a[key] == b[key], key
    assert b["score"] == pytest.approx(a["score"], rel=1e-9)


def test_duplicate_event_ids_count_once(worker: Worker) -> None:
    lead = new_lead()
    at = time.time() - 30
    webinar = event("webinar", lead, f"{lead}-w", at, action="attended", webinar_id="w1")
    send(worker, [("webinar", webinar)] * 3)
    # A later event of the same lead (same partition, so processed after the copies)
    # whose effect is visible: once the fit shows, all three copies were applied.
    send(worker, [("profiles", good_fit_profile(lead, f"{lead}-p", at + 1))])
    view = wait_lead(worker, lead, lambda v: v["fit_score"] > 0, "marker applied")
    assert view["score"] == pytest.approx(40.0)


@pytest.mark.parametrize(
    ("windows", "loop"), [("default windows", "uvloop"), ("minute windows", "asyncio")]
)
def test_decay_downgrade_is_published_on_time(
    windows: str, loop: str, request: pytest.FixtureRequest
) -> None:
    if windows == "minute windows":
        worker, qualified = request.getfixturevalue("minute_windows")
    else:
        worker, qualified = request.getfixturevalue("worker"), request.getfixturevalue("qualified")
    assert worker.log_path is not None
    assert f"event loop {loop}" in worker.log_path.read_text(errors="replace")
    lead = new_lead()
    at = time.time()
    send(worker, [("web", event("web", lead, f"{lead}-v", at, url="https://x.io/pricing"))])
    # 30 points, half-life 4 s: below the warm exit (10) after 4 * log2(30 / 10) s.
    crossing = at + WEB_HALF_LIFE * math.log2(30 / 10)
    got = qualified.wait_for(
        lambda ms: any(m["to_stage"] == "cold" for m in for_lead(ms, lead)),
        timeout=30,
        what="decay downgrade",
    )
    changes = for_lead(got, lead)
    assert [(c["from_stage"], c["to_stage"], c["cause"]) for c in changes] == [
        ("cold", "warm", "event"),
        ("warm", "cold", "decay"),
    ]
    down = changes[1]
    changed_at, emitted_at = (_epoch(down[k]) for k in ("changed_at", "emitted_at"))
    assert changed_at == pytest.approx(crossing, abs=0.002)
    assert 0 <= emitted_at - changed_at <= 2.0
    assert down["direction"] == "down"
    assert down["score"] == pytest.approx(10.0, abs=0.01)


def test_bad_input_goes_to_the_dead_letter_topic_and_processing_goes_on(
    worker: Worker, kafka_bootstrap: str
) -> None:
    t = worker.topics
    lead = new_lead()
    now = time.time()
    bad: list[tuple[str, bytes | None, bytes, str]] = [
        (t.web, b"k1", b"\xff{not json", "invalid_json"),
        (t.email, b"k2", b"[1, 2, 3]", "not_an_object"),
        (
            t.web,
            b"k3",
            orjson.dumps({"event_id": "e", "occurred_at": 1, "url": "u"}),
            "schema_violation",
        ),
        (
            t.email,
            b"k4",
            orjson.dumps(event("email", lead, "e4", now, action="forward", campaign_id="c")),
            "unknown_event_type",
        ),
        (
            t.webinar,
            b"k5",
            orjson.dumps(
                event("webinar", lead, "e5", now + 86400 * 365, action="attended", webinar_id="w")
            ),
            "bad_timestamp",
        ),
    ]
    produce_sync(kafka_bootstrap, [(topic, key, value) for topic, key, value, _ in bad])
    send(
        worker,
        [("webinar", event("webinar", lead, f"{lead}-ok", now, action="attended", webinar_id="w"))],
    )

    dlq = TopicReader(kafka_bootstrap, t.dlq)
    records = poll(
        lambda: len(r := dlq.records()) >= len(bad) and r, timeout=30, what="dead letters"
    )
    by_key = {r.key: r for r in records}
    for topic, key, value, reason in bad:
        record = by_key[key]
        headers = {k: v.decode() for k, v in record.headers}
        assert record.value == value  # original bytes, untouched
        assert headers["leadstream.dlq.reason"] == reason
        assert headers["leadstream.dlq.topic"] == topic
        assert int(headers["leadstream.dlq.offset"]) >= 0
    assert "forward" not in {h for r in records for _, h in r.headers if h}  # no values echoed
    view = wait_lead(worker, lead, lambda v: v["score"] > 0, "valid event after bad ones")
    assert view["score"] == pytest.approx(40.0)
    metrics = worker.get("/metrics")[1].decode()
    assert f'leadstream_dlq_total{{reason="invalid_json",topic="{t.web}"}} 1.0' in metrics


def test_events_keyed_otherwise_are_repartitioned_by_lead(worker: Worker) -> None:
    lead = new_lead()
    at = time.time() - 10
    items = [
        (
            "webinar",
            event("webinar", lead, f"{lead}-w{i}", at + i, action="attended", webinar_id=f"w{i}"),
        )
        for i in range(4)
    ]
    # No key (the producer picks a partition, maybe the right one) and a key that
    # surely hashes elsewhere: at least those two must go round again.
    partition_of = Partitioner(worker.partitions).partition_of
    other = next(
        k for k in (f"other-{i}" for i in range(100)) if partition_of(k) != partition_of(lead)
    )
    send(worker, items[:2], key=None)
    send(worker, items[2:], key=other)
    view = wait_lead(worker, lead, lambda v: v["score"] >= 160, "rerouted events scored")
    assert view["score"] == pytest.approx(160.0)
    rerouted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in worker.get("/metrics")[1].decode().splitlines()
        if line.startswith("leadstream_events_total{") and 'outcome="rerouted"' in line
    )
    assert rerouted >= 2


def test_query_api_and_metrics(worker: Worker) -> None:
    status, body = worker.get_json("/leads/lead-that-never-was")
    assert status == 404
    assert body["error"] == "unknown lead"
    assert worker.get("/health")[0] == 200
    assert worker.get("/ready")[0] == 200

    lead = new_lead()
    send(worker, engaging_events(lead, time.time() - 5))
    view = wait_lead(worker, lead, lambda v: v["stage"] == "mql", "lead in mql")
    assert view["lead_id"] == lead
    assert view["breakdown"]["email"] == pytest.approx(20.0)
    assert view["breakdown"]["webinar"] == pytest.approx(40.0)
    assert view["bant"]["authority"] is False
    assert {r["rule_id"] for r in view["reasons"]} >= {"webinar.attended", "email.click"}

    status, raw = worker.get("/metrics")
    text = raw.decode()
    assert status == 200
    scored = _sample(
        text, "leadstream_events_total", f'outcome="scored",topic="{worker.topics.email}"'
    )
    assert scored >= 3
    assert (
        _sample(
            text, "leadstream_transitions_total", 'cause="event",from_stage="warm",to_stage="mql"'
        )
        >= 1
    )
    assert "leadstream_batch_duration_seconds_bucket" in text
    leads = [ln for ln in text.splitlines() if ln.startswith("leadstream_leads ")]
    assert leads and float(leads[0].split()[1]) >= 1  # counts leads created since start


def _sample(text: str, name: str, labels: str) -> float:
    prefix = f"{name}{{{labels}}} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    raise AssertionError(f"no sample {prefix!r} in metrics")


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def gauge(worker: Worker, name: str) -> float:
    body = worker.get("/metrics")[1].decode()
    line = next(x for x in body.splitlines() if x.startswith(name + " "))
    return float(line.split()[1])


def test_states_dropped_from_memory_are_read_back_from_the_store(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """With room for one decoded state, a lead's second event must find its first
    event's state in RocksDB: scores add up instead of starting again."""
    w = Worker(
        kafka_bootstrap,
        Topics(f"cch-{uuid.uuid4().hex[:8]}"),
        tmp_path,
        model_path=FAST_MODEL,
        extra_env={
            "LEADSTREAM_STATE_CACHE_LEADS": "1",
            "LEADSTREAM_FLUSH_INTERVAL_SECONDS": "0.2",
        },
    ).start()
    try:
        w.wait_ready()
        lead, others = new_lead(), [new_lead() for _ in range(3)]
        at = time.time() - 30

        def webinar(x: str, n: int) -> tuple[str, dict[str, Any]]:
            return (
                "webinar",
                event("webinar", x, f"{x}-w{n}", at + n, action="attended", webinar_id=f"w{n}"),
            )

        def written(n: int) -> None:
            poll(
                lambda: gauge(w, "leadstream_state_writes_total") >= n,
                timeout=30,
                what=f"{n} states written",
            )

        send(w, [webinar(lead, 1)])
        written(1)
        assert gauge(w, "leadstream_state_cache_leads") == 1  # within the limit: kept
        send(w, [webinar(x, 1) for x in others])
        for x in others:
            wait_lead(w, x, lambda v: v["events_seen"] == 1, "the other leads' events")
        # The first write past the limit dropped every written state, the lead's
        # among them; one more may be held if the others came in two windows.
        written(4)
        assert gauge(w, "leadstream_state_cache_leads") <= 1

        send(w, [webinar(lead, 2), ("profiles", good_fit_profile(lead, f"{lead}-p", at + 3))])
        view = wait_lead(w, lead, lambda v: v["fit_score"] > 0, "the profile after the event")
        assert view["events_seen"] == 3
        assert view["score"] == pytest.approx(80.0)
    finally:
        assert w.stop() == 0, w.log_tail()
