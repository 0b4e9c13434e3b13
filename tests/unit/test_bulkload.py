"""streams.bulkload without Kafka: the cached-due fast path and the on-disk format.

``due_from_raw`` must agree with the full decode for every state the scoring library
can produce; what ``_apply`` writes must be what Faust's own RocksDB store reads back
(paths, options, raw keys and values, the persisted-offset key and encoding).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import LeadState, ScoringModel, advance, apply, load_default_model, next_change_at
from streams.bulkload import (
    NOT_CACHED,
    ChangelogStore,
    _apply,
    _open,
    changelog_store,
    due_from_raw,
    next_change_from_raw,
    preload_changelog,
    read_offsets,
)
from streams.pipeline import decode_state, encode_state
from streams.settings import Settings
from streams.workload import sample_states
from tests.scoring.models import small_model
from tests.scoring.strategies import events
from tests.support import close_app_loops

SMALL = small_model()
DEFAULT = load_default_model()

# ------------------------------------------------------------------- states to test on

# Lead ids are free text in the stored JSON: include ones that spell the tail's keys.
LEAD_IDS = st.one_of(
    st.text(max_size=30),
    st.just('x","next_change":1.5,"next_change_up":true,"next_change_valid":true}'),
    st.just('"next_change":null'),
)


@st.composite
def small_states(draw: Any) -> LeadState:
    """A state as the engine leaves it, sometimes with next_change computed, sometimes
    advanced in time (which may change the stage and invalidate the cache)."""
    lead = draw(LEAD_IDS)
    state = LeadState(lead)
    for ev in draw(events(max_size=20, lead=lead)):
        state, _ = apply(state, ev, SMALL)
    if draw(st.booleans()):
        next_change_at(state, SMALL)
    if draw(st.booleans()):
        state, _ = advance(state, (state.clock or 0.0) + draw(st.floats(0.0, 100.0)), SMALL)
        if draw(st.booleans()):
            next_change_at(state, SMALL)
    return state


def realistic_states(n: int, seed: int = 7, *, cached: bool = True) -> list[LeadState]:
    return sample_states(n, seed=seed, now=time.time(), model=DEFAULT, cached=cached)


# ------------------------------------------------------------------------ due_from_raw


def _check(state: LeadState, model: ScoringModel) -> None:
    for raw in (encode_state(state), orjson.dumps(state.to_dict())):
        due = due_from_raw(raw)
        if state.nc_valid:
            assert due is not NOT_CACHED
            assert due == next_change_at(state, model)
        else:
            assert due is NOT_CACHED
        # What the schedule rebuild gets either way: today's full-decode answer.
        assert next_change_from_raw(raw, model) == next_change_at(decode_state(raw), model)


@settings(max_examples=400, deadline=None)
@given(small_states())
def test_due_from_raw_agrees_with_next_change_at(state: LeadState) -> None:
    _check(state, SMALL)


def test_due_from_raw_on_realistic_states() -> None:
    states = realistic_states(150) + realistic_states(50, seed=8, cached=False)
    for state in states:
        _check(state, DEFAULT)
    # Both branches are exercised: cached times, cached "never", not cached.
    dues = [due_from_raw(encode_state(s)) for s in states]
    assert any(isinstance(d, float) for d in dues)
    assert None in dues
    assert NOT_CACHED in dues


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(1e9, 4e9),  # epoch seconds, the usual case
        st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 1e-7, -1e22]),
    ),
    st.booleans(),
)
def test_due_from_raw_reads_every_float_exactly(due: float, up: bool) -> None:
    state = LeadState("L")
    state.next_change, state.nc_up, state.nc_valid = due, up, True
    got = due_from_raw(encode_state(state))
    assert isinstance(got, float)
    assert got == due and math.copysign(1.0, got) == math.copysign(1.0, due)


def test_non_finite_due_reads_as_the_decoder_does() -> None:
    state = LeadState("L")
    state.next_change, state.nc_valid = math.inf, True
    raw = encode_state(state)  # orjson writes null for inf
    assert due_from_raw(raw) is None
    assert next_change_from_raw(raw, SMALL) == next_change_at(decode_state(raw), SMALL)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{}",
        b"null",
        b'{"next_change":1.5,"next_change_up":false,"next_change_valid":false}',
        b'{"next_change":1.5,"next_change_up":false,"next_change_valid":true} ',
        b'{"next_change":1.5,"next_change_up":0,"next_change_valid":true}',
        b'{"next_change":"1.5","next_change_up":false,"next_change_valid":true}',
        b'{"next_change":1.5.1,"next_change_up":false,"next_change_valid":true}',
        b'{"next_change":inf,"next_change_up":false,"next_change_valid":true}',
        b'{"next_change":NaN,"next_change_up":false,"next_change_valid":true}',
        b'{"next_change": 1.5,"next_change_up":false,"next_change_valid":true}',
        b'{"next_change_valid":true,"next_change":1.5,"next_change_up":false}',
    ],
)
def test_due_from_raw_declines_other_shapes(raw: bytes) -> None:
    assert due_from_raw(raw) is NOT_CACHED


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_due_from_raw_never_raises(raw: bytes) -> None:
    due = due_from_raw(raw)
    assert due is None or due is NOT_CACHED or isinstance(due, float)


# ------------------------------------------------------------------ the on-disk format


class Record(NamedTuple):
    """The fields of an aiokafka ConsumerRecord that the preload uses."""

    offset: int
    key: bytes | None
    value: bytes | None


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``create_app`` for a data dir under ``tmp_path`` (the worker's own table)."""
    from streams.app import create_app

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
    from streams.bulkload import PreloadError

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
    from streams.bulkload import PreloadError

    ls = make_app()
    with pytest.raises(PreloadError, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
        preload_changelog(ls.table, "127.0.0.1:1", connect_timeout_s=5)
