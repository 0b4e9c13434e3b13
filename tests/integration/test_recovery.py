"""Stop a worker, start a fresh one: state comes back from the changelog, no stage
change is lost, decay timers survive, and repeated messages carry the same id."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import TopicReader, Topics, Worker, event, poll
from tests.integration.test_pipeline import (
    FAST_MODEL,
    engaging_events,
    for_lead,
    good_fit_profile,
    lead_view,
    send,
)


def _assert_repeats_share_ids(changes: list[dict[str, Any]]) -> None:
    ids: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for c in changes:
        ids[
            (c["from_stage"], c["to_stage"], c["cause"], c["trigger_event_id"], c["changed_at"])
        ].add(c["event_id"])
    assert all(len(v) == 1 for v in ids.values()), ids


@pytest.mark.parametrize("stop", ["graceful", "kill"])
def test_fresh_worker_recovers_state_from_the_changelog(
    kafka_bootstrap: str, tmp_path: Path, stop: str
) -> None:
    topics = Topics(f"rec-{uuid.uuid4().hex[:8]}")
    lead = f"lead-{uuid.uuid4().hex[:8]}"
    at = time.time() - 120
    first = Worker(kafka_bootstrap, topics, tmp_path / "a", model_path=FAST_MODEL).start()
    try:
        first.wait_ready()
        items = engaging_events(lead, at)
        send(first, items[:3])  # profile + two clicks: warm
        poll(
            lambda: (v := lead_view(first, lead)) is not None and v["stage"] == "warm",
            timeout=30,
            what="warm on the first worker",
        )
    finally:
        if stop == "graceful":
            assert first.stop() == 0, first.log_tail()
        else:
            first.kill()

    # While no worker runs: the webinar (MQL) and the capped third click.
    send(first, items[3:])
    # A fresh data dir: nothing local, the state must come from the changelog.
    second = Worker(kafka_bootstrap, topics, tmp_path / "b", model_path=FAST_MODEL).start()
    try:
        second.wait_ready()
        view = poll(
            lambda: (v := lead_view(second, lead)) is not None and v["stage"] == "mql" and v,
            timeout=30,
            what="mql on the second worker",
        )
        # Clicks before the restart are remembered: the cap still holds at 2.
        assert view["score"] == pytest.approx(60.0)
        qualified = TopicReader(kafka_bootstrap, topics.qualified)
        got = qualified.wait_for(
            lambda ms: any(m["to_stage"] == "mql" for m in for_lead(ms, lead)),
            timeout=30,
            what="warm -> mql",
        )
        changes = for_lead(got, lead)
        assert {(c["from_stage"], c["to_stage"]) for c in changes} == {
            ("cold", "warm"),
            ("warm", "mql"),
        }
        _assert_repeats_share_ids(changes)
    finally:
        assert second.stop() == 0, second.log_tail()


def test_decay_timer_survives_a_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    topics = Topics(f"tmr-{uuid.uuid4().hex[:8]}")
    lead = f"lead-{uuid.uuid4().hex[:8]}"
    first = Worker(kafka_bootstrap, topics, tmp_path / "a", model_path=FAST_MODEL).start()
    try:
        first.wait_ready()
        at = time.time()
        send(first, [("profiles", good_fit_profile(lead, f"{lead}-p", at))])
        send(first, [("web", event("web", lead, f"{lead}-v", at, url="https://x.io/pricing"))])
        poll(
            lambda: (v := lead_view(first, lead)) is not None and v["stage"] == "warm",
            timeout=30,
            what="warm",
        )
    finally:
        assert first.stop() == 0, first.log_tail()
    # The downgrade is due ~6.3 s after `at`; the first worker is gone before then
    # (or, on a slow machine, the second one finds it overdue): either way the
    # schedule is rebuilt from the table and the change is published once.
    second = Worker(kafka_bootstrap, topics, tmp_path / "b", model_path=FAST_MODEL).start()
    try:
        second.wait_ready()
        qualified = TopicReader(kafka_bootstrap, topics.qualified)
        got = qualified.wait_for(
            lambda ms: any(m["cause"] == "decay" for m in for_lead(ms, lead)),
            timeout=40,
            what="decay downgrade after restart",
        )
        downs = [m for m in for_lead(got, lead) if m["cause"] == "decay"]
        assert {(d["from_stage"], d["to_stage"]) for d in downs} == {("warm", "cold")}
        _assert_repeats_share_ids(for_lead(got, lead))
    finally:
        assert second.stop() == 0, second.log_tail()
