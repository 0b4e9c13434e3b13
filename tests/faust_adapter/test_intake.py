"""Intake.ack: what it leaves in Faust's consumer structures is what Faust's commit
turns into committed offsets, so it must cover every offset once, in order.

Run against a real (never started) Faust app and consumer, not fakes of their
internals: an upgrade that moves them fails here, not only in integration."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.faust_adapter.intake import Intake
from streams.settings import Settings
from tests.support import close_app_loops

TP = TopicPartition("web", 0)


@pytest.fixture
def faust_app(tmp_path: Path) -> Iterator[Any]:
    """The worker's real Faust app (memory store), never started."""
    from streams.faust_adapter.app import create_app

    settings = Settings.from_env(
        {}, app_id="intake-unit", data_dir=str(tmp_path), store="memory://"
    )
    ls = create_app(settings)
    try:
        yield ls.app
    finally:
        close_app_loops(ls.app)


@pytest.fixture
def intake(faust_app: Any) -> Callable[..., tuple[Intake, Any]]:
    def make(committed: int | None = None, generation: int = 1) -> tuple[Intake, Any]:
        consumer = faust_app.consumer
        if committed is not None:
            consumer._committed_offset[TP] = committed
        faust_app.consumer_generation_id = generation
        return Intake(faust_app, ["web"]), consumer

    return make


def test_acks_continue_from_the_committed_offset_without_gaps(
    intake: Callable[..., tuple[Intake, Any]],
) -> None:
    it, consumer = intake(committed=100)
    it.ack(TP, 1, 104)  # records from 100 on were taken (some may be markers)
    it.ack(TP, 1, 109)
    assert consumer._acked[TP] == list(range(100, 110))
    assert consumer._acked_index[TP] == set(range(100, 110))
    assert consumer._n_acked == 10


def test_nothing_committed_yet_starts_at_the_first_offset_read(
    intake: Callable[..., tuple[Intake, Any]],
) -> None:
    it, consumer = intake(committed=None)
    it._first_read[TP] = (1, 7)
    it.ack(TP, 1, 9)
    assert consumer._acked[TP] == [7, 8, 9]


def test_an_ack_from_an_old_generation_is_dropped(
    intake: Callable[..., tuple[Intake, Any]],
) -> None:
    it, consumer = intake(committed=10, generation=2)
    it.ack(TP, 1, 20)
    assert consumer._acked[TP] == [] and consumer._n_acked == 0


def test_a_new_generation_restarts_from_its_committed_offset(
    intake: Callable[..., tuple[Intake, Any]],
) -> None:
    it, consumer = intake(committed=10, generation=1)
    it.ack(TP, 1, 14)
    consumer._committed_offset[TP] = 15
    consumer._acked[TP].clear()
    it.app.consumer_generation_id = 2
    it.ack(TP, 2, 16)
    assert consumer._acked[TP] == [15, 16]


def test_an_ack_below_the_committed_offset_adds_nothing(
    intake: Callable[..., tuple[Intake, Any]],
) -> None:
    it, consumer = intake(committed=50)
    it.ack(TP, 1, 40)
    assert consumer._acked[TP] == []


def test_the_workers_consumer_fetches_with_the_configured_wait(tmp_path: Path) -> None:
    from streams.faust_adapter.app import FETCH_MIN_BYTES, create_app

    settings = Settings.from_env(
        {"LEADSTREAM_FETCH_MAX_WAIT_SECONDS": "0.25"},
        app_id="intake-unit",
        data_dir=str(tmp_path),
        store="memory://",
    )
    ls = create_app(settings)
    try:

        async def fetch_settings() -> tuple[int, int]:
            # aiokafka builds its client inside a running loop (the consumer thread's)
            client = ls.app.consumer._thread._create_consumer(asyncio.get_running_loop())
            try:
                return client._fetch_max_wait_ms, client._fetch_min_bytes
            finally:
                await client.stop()

        assert asyncio.run(fetch_settings()) == (250, FETCH_MIN_BYTES)
    finally:
        close_app_loops(ls.app)


def recording_consumer(consumer: Any, calls: list[str]) -> None:
    """Record the calls before_revoke makes on Faust's real consumer (public methods)."""

    async def on_partitions_revoked(revoked: set[Any]) -> None:
        calls.append(f"faust forgets {sorted(revoked)}")

    async def maybe_wait_for_commit_to_finish() -> bool:
        calls.append("wait for a commit in flight")
        return False

    async def commit() -> bool:
        calls.append("commit")
        return True

    consumer.on_partitions_revoked = on_partitions_revoked
    consumer.maybe_wait_for_commit_to_finish = maybe_wait_for_commit_to_finish
    consumer.commit = commit


def revoke_with(app: Any, hook_step: str, *, should_stop: bool = False) -> list[str]:
    calls: list[str] = []
    consumer = app.consumer
    recording_consumer(consumer, calls)
    if should_stop:
        app._stopped.set()  # what a stopping app reports as should_stop
    it = Intake(app, ["web"])

    async def hook() -> None:
        if hook_step == "fail":
            raise RuntimeError("no broker")
        if hook_step == "hang":
            await asyncio.Event().wait()
        calls.append("hook")

    it.before_revoke(hook, timeout_s=0.05)
    asyncio.run(consumer.on_partitions_revoked({TP}))
    return calls


def test_before_a_revoke_the_hook_runs_then_its_acks_are_committed(faust_app: Any) -> None:
    assert revoke_with(faust_app, "write") == [
        "hook",
        "wait for a commit in flight",
        "commit",
        f"faust forgets {[TP]}",
    ]


def test_a_failing_hook_does_not_stop_the_rebalance(faust_app: Any) -> None:
    assert revoke_with(faust_app, "fail") == [f"faust forgets {[TP]}"]


def test_a_hanging_hook_does_not_stop_the_rebalance(faust_app: Any) -> None:
    assert revoke_with(faust_app, "hang") == [f"faust forgets {[TP]}"]


def test_no_hook_while_stopping_the_stop_hook_wrote_the_windows(faust_app: Any) -> None:
    assert revoke_with(faust_app, "write", should_stop=True) == [f"faust forgets {[TP]}"]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_the_workers_consumer_reads_committed_only_under_exactly_once(
    tmp_path: Path, guarantee: str
) -> None:
    from streams.faust_adapter.app import create_app

    settings = Settings.from_env(
        {"LEADSTREAM_PROCESSING_GUARANTEE": guarantee, "LEADSTREAM_GROUP_INSTANCE_ID": "w-0"},
        app_id="intake-unit",
        data_dir=str(tmp_path),
        store="memory://",
    )
    ls = create_app(settings)
    try:

        async def isolation() -> str:
            client = ls.app.consumer._thread._create_consumer(asyncio.get_running_loop())
            try:
                level: str = client._isolation_level
                return level
            finally:
                await client.stop()

        expected = "read_committed" if guarantee == "exactly_once" else "read_uncommitted"
        assert asyncio.run(isolation()) == expected
    finally:
        close_app_loops(ls.app)


def test_offsets_a_transaction_committed_are_faust_committed_view_never_acks(
    intake: Callable[..., tuple[Intake, Any]],
) -> None:
    it, consumer = intake(committed=10, generation=2)
    it.committed(TP, 2, 19)
    it.committed(TP, 1, 40)  # a revoked generation's: its owner reads them again
    assert consumer._committed_offset[TP] == 20  # the next offset to read, as Faust keeps it
    # Nothing acked: Faust's commit loop has nothing to commit (no late regression).
    assert consumer._acked[TP] == [] and consumer._n_acked == 0


def test_exactly_once_has_no_generation_once_the_group_dropped_the_member(
    intake: Callable[..., tuple[Intake, Any]],
) -> None:
    from types import SimpleNamespace

    it, consumer = intake(committed=10, generation=3)
    coordinator = SimpleNamespace(generation=3)
    consumer._thread._consumer = SimpleNamespace(_coordinator=coordinator)
    it.exactly_once = True
    assert it.generation == 3
    # A heartbeat found the session expired: aiokafka reset the generation, and the
    # revoke that follows must not commit the windows (their partitions moved on).
    coordinator.generation = -1
    assert it.generation == -1
    it.committed(TP, 3, 19)
    assert consumer._committed_offset[TP] == 10
    it.exactly_once = False  # at least once: Faust's generation, as before
    assert it.generation == 3
