"""The export file: what a line holds, and that a record comes back as Kafka had it."""

from __future__ import annotations

import orjson
import pytest

from streams.modelpreview.exportfile import (
    ExportFormatError,
    ExportRecord,
    encode_record,
    read_record,
)


def record(key: bytes | None, value: bytes) -> ExportRecord:
    return ExportRecord("web.visits", "web", 3, 17, 1_764_583_200_123, key, value)


def test_a_json_value_is_written_parsed_and_read_back_as_compact_json() -> None:
    value = b'{ "lead_id" : "lead-1",\n "n": 1.5, "ok": true }'
    line = encode_record(record(b"lead-1", value))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == {
        "topic": "web.visits",
        "kind": "web",
        "partition": 3,
        "offset": 17,
        "timestamp": 1_764_583_200_123,
        "key": "lead-1",
        "value": {"lead_id": "lead-1", "n": 1.5, "ok": True},
    }
    back = read_record(line)
    assert back == record(b"lead-1", b'{"lead_id":"lead-1","n":1.5,"ok":true}')


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (None, b'{"lead_id": "lead-1", "url": "https://x/'),  # cut short: not JSON
        (b"\xff\xfe", b"[1, 2]"),  # a key that is not UTF-8
        (b"lead-1", b""),  # no value (a tombstone is exported so)
        (b"lead-1", b"[" * 300 + b"]" * 300),  # JSON orjson reads, nested past what it writes
        (b"lead-1", b"\xc3\x28"),  # not UTF-8
    ],
    ids=["truncated", "binary-key", "empty", "deep", "bad-utf8"],
)
def test_what_is_not_writable_as_json_comes_back_byte_for_byte(
    key: bytes | None, value: bytes
) -> None:
    line = encode_record(record(key, value))
    obj = orjson.loads(line)
    assert "value" not in obj or obj["value"] == [1, 2]
    assert read_record(line) == record(key, value if "value_b64" in obj else b"[1,2]")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"{not json", "not a JSON line"),
        (b"[1]", "not a JSON object"),
        (b'{"topic": "t", "kind": "web", "partition": 0, "offset": 1}', "'timestamp' missing"),
        (
            b'{"topic":"t","kind":"web","partition":true,"offset":1,"timestamp":1,"value":{}}',
            "'partition' missing or of the wrong type",
        ),
        (
            b'{"topic":"t","kind":"click","partition":0,"offset":1,"timestamp":1,"value":{}}',
            "unknown kind 'click'",
        ),
        (b'{"topic":"t","kind":"web","partition":0,"offset":1,"timestamp":1}', "needs 'value'"),
        (
            b'{"topic":"t","kind":"web","partition":0,"offset":1,"timestamp":1,"value_b64":"%"}',
            "'value_b64' is not base64",
        ),
    ],
)
def test_a_line_that_is_not_a_record_says_what_is_wrong(line: bytes, says: str) -> None:
    with pytest.raises(ExportFormatError, match=says):
        read_record(line)


def test_fields_a_reader_does_not_know_are_ignored() -> None:
    line = orjson.loads(encode_record(record(b"k", b"{}")))
    line["headers"] = {"leadstream.kind": "web"}
    assert read_record(orjson.dumps(line)) == record(b"k", b"{}")
