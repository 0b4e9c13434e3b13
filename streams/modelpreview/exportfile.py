"""The export file: one record of an input topic per line, as JSON (format 1).

``leadstream model export`` writes it and ``leadstream model preview --from-export``
reads it; this module is the only code that knows the format. A line::

    {"topic":"web.visits","kind":"web","partition":0,"offset":17,
     "timestamp":1764583200123,"key":"lead-000042","value":{"event_id":"...", ...}}

- ``topic``, ``partition``, ``offset``: where the record was read;
- ``kind``: ``web``, ``email``, ``webinar`` or ``profile``, the input the topic carries
  (the replay goes by it, not by the topic's name, so an export previews the same
  wherever the topics were named otherwise);
- ``timestamp``: the record's Kafka timestamp, epoch milliseconds (-1: none);
- ``key``: the key as a UTF-8 string, or null for none; ``key_b64`` (base64) instead
  when the key is not UTF-8;
- ``value``: the value parsed as JSON; ``value_b64`` (base64 of the bytes) instead when
  it is not JSON, as the worker would dead-letter it (a record without a value: ``""``).

Lines may come in any order (the replay puts them in the worker's). Readers ignore
fields they do not know, so a later version may add some; removing or changing one
is a new format.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from typing import Any, NamedTuple

import orjson

from streams.core.contract import SOURCE_KINDS, right_sized


class ExportFormatError(ValueError):
    """A line that is not an export record (the reader adds the file and line)."""


class ExportRecord(NamedTuple):
    """One input record, as the worker's consumer would hand it over."""

    topic: str
    kind: str
    partition: int
    offset: int
    #: Kafka's timestamp, epoch milliseconds (-1: none).
    timestamp: int
    key: bytes | None
    value: bytes


def encode_record(record: ExportRecord) -> bytes:
    """The record's line, newline included."""
    line: dict[str, Any] = {
        "topic": record.topic,
        "kind": record.kind,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
    }
    try:
        line["key"] = None if record.key is None else record.key.decode()
    except UnicodeDecodeError:
        line["key_b64"] = base64.b64encode(record.key).decode()  # type: ignore[arg-type]
    try:
        return orjson.dumps({**line, "value": orjson.loads(record.value)}) + b"\n"
    except orjson.JSONDecodeError:
        pass  # not JSON: the worker dead-letters it; kept byte for byte
    except orjson.JSONEncodeError:
        pass  # JSON orjson reads but cannot write back (nested past 254 levels)
    line["value_b64"] = base64.b64encode(record.value).decode()
    return orjson.dumps(line) + b"\n"


def parse_line(line: bytes, known: Collection[str] = SOURCE_KINDS) -> dict[str, Any]:
    """The line's fields, checked (the value left parsed); ``known``: the kinds a reader
    knows (other tools' exports, ``leadstream report``'s, have kinds of their own)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ExportFormatError("not a JSON line") from None
    if type(obj) is not dict:
        raise ExportFormatError("not a JSON object")
    for name, kinds in _FIELDS:
        if type(obj.get(name)) not in kinds:
            raise ExportFormatError(f"{name!r} missing or of the wrong type")
    if obj["kind"] not in known:
        raise ExportFormatError(f"unknown kind {obj['kind']!r}")
    if ("value" in obj) == ("value_b64" in obj):
        raise ExportFormatError("needs 'value' or 'value_b64' (one of them)")
    return obj


_FIELDS: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("topic", (str,)),
    ("kind", (str,)),
    ("partition", (int,)),
    ("offset", (int,)),
    ("timestamp", (int,)),
)


def key_of(obj: dict[str, Any]) -> bytes | None:
    """The key of a line :func:`parse_line` checked, as Kafka had it."""
    if "key_b64" in obj:
        return _b64(obj["key_b64"], "key_b64")
    key = obj.get("key")
    if key is not None and type(key) is not str:
        raise ExportFormatError("'key' is neither a string nor null")
    return None if key is None else key.encode()


def value_of(obj: dict[str, Any]) -> bytes:
    """The value of a line :func:`parse_line` checked: as Kafka had it, or for a parsed
    value, that value as compact JSON (which the worker reads the same)."""
    if "value_b64" in obj:
        return _b64(obj["value_b64"], "value_b64")
    try:
        # Right-sized: orjson's bytes hold its whole output buffer (4 KiB at least),
        # and a shard keeps every record's value until it is replayed.
        return right_sized(orjson.dumps(obj["value"]))
    except orjson.JSONEncodeError:
        raise ExportFormatError("the value is nested too deeply") from None


def _b64(text: Any, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ExportFormatError(f"{name!r} is not base64") from None


def read_record(line: bytes) -> ExportRecord:
    """The record on one line."""
    obj = parse_line(line)
    return ExportRecord(
        obj["topic"],
        obj["kind"],
        obj["partition"],
        obj["offset"],
        obj["timestamp"],
        key_of(obj),
        value_of(obj),
    )
