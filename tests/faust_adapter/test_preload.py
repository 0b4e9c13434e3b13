"""streams.faust_adapter.preload without Kafka: the on-disk format.

What ``_apply`` writes must be what Faust's own RocksDB store reads back (paths,
options, raw keys and values, the persisted-offset key and encoding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from streams.core.statecodec import encode_state
from streams.faust_adapter.preload import (
    ChangelogStore,
    _apply,
    _open,
    changelog_store,
    preload_changelog,
    read_offsets,
)
from streams.settings import Settings
from tests.core.test_statecodec import realistic_states
from tests.support import close_app_loops

# ------------------------------------------------------------------ the on-disk format


class Record(NamedTuple):
    """The fields of an aiokafka ConsumerRecord that the preload uses."""

    offset: int
    key: bytes | None
    value: bytes | None


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``create_app`` for a data dir under ``tmp_path`` (the worker's own table)."""
    from streams.faust_adapter.app import create_app

    made: list[Any] = []

    def make(store: str = "rocksdb://") -> Any:
        settings = Settings.from_env(
            environ={}, app_id="bulkload-unit", data_dir=str(tmp_path / "data"), store=store
        )
        ls = create_app(settings)
        made.append(ls)
        return ls

    yield make
    for ls in made:
        close_app_loops(ls.app)


def test_store_layout_is_fausts_own(tmp_path: Path, make_app: Callable[..., Any]) -> None:
    ls = make_app()
    store = changelog_store(ls.table)
    assert store is not None
    assert store.topic == "bulkload-unit-leads-changelog"
    assert store.offset_key == b"__faust\0offset__"
    assert not store.read_committed
    for partition in range(4):
        assert store.partition_path(partition) == ls.table.data.partition_path(partition)
    assert store.partition_path(1) == tmp_path / "data" / "v1" / "tables" / "leads-1.db"


def test_memory_store_is_left_alone(tmp_path: Path, make_app: Callable[..., Any]) -> None:
    ls = make_app(store="memory://")
    assert changelog_store(ls.table) is None
    # No broker is contacted (this address would fail) and nothing is written.
    stats = preload_changelog(ls.table, "127.0.0.1:1")
    assert stats.records == 0 and stats.partitions == 0
    assert not (tmp_path / "data" / "v1" / "tables").exists()


def test_what_apply_writes_is_what_faust_reads(
    tmp_path: Path, make_app: Callable[..., Any]
) -> None:
    from faust.types import TP

    ls = make_app()
    store = changelog_store(ls.table)
    assert store is not None
    states = {s.lead_id: encode_state(s) for s in realistic_states(20)}
    leads = sorted(states)
    first = [Record(i, lead.encode(), states[lead]) for i, lead in enumerate(leads)]
    # Later records: an update, a tombstone, a keyless record (skipped).
    later = [
        Record(20, leads[0].encode(), b'{"updated":1}'),
        Record(21, leads[1].encode(), None),
        Record(22, None, b"{}"),
    ]
    db = _open(store, 2)
    try:
        assert _apply(db, first, store.offset_key) == 0
        assert _apply(db, later, store.offset_key) == 1
    finally:
        db.close()
    assert read_offsets(store, [2]) == {2: 22}

    # Faust's own store, opening the database the way the worker will.
    faust_store = ls.table.data
    tp = TP(store.topic, 2)
    assert faust_store.persisted_offset(tp) == 22
    db = faust_store._db_for_partition(2)
    items = dict(faust_store._visible_items(db))
    expected = {lead.encode(): states[lead] for lead in leads[2:]}
    expected[leads[0].encode()] = b'{"updated":1}'
    assert items == expected


def test_a_locked_store_is_a_clear_error(tmp_path: Path, make_app: Callable[..., Any]) -> None:
    from streams.faust_adapter.preload import PreloadError

    ls = make_app()
    store = changelog_store(ls.table)
    assert store is not None
    held = _open(store, 0)
    try:
        with pytest.raises(PreloadError, match="is a worker running"):
            _open(store, 0)
    finally:
        held.close()


def test_store_options_come_from_the_table(tmp_path: Path) -> None:
    # A table opened with its own RocksDB options: the preload opens with the same.
    import faust

    app = faust.App("opts", datadir=str(tmp_path / "d"), store="rocksdb://")
    table = app.Table("leads", partitions=2, options={"write_buffer_size": 1 << 20})
    store = changelog_store(table)
    assert isinstance(store, ChangelogStore)
    opener = getattr(store.open_db, "__self__", None)
    assert opener is not None and opener.write_buffer_size == 1 << 20
    # ... and Faust's own store still sees the table's options (not consumed by ours).
    faust_store: Any = table.data
    assert faust_store.rocksdb_options.write_buffer_size == 1 << 20


def test_an_unreachable_broker_is_a_clear_error(make_app: Callable[..., Any]) -> None:
    from streams.faust_adapter.preload import PreloadError

    ls = make_app()
    with pytest.raises(PreloadError, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
        preload_changelog(ls.table, "127.0.0.1:1", connect_timeout_s=5)
