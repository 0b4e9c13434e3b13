"""The message contract: decode and validate input events, encode stage changes.

The JSON Schemas in ``schemas/`` are the published contract for producers in any
language; this module compiles them once (``jsonschema_rs``, draft 2020-12, with
``date-time`` format checks) and is the only place the worker turns bytes into events
and stage changes into bytes.

Hot path: :func:`decode_event` runs once per input message. A valid event costs one
``orjson.loads``, one ``is_valid`` and one timestamp parse; the slower error walk that
explains *why* a message is invalid runs only for rejected messages.

Rejection details (:class:`Rejected`, the ``leadstream.dlq.error`` header) name JSON
pointer paths and violated schema keywords, never instance values: dead letters are
read by people who must not see personal data, and ``jsonschema_rs`` messages quote
the offending value.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import jsonschema_rs
import orjson

#: The JSON Schemas: ``schemas/`` of the repo, shipped in the wheel as ``streams.schemas``.
SCHEMA_DIR: Final = Path(str(resources.files("streams.schemas")))

#: Input kind -> schema name (file ``schemas/<name>.schema.json``).
KIND_SCHEMAS: Final[Mapping[str, str]] = {
    "web": "web.visits",
    "email": "email.events",
    "webinar": "webinar.events",
    "profile": "lead.profiles",
    "outcome": "lead.outcomes",
}
SOURCE_KINDS: Final[tuple[str, ...]] = tuple(KIND_SCHEMAS)
QUALIFIED_SCHEMA: Final = "lead.qualified"
DLQ_HEADERS_SCHEMA: Final = "leadstream.dlq.headers"

#: Dead-letter reason codes (header ``leadstream.dlq.reason``).
REASONS: Final[tuple[str, ...]] = (
    "invalid_json",
    "not_an_object",
    "schema_violation",
    "unknown_event_type",
    "bad_timestamp",
    "state_limit",
    "invalid_internal_record",
    "processing_error",
)

HEADER_PREFIX: Final = "leadstream.dlq."
HEADER_REASON: Final = HEADER_PREFIX + "reason"
HEADER_ERROR: Final = HEADER_PREFIX + "error"
HEADER_TOPIC: Final = HEADER_PREFIX + "topic"
HEADER_PARTITION: Final = HEADER_PREFIX + "partition"
HEADER_OFFSET: Final = HEADER_PREFIX + "offset"
HEADER_FAILED_AT: Final = HEADER_PREFIX + "failed_at"
#: Only on a truncated dead letter: the original value's size and its SHA-256.
HEADER_ORIGINAL_SIZE: Final = HEADER_PREFIX + "original_size"
HEADER_SHA256: Final = HEADER_PREFIX + "sha256"

#: Earliest accepted event time: 2000-01-01T00:00:00Z (also the schemas' epoch-ms minimum).
MIN_EVENT_TIME: Final = 946_684_800.0

#: Longest ``leadstream.dlq.error`` value; details are summaries, not dumps.
MAX_DETAIL_CHARS: Final = 512
#: At most this many schema errors are described in one detail.
MAX_DETAIL_ERRORS: Final = 3

#: The field naming an event's type (an email's action, an outcome): a value outside
#: its enum is ``unknown_event_type``, not a plain schema violation.
_TYPE_FIELDS: Final = frozenset({("action",), ("outcome",)})

# RFC 3339 date-time with a mandatory offset; the same pattern the schemas publish.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class Rejected(Exception):
    """A message that cannot be processed; goes to the dead-letter topic as is."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------- schemas


def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema ``schemas/<name>.schema.json`` (e.g. ``"web.visits"``)."""
    schema: dict[str, Any] = orjson.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())
    return schema


def compile_schema(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A ``jsonschema_rs`` validator for ``schema`` with ``date-time`` format checks."""
    return jsonschema_rs.validator_for(schema, validate_formats=True)


_VALIDATORS: Final[dict[str, jsonschema_rs.Validator]] = {
    kind: compile_schema(load_schema(name)) for kind, name in KIND_SCHEMAS.items()
}


# ------------------------------------------------------------------------------ time


def parse_time(value: object) -> float:
    """Epoch seconds of an RFC 3339 date-time with offset or of integer epoch milliseconds.

    Raises ``ValueError`` for anything else (no offset, not RFC 3339, floats, booleans).
    Range checks are the caller's business (see :func:`decode_event`).
    """
    if type(value) is str:
        if _RFC3339.fullmatch(value) is None:
            raise ValueError("not an RFC 3339 date-time with offset")
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            # Python rejects the lower-case "t"/"z" RFC 3339 allows; anything else is bad.
            try:
                dt = datetime.fromisoformat(value.upper())
            except ValueError:
                raise ValueError("not a valid calendar date-time") from None
        return dt.timestamp()
    if type(value) is int:
        return value / 1000
    raise ValueError("expected an RFC 3339 string or integer epoch milliseconds")


def format_time(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-22T21:05:03.120Z``."""
    secs, ms = divmod(round(ts * 1000), 1000)
    t = time.gmtime(secs)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ms:03d}Z"
    )


# ---------------------------------------------------------------------------- decode


def decode_event(kind: str, raw: bytes, *, now: float, max_future_skew_s: float) -> dict[str, Any]:
    """Decode and validate one input message of ``kind`` (one of :data:`SOURCE_KINDS`).

    Returns the parsed object with ``time`` (epoch seconds of ``occurred_at``) and
    ``source`` (= ``kind``) added, and for web visits ``path`` derived from ``url`` when
    absent. Raises :class:`Rejected` for a message that belongs on the dead-letter topic
    and ``KeyError`` for an unknown ``kind`` (a programming error, not bad data).
    """
    validator = _VALIDATORS[kind]
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected("invalid_json", f"invalid JSON at byte {exc.pos}") from None
    if type(event) is not dict:
        raise Rejected("not_an_object", f"top-level JSON value is {_json_type(event)}")
    if not validator.is_valid(event):
        raise _explain(validator, event)
    try:
        t = parse_time(event["occurred_at"])
    except ValueError as exc:  # the schema admits a few strings Python cannot parse
        raise Rejected("bad_timestamp", f"/occurred_at: {exc}") from None
    if t < MIN_EVENT_TIME:
        raise Rejected("bad_timestamp", "/occurred_at: before 2000-01-01T00:00:00Z")
    if t > now + max_future_skew_s:
        raise Rejected(
            "bad_timestamp", f"/occurred_at: more than {max_future_skew_s:g}s in the future"
        )
    event["time"] = t
    event["source"] = kind
    if kind == "web" and "path" not in event:
        path = urlsplit(event["url"]).path
        event["path"] = path if path.startswith("/") else "/" + path
    return event


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _explain(validator: jsonschema_rs.Validator, event: dict[str, Any]) -> Rejected:
    """Why ``event`` fails ``validator``, without quoting any of its values."""
    try:
        errors = list(validator.iter_errors(event))
    except ValueError:  # jsonschema_rs cannot walk a value nested this deep to report
        return Rejected("schema_violation", "a value is nested too deeply")
    kinds: set[str] = set()
    parts: list[str] = []
    for error in errors:
        path = tuple(error.instance_path)
        keyword = str(error.schema_path[-1]) if error.schema_path else "schema"
        if path in _TYPE_FIELDS and keyword == "enum":
            kinds.add("unknown_event_type")
        elif path[:1] == ("occurred_at",):
            kinds.add("bad_timestamp")
        else:
            kinds.add("schema_violation")
        if len(parts) < MAX_DETAIL_ERRORS:
            parts.append(f"{_pointer(path)}: {keyword}{_expected(keyword, path, error.kind)}")
    if len(errors) > MAX_DETAIL_ERRORS:
        parts.append(f"and {len(errors) - MAX_DETAIL_ERRORS} more")
    # A specific reason only when it explains every error; mixed problems are plain
    # schema violations.
    reason = kinds.pop() if len(kinds) == 1 else "schema_violation"
    return Rejected(reason, "; ".join(parts)[:MAX_DETAIL_CHARS] or "schema violation")


def _pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 JSON pointer; ``(root)`` for the whole document."""
    out = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)
    return out or "(root)"


def _expected(
    keyword: str, path: tuple[str | int, ...], kind: jsonschema_rs.ValidationErrorKind
) -> str:
    """What the schema expected, taken from the schema side of the error only."""
    try:
        info = kind.as_dict()
    except Exception:  # an error kind without details
        return ""
    if keyword == "required":
        return f" {info.get('property')!s}"
    if keyword == "enum":
        options = info.get("options")
        if isinstance(options, list):
            return f" (expected one of {', '.join(map(str, options))})"
    elif keyword == "type":
        types = info.get("types")
        if isinstance(types, list):
            return f" (expected {' or '.join(map(str, types))})"
    elif keyword == "pattern":
        return f" (expected to match {info.get('pattern')!s})"
    elif keyword in ("minimum", "maximum", "minLength", "maxLength"):
        return f" (limit {info.get('limit')!s})"
    elif keyword == "anyOf" and path == ("occurred_at",):
        return " (expected an RFC 3339 date-time with offset, or epoch milliseconds since 2000)"
    return ""


# ---------------------------------------------------------------------------- encode

_TRANSITION_FIELDS: Final = (
    "event_id",
    "lead_id",
    "sequence",
    "from_stage",
    "to_stage",
    "direction",
    "cause",
    "trigger_event_id",
    "score",
    "breakdown",
    "fit_score",
    "grade",
    "bant",
    "reasons",
    "trigger_reasons",
    "engagement_reasons",
    "fit_reasons",
    "model_id",
    "model_version",
)
#: The lists of reasons a transition or a lead snapshot may carry.
_REASON_LISTS: Final = ("reasons", "trigger_reasons", "engagement_reasons", "fit_reasons")


def right_sized(value: bytes) -> bytes:
    """A copy of ``orjson.dumps``' output that holds only its bytes.

    orjson's bytes keep its whole output buffer (4 KiB at least, orjson >= 3.12): for
    any that are kept, not just sent (states in a memory:// store, messages the bench
    builds ahead), ~20x a ~200 B message.
    """
    return bytes(memoryview(value))


#: Decimals of the points people read (score, breakdown, fit, reasons): decayed sums
#: are floats like 12.99995988758411, exact only to the rounding of their arithmetic.
POINT_DECIMALS: Final = 2


def readable_points(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (a transition or a lead snapshot) with its points rounded to
    :data:`POINT_DECIMALS` and categories at 0.00 left out of the breakdown (a
    category nothing scored in reads as absent, not as a permanent 0.0).

    >>> readable_points({"score": 12.99995988758411, "breakdown": {"web": 13.0, "profile": 0.0}})
    {'score': 13.0, 'breakdown': {'web': 13.0}}
    """
    out = dict(body)
    for key in ("score", "fit_score"):
        if isinstance(out.get(key), float):
            out[key] = round(out[key], POINT_DECIMALS)
    if isinstance(out.get("breakdown"), dict):
        rounded = {k: round(v, POINT_DECIMALS) for k, v in out["breakdown"].items()}
        out["breakdown"] = {k: v for k, v in rounded.items() if v != 0.0}
    for key in _REASON_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [{**r, "points": round(r["points"], POINT_DECIMALS)} for r in out[key]]
    return out


def encode_transition(transition: Mapping[str, Any], *, emitted_at: float) -> bytes:
    """The ``lead.qualified`` message value (orjson bytes) for one stage change.

    ``transition["changed_at"]`` and ``emitted_at`` are epoch seconds; both become
    RFC 3339 UTC strings with milliseconds. Points are rounded (:func:`readable_points`).
    """
    out = readable_points({name: transition[name] for name in _TRANSITION_FIELDS})
    out["changed_at"] = format_time(transition["changed_at"])
    out["emitted_at"] = format_time(emitted_at)
    return orjson.dumps(out)


#: (source topic, key, value, headers) of one dead letter for events a lead lost.
LostEvents = tuple[str, bytes, bytes, list[tuple[str, bytes]]]


def lost_events(
    lead_id: str,
    held: Iterable[Mapping[str, int]],
    kept: Mapping[str, int],
    detail: str,
    *,
    failed_at: float,
) -> list[LostEvents]:
    """Dead letters for the events a lead lost when it fell back to a kept state.

    ``held`` are the ``applied`` positions of the states given up, ``kept`` those of
    the state the lead keeps. Per source topic-partition, one dead letter names the
    range of offsets whose events the lead may have lost: other leads' records share
    those offsets, so a replay picks the lead's own by key (docs/events.md).

    >>> [(t, v) for t, _, v, _ in lost_events("l1", [{"web:0": 9}], {"web:0": 4}, "x", failed_at=0)]
    [('web', b'{"lead_id":"l1","source":"web:0","first_offset":5,"last_offset":9}')]
    """
    last: dict[str, int] = {}
    for applied in held:
        for source, at in applied.items():
            if at > last.get(source, -1):
                last[source] = at
    out: list[LostEvents] = []
    for source, at in sorted(last.items()):
        first = kept.get(source, -1) + 1
        if first > at:
            continue
        topic, _, partition = source.rpartition(":")
        headers = dlq_headers(
            "processing_error",
            detail,
            topic=topic,
            partition=int(partition),
            offset=at,
            failed_at=failed_at,
        )
        value = orjson.dumps(
            {"lead_id": lead_id, "source": source, "first_offset": first, "last_offset": at}
        )
        out.append((topic, lead_id.encode(), value, headers))
    return out


def fit_dead_letter(
    value: bytes, headers: list[tuple[str, bytes]], max_bytes: int
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The dead letter's value and headers, truncated to ``max_bytes`` if longer.

    A value the dead-letter topic cannot take (its ``max.message.bytes``) would fail
    the produce, and with it the worker. A truncated one keeps its first
    ``max_bytes`` bytes; its headers say the original size and give its SHA-256, so
    the original can be found on the source topic (topic, partition, offset).

    >>> value, headers = fit_dead_letter(b"abcdef", [], 4)
    >>> value, headers[0], headers[1][1][:12]
    (b'abcd', ('leadstream.dlq.original_size', b'6'), b'bef57ec7f53a')
    """
    if len(value) <= max_bytes:
        return value, headers
    digest = hashlib.sha256(value).hexdigest().encode()
    extra = [(HEADER_ORIGINAL_SIZE, str(len(value)).encode()), (HEADER_SHA256, digest)]
    return value[:max_bytes], [*headers, *extra]


def dlq_headers(
    reason: str, detail: str, *, topic: str, partition: int, offset: int, failed_at: float
) -> list[tuple[str, bytes]]:
    """Kafka headers for a dead-lettered message (values UTF-8)."""
    return [
        (HEADER_REASON, reason.encode()),
        (HEADER_ERROR, (detail[:MAX_DETAIL_CHARS] or reason).encode()),
        (HEADER_TOPIC, topic.encode()),
        (HEADER_PARTITION, str(partition).encode()),
        (HEADER_OFFSET, str(offset).encode()),
        (HEADER_FAILED_AT, format_time(failed_at).encode()),
    ]
