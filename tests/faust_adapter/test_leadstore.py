"""LeadStore: right-sized memory:// values, changelog catch-up, and states stored only
once their changelog records are delivered."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.faust_adapter.leadstore import LeadStore
from streams.settings import Settings
from tests.support import close_app_loops


@pytest.fixture
def memory_table(tmp_path: Path) -> Iterator[Any]:
    """The worker's real ``leads`` table on memory:// (never started)."""
    from streams.faust_adapter.app import create_app

    settings = Settings.from_env({}, app_id="store-unit", data_dir=str(tmp_path), store="memory://")
    ls = create_app(settings)
    try:
        yield ls.table
    finally:
        close_app_loops(ls.app)


def test_memory_store_values_do_not_keep_orjsons_buffer(memory_table: Any) -> None:
    table = memory_table
    store = LeadStore(app=None, table=table, emitter=None)  # type: ignore[arg-type]
    n = 500
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        writes = [
            (f"lead-{i}".encode(), i % 4, orjson.dumps({"lead_id": f"lead-{i}", "score": i}))
            for i in range(n)
        ]
        assert store.put(writes) == n
        del writes
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    stored = table.data.data
    assert orjson.loads(stored[b"lead-7"]) == {"lead_id": "lead-7", "score": 7}
    # ~100 B per key and value, dict included; orjson's own bytes would keep 4 KiB each.
    assert kept < n * 500, f"{kept / n:.0f} B kept per stored state"


class _Record:
    def __init__(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.offset, self.key, self.value = offset, key, value


def test_changelog_records_caught_up_into_the_memory_store_replace_and_delete(
    memory_table: Any,
) -> None:
    store = LeadStore(app=None, table=memory_table, emitter=None)  # type: ignore[arg-type]
    store.put([(b"a", 0, b"1"), (b"b", 0, b"1")])
    records = [_Record(5, b"a", b"2"), _Record(6, b"b", None), _Record(7, None, b"x")]
    assert store.apply_changelog(0, records) == 1
    assert memory_table.data.data == {b"a": b"2"}


def test_changelog_records_caught_up_into_rocksdb_are_what_faust_reads(tmp_path: Path) -> None:
    from faust.types import TP

    from streams.faust_adapter.app import create_app

    settings = Settings.from_env({}, app_id="store-unit", data_dir=str(tmp_path))
    ls = create_app(settings)
    try:
        table = ls.table
        store = LeadStore(app=ls.app, table=table, emitter=None)  # type: ignore[arg-type]
        changelog = TP(store.changelog, 1)
        assert store.apply_changelog(1, [_Record(3, b"a", b"x"), _Record(4, b"b", b"y")]) == 0
        assert table.data.persisted_offset(changelog) == 4
        # The position-based end: a commit marker after the last record.
        store.persist_offset(1, 5)
        assert table.data.persisted_offset(changelog) == 5
        assert store.get(b"a", 1) == b"x" and store.get(b"b", 1) == b"y"
    finally:
        close_app_loops(ls.app)


class _Batch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    def append(self, *, timestamp: None, key: bytes, value: bytes) -> object:
        self.records.append((key, value))
        return object()  # aiokafka: metadata, or None when the batch is full

    def record_count(self) -> int:
        return len(self.records)


class _Producer:
    """Record batches whose delivery succeeds at ``base_offset`` or fails."""

    def __init__(self, fail: BaseException | None = None, base_offset: int = 100) -> None:
        self.fail, self.base_offset = fail, base_offset

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
        delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail is not None:
            delivered.set_exception(self.fail)
        else:
            delivered.set_result(SimpleNamespace(offset=self.base_offset))
        return delivered


class _Emitter:
    def __init__(self, producer: _Producer) -> None:
        self.producer = producer
        self.failures: list[BaseException | None] = []

    def check_delivered(self, delivered: asyncio.Future[Any]) -> None:
        self.failures.append(delivered.exception())


async def test_states_are_stored_only_once_their_changelog_records_are_delivered(
    memory_table: Any,
) -> None:
    writes = [(b"lead-1", 0, b'{"n":1}'), (b"lead-2", 0, b'{"n":2}')]
    refused = _Emitter(_Producer(fail=RuntimeError("broker gone")))
    store = LeadStore(app=None, table=memory_table, emitter=refused)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="broker gone"):
        await store.publish(writes)
    assert memory_table.data.data == {}  # nothing stored ahead of the changelog
    assert [str(e) for e in refused.failures] == ["broker gone"]  # the worker stops

    delivered = _Emitter(_Producer(base_offset=100))
    store = LeadStore(app=None, table=memory_table, emitter=delivered)  # type: ignore[arg-type]
    await store.publish(writes)
    assert memory_table.data.data[b"lead-2"] == b'{"n":2}'
    assert delivered.failures == []
