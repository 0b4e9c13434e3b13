"""The demo: its seed (fixed when asked for, new on every run otherwise), its pacing and
stop, and the outcomes it publishes as a CRM sync would."""

from __future__ import annotations

import asyncio
import io
import math
import os
import re
import signal
import time
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest

from scoring.model import OUTCOMES
from streams.cli import _build_parser, _local_tooling
from streams.core import contract
from streams.core.partitioning import Partitioner
from streams.local import demo as demo_module
from streams.local.crm import CrmSync, OutcomeMessage, plan
from streams.local.demo import MAX_SLEEP_S, DemoRun, Pacing, pick_seed, run_demo
from streams.local.verify import read_topic
from streams.local.workload import DemoTraffic
from streams.settings import Settings
from streams.topics import ensure_topics_async
from tests.integration.harness import Topics, produce


def test_a_given_seed_is_kept() -> None:
    assert pick_seed(5) == 5
    assert pick_seed(0) == 0


def test_runs_without_a_seed_send_new_event_ids() -> None:
    # A local broker keeps its topics between runs: repeated ids would be duplicates.
    assert _build_parser(_local_tooling()).parse_args(["demo"]).seed is None
    first, second = (DemoTraffic(n_leads=50, seed=pick_seed(None), start=0.0) for _ in range(2))
    ids = [{m.value for m in (t.next_message(1.0 + i) for i in range(20))} for t in (first, second)]
    assert ids[0].isdisjoint(ids[1])


# ------------------------------------------------------------- pacing and stop


def test_the_pacing_sends_rate_a_second_the_first_at_once() -> None:
    pacing = Pacing(rate=4, start=100.0)
    assert pacing.due(0, 100.0) == 1
    assert pacing.due(1, 100.2) == 0
    assert pacing.due(1, 100.25) == 1
    assert pacing.due(2, 103.0) == 11  # fell behind: caught up at once
    assert pacing.due(20, 103.0) == 0  # ahead: none, never fewer
    sent = 0
    for tick in range(600):  # a minute in 0.1 s steps
        sent += pacing.due(sent, 100.0 + tick / 10)
    assert sent == 240  # 4 a second over 59.9 s, and the one at 0


def test_the_pacing_sleeps_until_the_next_one_is_due_but_never_long() -> None:
    pacing = Pacing(rate=2, start=100.0)
    assert pacing.wait(1, 100.0) == MAX_SLEEP_S  # due in 0.5 s: a stop is noticed sooner
    assert pacing.wait(1, 100.4) == pytest.approx(0.1)
    assert pacing.wait(1, 101.0) == 0.0  # late


class FakeProducer:
    """Accepts ``room`` sends, then waits for buffer room forever, as with the broker
    gone; ``hangs``: flush and stop never end either."""

    def __init__(self, room: int = 1_000_000, *, hangs: bool = False) -> None:
        self.room, self.hangs = room, hangs
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.flushed = self.stopped = False

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        if len(self.sent) >= self.room:
            await asyncio.Event().wait()
        self.sent.append((topic, value, key))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery

    async def flush(self) -> None:
        if self.hangs:
            await asyncio.Event().wait()
        self.flushed = True

    async def stop(self) -> None:
        if self.hangs:
            await asyncio.Event().wait()
        self.stopped = True


def demo_run(producer: FakeProducer, duration: float, out: io.StringIO) -> DemoRun:
    return DemoRun(
        Settings.from_env({}),
        producer,
        rate=100,
        leads=5,
        duration=duration,
        seed=1,
        out=out,
        outcomes=False,
    )


async def test_a_run_ends_after_its_duration_flushed_with_a_final_summary() -> None:
    producer, out = FakeProducer(), io.StringIO()
    assert await asyncio.wait_for(demo_run(producer, 0.3, out).run(), 10) == 0
    assert producer.flushed and producer.stopped
    assert 1 <= len(producer.sent) <= 100 * 0.3 + 1
    last = out.getvalue().splitlines()[-1]
    assert last.startswith(f"leadstream demo: done, sent {len(producer.sent)} ("), last


async def test_sigterm_ends_a_run_whose_send_waits_forever_within_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo_module, "STOP_GRACE_S", 0.2)
    producer, out = FakeProducer(room=3, hangs=True), io.StringIO()
    run = asyncio.create_task(demo_run(producer, 0, out).run())
    while len(producer.sent) < 3:
        assert not run.done()
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the fourth send is waiting for room
    assert not run.done()
    # Else this SIGTERM would end pytest itself.
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    started = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(run, 10) == 0
    assert time.monotonic() - started < 2 * 0.2 + 1.0  # flush and stop, each bounded
    assert out.getvalue().splitlines()[-1].startswith("leadstream demo: done, sent 3 (")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone


# ------------------------------------------------------------- outcomes (CRM sync)


def sql_change(lead: str, grade: str = "A", to_stage: str = "sql", direction: str = "up") -> dict:
    return {"lead_id": lead, "to_stage": to_stage, "direction": direction, "grade": grade}


def journeys(sync: CrmSync, n: int, grade: str, at: float = 0.0) -> list[OutcomeMessage]:
    for i in range(n):
        sync.observe(sql_change(f"lead-{grade}-{i:04d}", grade), at)
    return sync.due(math.inf)


def test_a_lead_reaching_sql_gets_a_journey_that_follows_a_sales_process() -> None:
    sync = CrmSync(seed=3)
    messages = journeys(sync, 400, "B")
    by_lead: dict[str, list[str]] = {}
    for m in messages:
        by_lead.setdefault(m.lead_id, []).append(m.outcome)
    allowed = re.compile(
        r"rejected( recycled)?"
        r"|accepted( contacted)?( recycled| opportunity_created (won|lost( recycled)?))?"
    )
    assert len(by_lead) == 400
    for lead, outcomes in by_lead.items():
        assert allowed.fullmatch(" ".join(outcomes)), (lead, outcomes)
    seen = {m.outcome for m in messages}
    assert seen == set(OUTCOMES)  # every kind a CRM sync reports


def test_outcome_messages_are_valid_as_a_crm_sync_publishes_them() -> None:
    for m in journeys(CrmSync(seed=4), 200, "A", at=1_790_000_000.0):
        # What the worker checks every lead.outcomes message against (schema and all).
        value = contract.decode_event("outcome", m.value, now=m.due, max_future_skew_s=0)
        assert value["lead_id"] == m.lead_id and value["outcome"] == m.outcome
        assert contract.parse_time(value["occurred_at"]) == pytest.approx(m.due, abs=0.001)
        assert 0 < len(value["event_id"]) <= 128
        if m.outcome in ("rejected", "lost", "recycled"):
            assert value["reason"]
        if m.outcome in ("opportunity_created", "won", "lost"):
            assert value["amount"] > 0 and value["currency"] == "USD"
            assert value["opportunity_id"] == f"opp-{m.lead_id}-1"
    ids = [orjson.loads(m.value)["event_id"] for m in journeys(CrmSync(seed=4), 200, "C")]
    assert len(set(ids)) == len(ids)


def test_a_converts_better_than_c() -> None:
    def rates(grade: str) -> tuple[float, float]:
        outcomes = Counter(m.outcome for m in journeys(CrmSync(seed=5), 1000, grade))
        return outcomes["accepted"] / 1000, outcomes["won"] / 1000

    (a_accepted, a_won), (c_accepted, c_won) = rates("A"), rates("C")
    # 0.85 and 0.45 accepted; 0.85 * 0.65 * 0.55 = 0.30 and 0.45 * 0.25 * 0.25 = 0.03 won.
    assert a_accepted == pytest.approx(0.85, abs=0.04)
    assert c_accepted == pytest.approx(0.45, abs=0.04)
    assert a_won == pytest.approx(0.30, abs=0.04) and c_won == pytest.approx(0.03, abs=0.02)


def test_the_same_stage_changes_give_the_same_outcomes_in_any_order() -> None:
    changes = [sql_change(f"lead-{i:03d}", "ABCD"[i % 4]) for i in range(60)]
    first, second = CrmSync(seed=9), CrmSync(seed=9)
    for c in changes:
        first.observe(c, 100.0)
    for c in reversed(changes):
        second.observe(c, 100.0)
    messages = first.due(math.inf)
    assert messages and sorted(messages) == sorted(second.due(math.inf))
    other = CrmSync(seed=10)  # another run: other ids, or the worker would drop them
    for c in changes:
        other.observe(c, 100.0)
    assert {m.value for m in other.due(math.inf)}.isdisjoint(m.value for m in messages)


def test_outcomes_come_when_due_each_once_after_a_short_delay() -> None:
    sync = CrmSync(seed=2)
    scheduled = sync.observe(sql_change("lead-1"), 1000.0)
    assert scheduled == sync.pending >= 1
    assert sync.due(1000.0 + 1.9) == []  # the decision takes 2 s at least
    nxt = sync.next_due()
    assert nxt is not None and 1002.0 <= nxt <= 1008.0
    first = sync.due(nxt)
    assert first[0].outcome in ("accepted", "rejected")
    rest = sync.due(math.inf)
    assert len(first) + len(rest) == scheduled and sync.pending == 0 and sync.next_due() is None
    assert [m.due for m in first + rest] == sorted(m.due for m in first + rest)


def test_only_a_move_up_into_sql_starts_a_journey_and_one_at_a_time() -> None:
    sync = CrmSync(seed=1, max_journeys=2)
    assert sync.observe(sql_change("x", to_stage="mql"), 0.0) == 0
    assert sync.observe(sql_change("x", direction="down"), 0.0) == 0
    assert sync.observe({"to_stage": "sql", "direction": "up"}, 0.0) == 0
    assert sync.observe("not an object", 0.0) == 0
    assert sync.observe(sql_change("x"), 0.0) > 0
    assert sync.observe(sql_change("x"), 1.0) == 0  # its journey is under way
    sync.due(math.inf)
    assert sync.observe(sql_change("x"), 100.0) > 0  # recycled and qualified again
    sync.due(math.inf)
    assert sync.observe(sql_change("x"), 200.0) == 0  # at most max_journeys
    assert sync.ignored == 2 and sync.journeys == {"x": 2}


def test_the_leads_it_remembers_are_bounded() -> None:
    sync = CrmSync(seed=1, max_leads=3)
    started = [sync.observe(sql_change(f"l{i}"), 0.0) > 0 for i in range(5)]
    assert started == [True, True, True, False, False]
    assert len(sync.journeys) == 3 and sync.ignored == 2


def test_delays_scale() -> None:
    quick = plan(7, "lead-1", "A", delay_scale=0.01)
    slow = plan(7, "lead-1", "A")
    assert [s.outcome for s in quick] == [s.outcome for s in slow]
    assert quick[-1].after == pytest.approx(slow[-1].after / 100, abs=0.01)


@pytest.mark.integration
async def test_the_demo_publishes_a_sql_leads_outcomes_and_stops_on_sigterm(
    kafka_bootstrap: str,
) -> None:
    topics = Topics(f"crm-{uuid.uuid4().hex[:8]}")
    env = {**topics.env, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "LEADSTREAM_PARTITIONS": "2"}
    settings = Settings.from_env(env)
    await ensure_topics_async(kafka_bootstrap, {topics.qualified: 2})
    lead, seed = "lead-crm-1", 11
    change = {**sql_change(lead, "A"), "sequence": 3, "model_id": "m", "model_version": "1"}
    await produce(kafka_bootstrap, [(topics.qualified, lead.encode(), orjson.dumps(change))])
    expected = [s.outcome for s in plan(seed, lead, "A", delay_scale=0.01)]

    out = io.StringIO()
    demo = asyncio.create_task(
        run_demo(
            settings,
            rate=5,
            leads=5,
            duration=0,
            seed=seed,
            out=out,
            outcome_delay_scale=0.01,
            outcomes_since=time.time() - 60,
        )
    )
    deadline = time.monotonic() + 60
    records: list[Any] = []
    while [orjson.loads(r.value)["outcome"] for r in records] != expected:
        assert not demo.done(), out.getvalue()
        assert time.monotonic() < deadline, (expected, records, out.getvalue())
        await asyncio.sleep(0.2)  # polling the topic, with a deadline
        records = await read_topic(kafka_bootstrap, topics.outcomes)
    assert {r.key for r in records} == {lead.encode()}
    assert {r.partition for r in records} == {Partitioner(2).partition_of(lead)}

    os.kill(os.getpid(), signal.SIGTERM)  # run_demo's handler takes it, as in `make run`
    assert await asyncio.wait_for(demo, 15) == 0
    assert out.getvalue().splitlines()[-1].endswith(f"outcomes {len(expected)}")
