"""LeadStore's memory:// path keeps right-sized values."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
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
