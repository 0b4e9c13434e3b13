"""Export files in and out: the model export's format with the report's kinds."""

from __future__ import annotations

import base64
import gc
from pathlib import Path

import orjson
import pytest

from streams.modelpreview.exportfile import ExportFormatError
from streams.salesreport.kpis import compute
from streams.salesreport.read import read_exports, report_topics
from streams.settings import Settings
from tests.salesreport.histories import (
    T0,
    change,
    history_of,
    known,
    outcome,
    shuffled,
    write_export,
)


def test_a_history_survives_the_round_trip_through_an_export_file(tmp_path: Path) -> None:
    records = shuffled(known())
    path = write_export(tmp_path / "history.jsonl", records)
    read = read_exports([path])
    assert read.changes == history_of(records).changes
    assert read.outcomes == history_of(records).outcomes
    assert compute(read) == compute(history_of(records))


def test_stage_changes_and_outcomes_may_come_in_separate_files(tmp_path: Path) -> None:
    records = known()
    changes = write_export(tmp_path / "q.jsonl", [r for r in records if r[0] == "qualified"])
    outcomes = write_export(tmp_path / "o.jsonl", [r for r in records if r[0] == "outcome"])
    assert compute(read_exports([outcomes, changes])) == compute(history_of(records))


def test_input_lines_are_skipped_and_values_that_are_not_json_counted(tmp_path: Path) -> None:
    path = write_export(tmp_path / "x.jsonl", [change("a", 1, "mql", T0)])
    web = {"topic": "web.visits", "kind": "web", "partition": 0, "offset": 0, "timestamp": 1}
    broken = {**web, "topic": "lead.outcomes", "kind": "outcome"}
    with path.open("ab") as f:
        f.write(orjson.dumps({**web, "value": {"lead_id": "a"}}) + b"\n\n")
        f.write(orjson.dumps({**broken, "value_b64": base64.b64encode(b"{oops").decode()}) + b"\n")
        f.write(orjson.dumps({**broken, "value": outcome("a", "won", T0)[1]}))  # no last newline
    history = read_exports([path])
    assert list(history.changes) == ["a"]
    assert [o.outcome for o in history.outcomes["a"]] == ["won"]
    assert history.skipped == {"outcome: not a JSON object": 1}


def test_a_malformed_line_names_its_file_and_line(tmp_path: Path) -> None:
    path = write_export(tmp_path / "x.jsonl", [change("a", 1, "mql", T0)])
    with path.open("ab") as f:
        f.write(b'{"topic": "lead.qualified"}\n')
    with pytest.raises(ExportFormatError, match=rf"^{path}:2: 'kind' missing"):
        read_exports([path])
    path.write_bytes(b'{"topic":"t","kind":"mystery","partition":0,"offset":0,"timestamp":1}\n')
    with pytest.raises(ExportFormatError, match=r":1: unknown kind 'mystery'"):
        read_exports([path])


def test_progress_adds_up_to_the_file_size(tmp_path: Path) -> None:
    path = write_export(tmp_path / "x.jsonl", known())
    seen: list[int] = []
    read_exports([path], seen.append)
    assert sum(seen) == path.stat().st_size and len(seen) >= 1


def test_the_topics_a_report_reads_follow_the_settings() -> None:
    settings = Settings.from_env(
        {"LEADSTREAM_TOPIC_QUALIFIED": "q", "LEADSTREAM_TOPIC_OUTCOMES": "o"}
    )
    assert report_topics(settings) == {"q": "qualified", "o": "outcome"}


def test_the_cyclic_collector_is_back_as_it_was_after_reading(tmp_path: Path) -> None:
    path = write_export(tmp_path / "x.jsonl", [change("a", 1, "mql", T0)])
    assert gc.isenabled()
    read_exports([path])
    assert gc.isenabled()
    gc.disable()
    try:
        read_exports([path])
        assert not gc.isenabled()
    finally:
        gc.enable()
