"""The order the worker would have handled an export's records in, one shard at a time.

The worker reads each partition in offset order, and the four input topics side by
side as their records arrive. A worker that keeps up handles a record about when it
was written, so the replay takes a record's Kafka timestamp as the time it was
handled: the running maximum along its partition (a producer whose clock steps back
never reorders a partition), the partitions merged by it (ties: topic, partition,
offset). The file's own line order does not matter.

Leads are independent: records are split into shards by lead (the ``lead_id`` their
value names) and each shard is replayed on its own, in a process of its own if asked.
A record that names no lead is invalid under any model; it goes to a shard by its
partition. Each shard reads the whole file and keeps its own records' values in
memory (a few hundred bytes each).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from streams.modelpreview.exportfile import ExportFormatError, parse_line, value_of

#: Lines read between two progress reports.
REPORT_EVERY = 8192


class Entry(NamedTuple):
    """One record of the shard, and when the worker handled it."""

    handled_at: float  # epoch seconds
    topic: str
    partition: int
    offset: int
    line_no: int
    kind: str
    value: bytes


def lead_of(obj: dict[str, Any]) -> str | None:
    """The ``lead_id`` a parsed export line's value names, if it names one."""
    if "value" in obj:
        value = obj["value"]
    else:  # not JSON as exported; a hand-made line may still hold JSON here
        try:
            value = orjson.loads(base64.b64decode(obj["value_b64"], validate=True))
        except (orjson.JSONDecodeError, binascii.Error, ValueError, TypeError):
            return None
    lead = value.get("lead_id") if type(value) is dict else None
    return lead if type(lead) is str else None


def shard_of(lead: str | None, partition: int, shards: int) -> int:
    """Which shard a record goes to: by lead (crc32: the same in every process)."""
    if lead is None:
        return partition % shards
    return zlib.crc32(lead.encode()) % shards


def located(exc: ExportFormatError, path: Path, line_no: int) -> ExportFormatError:
    """The error with the file and line it is about."""
    return ExportFormatError(f"{path}:{line_no}: {exc}")


def scan(
    path: Path, shard: int, shards: int, on_lines: Callable[[int], None] | None = None
) -> list[Entry]:
    """The shard's records in the order the worker would have handled them."""
    by_partition: dict[tuple[str, int], list[tuple[int, int, int, str, bytes]]] = {}
    line_no = 0
    with path.open("rb") as f:
        for line_no, line in enumerate(f, 1):
            if on_lines is not None and line_no % REPORT_EVERY == 0:
                on_lines(REPORT_EVERY)
            if line.isspace():
                continue
            try:
                obj = _owned(line, shard, shards)
                if obj is None:
                    continue
                value = value_of(obj)
            except ExportFormatError as exc:
                raise located(exc, path, line_no) from None
            by_partition.setdefault((obj["topic"], obj["partition"]), []).append(
                (obj["offset"], line_no, obj["timestamp"], obj["kind"], value)
            )
    if on_lines is not None:
        on_lines(line_no % REPORT_EVERY)
    return _merged(by_partition)


def _owned(line: bytes, shard: int, shards: int) -> dict[str, Any] | None:
    """The line parsed if it is the shard's, else None.

    Every shard reads every line, and most are another shard's: a line naming its
    lead once, plainly, is claimed by that name without parsing it (each line is
    still parsed and checked once, by the shard it belongs to). Any other line is
    parsed to find its lead. Both ways give one lead the same shard.
    """
    if shards == 1:
        return parse_line(line)
    lead = _plain_lead(line)
    if lead is not None:
        return parse_line(line) if zlib.crc32(lead) % shards == shard else None
    obj = parse_line(line)
    return obj if shard_of(lead_of(obj), obj["partition"], shards) == shard else None


_LEAD_KEY = b'"lead_id"'


def _plain_lead(line: bytes) -> bytes | None:
    """The lead id of a line in which ``"lead_id"`` occurs once, as a key with a string
    without escapes, as the exporter writes it; else None (parse it to know).

    Inside a JSON string the key's quotes would be escaped, so a single occurrence
    followed by ``:"`` is the value's one ``lead_id`` key.
    """
    if line.count(_LEAD_KEY) != 1:
        return None
    at = line.index(_LEAD_KEY) + len(_LEAD_KEY)
    if line[at : at + 2] != b':"':
        return None
    end = line.find(b'"', at + 2)
    lead = line[at + 2 : end]
    return None if end < 0 or b"\\" in lead else lead


def _merged(
    by_partition: dict[tuple[str, int], list[tuple[int, int, int, str, bytes]]],
) -> list[Entry]:
    entries: list[Entry] = []
    for (topic, partition), records in by_partition.items():
        records.sort()  # by offset (then line), as the worker reads a partition
        handled_ms = -1
        for offset, line_no, timestamp, kind, value in records:
            handled_ms = max(handled_ms, timestamp)
            entries.append(Entry(handled_ms / 1000, topic, partition, offset, line_no, kind, value))
    entries.sort()  # (time, topic, partition, offset, line) is unique: values never compared
    return entries
