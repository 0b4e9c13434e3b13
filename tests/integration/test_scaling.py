"""Two workers in one group: a rebalance moves partitions, pending decay timers move
with them, and ``/leads/{id}`` answers from either worker (forwarded to the owner)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import TopicReader, Topics, Worker, event, poll
from tests.integration.test_pipeline import FAST_MODEL, for_lead, send


@contextlib.contextmanager
def first_of_two(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, **env: str
) -> Iterator[tuple[Worker, Worker]]:
    """Two workers of one group over 4 partitions: the first started and ready, the
    second not started yet; both stopped (cleanly) at the end."""
    first, second = (
        Worker(
            kafka_bootstrap,
            topics,
            tmp_path / name,
            model_path=FAST_MODEL,
            partitions=4,
            extra_env=dict(env),
        )
        for name in ("a", "b")
    )
    first.start()
    try:
        first.wait_ready()
        yield first, second
    finally:
        if second.proc is not None:
            assert second.stop() == 0, second.log_tail()
        assert first.stop() == 0, first.log_tail()


def second_joins(first: Worker, second: Worker, topics: Topics) -> None:
    """Start ``second``; return once both are ready and both own part of the table."""
    second.start()
    second.wait_ready()
    poll(lambda: first.get("/ready")[0] == 200, timeout=60, what="first worker ready again")
    # Faust's /router lists who owns which partitions.
    owners = first.get_json("/router/")[1]
    changelog = f"{topics.prefix}-app-leads-changelog"
    owned = {host: parts.get(changelog, []) for host, parts in owners.items()}
    assert len([h for h, p in owned.items() if p]) == 2, owned


def test_rebalance_keeps_timers_and_any_worker_answers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(f"scl-{uuid.uuid4().hex[:8]}")
    leads = [f"lead-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    with first_of_two(kafka_bootstrap, topics, tmp_path) as (first, second):
        at = time.time()
        # 30 points of web activity each: warm now, back to cold by decay ~6.3 s later,
        # by which time the second worker has joined and taken some partitions.
        send(
            first,
            [("web", event("web", x, f"{x}-v", at, url="https://x.io/pricing")) for x in leads],
        )
        second_joins(first, second, topics)

        qualified = TopicReader(kafka_bootstrap, topics.qualified)
        got = qualified.wait_for(
            lambda ms: all(any(m["cause"] == "decay" for m in for_lead(ms, x)) for x in leads),
            timeout=60,
            what="every lead's decay downgrade",
        )
        for lead in leads:
            changes = for_lead(got, lead)
            assert {(c["from_stage"], c["to_stage"], c["cause"]) for c in changes} == {
                ("cold", "warm", "event"),
                ("warm", "cold", "decay"),
            }
            assert len({c["event_id"] for c in changes}) == 2  # repeats keep their ids

        for lead in leads:
            for worker in (first, second):
                status, body = worker.get_json(f"/leads/{lead}")
                assert status == 200, (lead, worker.web_port, body)
                assert (body["lead_id"], body["stage"]) == (lead, "cold")


@pytest.mark.parametrize("in_loop", ["true", "false"], ids=["consumer-in-loop", "faust-thread"])
def test_a_rebalance_writes_and_commits_the_open_windows_first(
    kafka_bootstrap: str, tmp_path: Path, in_loop: str
) -> None:
    """Events scored before a rebalance are not scored again after it, whichever way
    the consumer runs (the revoke reaches the worker's hook through Faust's queues).

    Windows that never close by age keep every event of the first phase in the open
    window when the second worker joins. Unless the first worker writes and commits
    that window as its partitions are revoked, the partitions' owners read those
    events again and publish each lead's first stage change a second time.
    """
    topics = Topics(f"rvk-{uuid.uuid4().hex[:8]}")
    leads = [f"lead-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    qualified = TopicReader(kafka_bootstrap, topics.qualified)
    env = {"LEADSTREAM_FLUSH_INTERVAL_SECONDS": "600", "LEADSTREAM_CONSUMER_IN_LOOP": in_loop}
    with first_of_two(kafka_bootstrap, topics, tmp_path, **env) as (first, second):
        at = time.time()
        # 40 points that never decay: cold -> warm.
        send(
            first,
            [
                ("webinar", event("webinar", x, f"{x}-w", at, action="attended", webinar_id="w"))
                for x in leads
            ],
        )
        qualified.wait_for(
            lambda ms: all(for_lead(ms, x) for x in leads), timeout=60, what="cold -> warm"
        )
        second_joins(first, second, topics)

        # Per lead, the marker's stage change comes after any second reading of the
        # first event: same input partition, same owner, same output partition.
        send(
            first,
            [
                (
                    "email",
                    event("email", x, f"{x}-u", at + 1, action="unsubscribe", campaign_id="c"),
                )
                for x in leads
            ],
        )
        got = qualified.wait_for(
            lambda ms: all(
                any(m["to_stage"] == "disqualified" for m in for_lead(ms, x)) for x in leads
            ),
            timeout=60,
            what="every lead's unsubscribe",
        )
        for lead in leads:
            changes = [(c["from_stage"], c["to_stage"]) for c in for_lead(got, lead)]
            assert changes == [("cold", "warm"), ("warm", "disqualified")], (lead, changes)
