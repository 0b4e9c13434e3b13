"""The order a shard replays its records in, and which records each shard gets."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from streams.modelpreview.exportfile import ExportFormatError, ExportRecord, encode_record
from streams.modelpreview.order import scan, shard_of
from tests.modelpreview.exports import workload, write


def rec(topic: str, partition: int, offset: int, ms: int, lead: str = "L") -> ExportRecord:
    value = orjson.dumps({"lead_id": lead, "n": offset})
    return ExportRecord(topic, "web", partition, offset, ms, lead.encode(), value)


def positions(path: Path, shard: int = 0, shards: int = 1) -> list[tuple[str, int, int, float]]:
    return [(e.topic, e.partition, e.offset, e.handled_at) for e in scan(path, shard, shards)]


def test_partitions_merge_by_time_and_each_keeps_its_offset_order(tmp_path: Path) -> None:
    records = [
        rec("b", 0, 0, 1_000),
        rec("a", 0, 0, 2_000),
        rec("a", 0, 1, 1_500),  # a producer clock stepping back: handled after offset 0
        rec("b", 0, 1, 1_800),
        rec("a", 1, 5, 1_800),  # a tie: topic, partition, offset decide
    ]
    path = write(tmp_path / "e.jsonl", records)
    assert positions(path) == [
        ("b", 0, 0, 1.0),
        ("a", 1, 5, 1.8),
        ("b", 0, 1, 1.8),
        ("a", 0, 0, 2.0),
        ("a", 0, 1, 2.0),
    ]


def test_the_line_order_of_the_file_does_not_matter(tmp_path: Path) -> None:
    lines = [
        encode_record(r)
        for r in workload(n_events=500, n_leads=30, seed=1, start=1.7e9, span_s=3600.0)
    ]
    in_order = tmp_path / "a.jsonl"
    in_order.write_bytes(b"".join(lines))
    random.Random(4).shuffle(lines)
    shuffled = tmp_path / "b.jsonl"
    shuffled.write_bytes(b"\n" + b"".join(lines))  # a blank line is skipped too
    assert positions(shuffled) == positions(in_order)


def test_shards_split_the_records_by_lead_and_a_misrouted_one_goes_with_its_lead(
    tmp_path: Path,
) -> None:
    records = list(
        workload(n_events=600, n_leads=40, seed=2, start=1.7e9, span_s=3600.0, trouble_every=10)
    )
    path = write(tmp_path / "e.jsonl", records)
    shards = [scan(path, i, 3) for i in range(3)]
    assert sum(len(s) for s in shards) == len(records)
    for i, entries in enumerate(shards):
        for entry in entries:
            try:
                lead = orjson.loads(entry.value)["lead_id"]
            except (orjson.JSONDecodeError, TypeError):
                assert shard_of(None, entry.partition, 3) == i  # no lead: by partition
            else:
                assert shard_of(lead, entry.partition, 3) == i


def test_a_bad_line_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(encode_record(rec("a", 0, 0, 1)) + b'{"topic": "a"}\n')
    with pytest.raises(ExportFormatError, match=rf"^{path}:2: 'kind' missing"):
        scan(path, 0, 1)


def test_one_lead_written_any_way_goes_to_one_shard_and_each_line_to_one(
    tmp_path: Path,
) -> None:
    head = b'{"topic":"lead.profiles","kind":"profile","partition":0,"timestamp":1,'
    values = [
        b'{"lead_id":"lead-1","event_id":"a"}',  # as the exporter writes it
        b'{"lead_id" : "lead-1", "event_id": "b"}',  # by hand
        b'{"lead_id":"lead\\u002d1","event_id":"c"}',  # escaped
        b'{"attributes":{"lead_id":"lead-9"},"lead_id":"lead-1","event_id":"d"}',
        b'{"title":"lead_id","lead_id":"lead-1","event_id":"e"}',
    ]
    lines = [head + b'"offset":%d,"value":%s}\n' % (i, v) for i, v in enumerate(values)]
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"".join(lines))
    for shards in (2, 3, 5):
        found = [[e.offset for e in scan(path, i, shards)] for i in range(shards)]
        assert sorted(o for offsets in found for o in offsets) == list(range(len(values)))
        assert [len(offsets) for offsets in found].count(len(values)) == 1
