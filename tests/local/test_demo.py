"""The demo's seed: fixed when asked for, new on every run otherwise."""

from __future__ import annotations

from streams.cli import _build_parser, _local_tooling
from streams.local.demo import pick_seed
from streams.local.workload import DemoTraffic


def test_a_given_seed_is_kept() -> None:
    assert pick_seed(5) == 5
    assert pick_seed(0) == 0


def test_runs_without_a_seed_send_new_event_ids() -> None:
    # A local broker keeps its topics between runs: repeated ids would be duplicates.
    assert _build_parser(_local_tooling()).parse_args(["demo"]).seed is None
    first, second = (DemoTraffic(n_leads=50, seed=pick_seed(None), start=0.0) for _ in range(2))
    ids = [{m.value for m in (t.next_message(1.0 + i) for i in range(20))} for t in (first, second)]
    assert ids[0].isdisjoint(ids[1])
