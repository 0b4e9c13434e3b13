"""The published schemas and streams.core.contract: decode, reject (without PII), encode."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import jsonschema_rs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring import LeadState, apply, load_default_model
from scoring.engine import Cause
from scoring.model import OUTCOMES
from streams.core import contract

NOW = datetime(2026, 11, 22, 21, 5, tzinfo=UTC).timestamp()
SKEW = 300.0
SCHEMA_FILES = sorted(contract.SCHEMA_DIR.glob("*.schema.json"))
PII = "jane.doe+secret@example.org"

VALID: dict[str, dict[str, Any]] = {
    "web": {
        "event_id": "wv-1",
        "lead_id": "lead-000001",
        "occurred_at": "2026-11-22T21:00:00.250Z",
        "url": "https://www.example.com/pricing?plan=team#faq",
        "referrer": "https://www.google.com/",
        "duration_seconds": 12.5,
        "title": "Pricing",
    },
    "email": {
        "event_id": "em-1",
        "lead_id": "lead-000001",
        "occurred_at": "2026-11-22T22:00:00+01:00",
        "action": "click",
        "campaign_id": "nurture-1",
        "link": "https://www.example.com/demo",
    },
    "webinar": {
        "event_id": "wb-1",
        "lead_id": "lead-000001",
        "occurred_at": 1795381000000,
        "action": "attended",
        "webinar_id": "wbn-1",
        "minutes_attended": 45,
    },
    "profile": {
        "event_id": "pf-1",
        "lead_id": "lead-000001",
        "occurred_at": "2026-11-22T20:00:00Z",
        "attributes": {"seniority": "vp", "company_size": 1200, "country": "US", "x-crm": 1},
    },
    "outcome": {
        "event_id": "crm-1",
        "lead_id": "lead-000001",
        "occurred_at": "2026-11-22T20:30:00Z",
        "outcome": "rejected",
        "reason": "no budget",
        "owner": "rep-7",
    },
}


def decode(kind: str, value: object) -> dict[str, Any]:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return contract.decode_event(kind, raw, now=NOW, max_future_skew_s=SKEW)


def rejected(kind: str, value: object) -> contract.Rejected:
    with pytest.raises(contract.Rejected) as info:
        decode(kind, value)
    assert info.value.reason in contract.REASONS
    return info.value


def with_(kind: str, **changes: Any) -> dict[str, Any]:
    return {**VALID[kind], **changes}


def without(kind: str, key: str) -> dict[str, Any]:
    return {k: v for k, v in VALID[kind].items() if k != key}


# ---------------------------------------------------------------------------- schemas


def test_one_schema_per_topic_and_the_dlq_headers() -> None:
    names = {p.name.removesuffix(".schema.json") for p in SCHEMA_FILES}
    assert names == {
        "web.visits",
        "email.events",
        "webinar.events",
        "lead.profiles",
        "lead.outcomes",
        "lead.qualified",
        "leadstream.dlq.headers",
    }
    assert set(contract.KIND_SCHEMAS.values()) <= names
    assert contract.SOURCE_KINDS == ("web", "email", "webinar", "profile", "outcome")


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_is_valid_draft_2020_12_with_examples(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + path.name)
    assert schema["title"] and schema["description"]
    jsonschema_rs.meta.validate(schema)
    validator = contract.compile_schema(schema)
    assert schema["examples"], "every schema documents at least one example"
    for example in schema["examples"]:
        validator.validate(example)
    for name, prop in schema["properties"].items():
        assert "type" in prop or "enum" in prop or "anyOf" in prop, name


def test_input_schemas_share_the_common_fields_and_stay_open() -> None:
    schemas = [contract.load_schema(n) for n in contract.KIND_SCHEMAS.values()]
    first = schemas[0]
    for schema in schemas:
        assert schema["additionalProperties"] is True
        assert {"event_id", "lead_id", "occurred_at"} <= set(schema["required"])
        for key in ("event_id", "lead_id", "occurred_at"):
            assert schema["properties"][key] == first["properties"][key], key


def test_output_schema_is_closed_and_fully_required() -> None:
    schema = contract.load_schema(contract.QUALIFIED_SCHEMA)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])


def test_dlq_reason_enum_matches_the_code() -> None:
    schema = contract.load_schema(contract.DLQ_HEADERS_SCHEMA)
    assert tuple(schema["properties"][contract.HEADER_REASON]["enum"]) == contract.REASONS
    assert set(schema["required"]) == {
        contract.HEADER_REASON,
        contract.HEADER_ERROR,
        contract.HEADER_TOPIC,
        contract.HEADER_PARTITION,
        contract.HEADER_OFFSET,
        contract.HEADER_FAILED_AT,
    }


def test_outcome_enum_and_cause_enum_match_the_code() -> None:
    outcomes = contract.load_schema("lead.outcomes")["properties"]["outcome"]["enum"]
    assert tuple(outcomes) == OUTCOMES  # the model file and the sales report read these
    causes = contract.load_schema("lead.qualified")["properties"]["cause"]["enum"]
    assert tuple(causes) == get_args(Cause)


@pytest.mark.parametrize("kind", contract.SOURCE_KINDS)
def test_schema_examples_decode(kind: str) -> None:
    schema = contract.load_schema(contract.KIND_SCHEMAS[kind])
    for example in schema["examples"]:
        event = decode(kind, example)
        assert event["source"] == kind


# ----------------------------------------------------------------------------- decode


@pytest.mark.parametrize("kind", contract.SOURCE_KINDS)
def test_valid_events_decode(kind: str) -> None:
    event = decode(kind, VALID[kind])
    assert event["source"] == kind
    assert event["lead_id"] == "lead-000001"
    expected = VALID[kind]["occurred_at"]
    if isinstance(expected, str):
        assert event["time"] == datetime.fromisoformat(expected).timestamp()
    else:
        assert event["time"] == expected / 1000


def test_web_path_is_derived_from_the_url_only_when_absent() -> None:
    assert decode("web", VALID["web"])["path"] == "/pricing"
    assert decode("web", with_("web", path="/kept"))["path"] == "/kept"
    assert decode("web", with_("web", url="https://www.example.com"))["path"] == "/"
    assert decode("web", with_("web", url="pricing"))["path"] == "/pricing"


@pytest.mark.parametrize("kind", ["web", "email"])
def test_trackers_fields_and_web_actions_are_accepted(kind: str) -> None:
    fields = {"user_agent": "Mozilla/5.0", "ip": "2001:db8::1", "ip_hash": "ab12", "is_bot": False}
    if kind == "web":
        fields |= {"action": "form_submit", "form_id": "demo-request", "asset": "roi.pdf"}
    assert decode(kind, with_(kind, **fields)).items() >= fields.items()


def test_points_in_every_list_of_reasons_are_rounded() -> None:
    reason = {"rule_id": "r", "description": "d", "points": 12.99995988758411}
    body = {key: [reason] for key in contract._REASON_LISTS}
    assert all(v == [{**reason, "points": 13.0}] for v in contract.readable_points(body).values())


def test_unknown_fields_are_kept() -> None:
    assert decode("email", with_("email", utm_source="x"))["utm_source"] == "x"


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        contract.decode_event("sms", b"{}", now=NOW, max_future_skew_s=SKEW)


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("web", b"\x8b\x1f binary garbage", "invalid_json"),
        ("web", b'{"event_id": "x", ', "invalid_json"),
        ("web", b"", "invalid_json"),
        ("web", b"[1, 2, 3]", "not_an_object"),
        ("email", b'"click"', "not_an_object"),
        ("web", without("web", "lead_id"), "schema_violation"),
        ("web", without("web", "url"), "schema_violation"),
        ("web", with_("web", duration_seconds="long"), "schema_violation"),
        ("web", with_("web", path="pricing"), "schema_violation"),
        ("email", with_("email", action="forwarded"), "unknown_event_type"),
        ("webinar", with_("webinar", action="left_early"), "unknown_event_type"),
        ("web", with_("web", action="scrolled"), "unknown_event_type"),
        ("outcome", with_("outcome", outcome="ghosted"), "unknown_event_type"),
        ("outcome", with_("outcome", amount=-1), "schema_violation"),
        ("outcome", with_("outcome", currency="eur"), "schema_violation"),
        ("outcome", without("outcome", "outcome"), "schema_violation"),
        ("web", with_("web", is_bot="yes"), "schema_violation"),
        ("email", with_("email", user_agent=["Mozilla"]), "schema_violation"),
        ("web", with_("web", ip="1" * 46), "schema_violation"),
        ("web", with_("web", user_agent="x" * 1025), "schema_violation"),
        ("email", with_("email", action=3), "schema_violation"),
        ("email", {**without("email", "campaign_id"), "action": "x"}, "schema_violation"),
        ("profile", with_("profile", attributes={"country": "usa"}), "schema_violation"),
        ("profile", with_("profile", attributes={"company_size": 10.5}), "schema_violation"),
        ("profile", with_("profile", attributes=[]), "schema_violation"),
        ("web", without("web", "occurred_at"), "schema_violation"),
        ("web", with_("web", occurred_at="2026-11-22T21:00:00"), "bad_timestamp"),
        ("web", with_("web", occurred_at="2026-11-22 21:00:00Z"), "bad_timestamp"),
        ("web", with_("web", occurred_at="20261122T210000Z"), "bad_timestamp"),
        ("web", with_("web", occurred_at="2026-02-30T21:00:00Z"), "bad_timestamp"),
        ("web", with_("web", occurred_at="1970-01-01T00:00:01Z"), "bad_timestamp"),
        ("web", with_("web", occurred_at=86_400_000), "bad_timestamp"),
        ("web", with_("web", occurred_at=1795381000.5), "bad_timestamp"),
        ("web", with_("web", occurred_at=True), "bad_timestamp"),
        ("web", with_("web", occurred_at="2031-01-01T00:00:00Z"), "bad_timestamp"),
        ("web", with_("web", occurred_at=round((NOW + SKEW + 1) * 1000)), "bad_timestamp"),
    ],
)
def test_each_reason_from_a_realistic_bad_message(kind: str, value: object, reason: str) -> None:
    assert rejected(kind, value).reason == reason


def test_future_skew_boundary() -> None:
    at_limit = with_("web", occurred_at=round((NOW + SKEW) * 1000))
    assert decode("web", at_limit)["time"] == NOW + SKEW


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("email", with_("email", action=PII)),
        ("web", with_("web", lead_id={"email": PII})),
        ("web", with_("web", duration_seconds=PII)),
        ("web", with_("web", path=PII)),
        ("profile", with_("profile", attributes={"country": PII, "seniority": PII})),
        ("profile", with_("profile", attributes={"company_size": PII})),
        ("web", with_("web", occurred_at=PII)),
        ("web", with_("web", occurred_at="1999-12-31T23:59:59Z")),
        ("web", {PII: PII}),
        ("web", [PII]),
        ("web", f'{{"lead_id": "{PII}", oops}}'.encode()),
    ],
)
def test_detail_never_quotes_the_bad_value(kind: str, value: object) -> None:
    error = rejected(kind, value)
    assert error.detail
    for fragment in (PII, "jane", "1999", "secret"):
        assert fragment not in error.detail
        assert fragment not in str(error)
    assert len(error.detail) <= contract.MAX_DETAIL_CHARS


def test_detail_names_the_path_and_keyword() -> None:
    error = rejected("profile", with_("profile", attributes={"country": PII}))
    assert "/attributes/country" in error.detail
    assert "pattern" in error.detail
    missing = rejected("web", without("web", "lead_id"))
    assert "required" in missing.detail and "lead_id" in missing.detail


def test_epoch_ms_and_rfc3339_give_the_same_time() -> None:
    ms = 1795381503120
    iso = "2026-11-22T21:05:03.120Z"
    shifted = "2026-11-22T16:05:03.120-05:00"
    times = {decode("web", with_("web", occurred_at=v))["time"] for v in (ms, iso, shifted)}
    assert times == {1795381503.12}


def test_parse_time_rejects_what_it_cannot_know() -> None:
    for bad in ("2026-11-22T21:05:03", "yesterday", 1.5, None, True, b"1"):
        with pytest.raises(ValueError):
            contract.parse_time(bad)
    assert contract.parse_time("2026-11-22t21:05:03z") == contract.parse_time(
        "2026-11-22T21:05:03Z"
    )


timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2026, 11, 22, 21, 0)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(
    moment=timestamps,
    tz=offsets,
    kind=st.sampled_from(contract.SOURCE_KINDS),
    lead_id=st.text(min_size=1, max_size=128),
    event_id=st.text(min_size=1, max_size=128),
    as_ms=st.booleans(),
)
def test_any_valid_event_decodes_and_round_trips_its_time(
    moment: datetime, tz: timezone, kind: str, lead_id: str, event_id: str, as_ms: bool
) -> None:
    utc = moment.replace(tzinfo=UTC)
    ms = round(utc.timestamp() * 1000)
    occurred: object = ms if as_ms else utc.astimezone(tz).isoformat(timespec="milliseconds")
    event = decode(
        kind, {**VALID[kind], "lead_id": lead_id, "event_id": event_id, "occurred_at": occurred}
    )
    assert event["time"] == ms / 1000
    assert event["lead_id"] == lead_id
    assert contract.format_time(event["time"]) == utc.strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{utc.microsecond // 1000:03d}Z"
    )


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_format_time_is_rfc3339_utc_millis_and_parses_back(ts: float) -> None:
    text = contract.format_time(ts)
    assert len(text) == 24 and text.endswith("Z")
    assert abs(contract.parse_time(text) - ts) <= 0.0005 + 1e-6


# ----------------------------------------------------------------------------- encode


def _real_transition() -> dict[str, Any]:
    """A stage change produced by the scoring engine from decoded events."""
    model = load_default_model()
    state = LeadState("lead-000001")
    base = NOW - 600
    events: list[tuple[str, dict[str, Any]]] = [
        ("profile", {**VALID["profile"], "occurred_at": round(base * 1000)}),
        *(
            (
                "web",
                {**VALID["web"], "event_id": f"wv-{i}", "occurred_at": round((base + i) * 1000)},
            )
            for i in range(1, 4)
        ),
        ("web", {**VALID["web"], "event_id": "wv-demo", "url": "https://x.example/demo"}),
        ("webinar", VALID["webinar"]),
    ]
    transitions: list[Any] = []
    for kind, value in events:
        state, out = apply(state, decode(kind, value), model)
        transitions.extend(out)
    assert transitions, "the fixture should move the lead at least one stage"
    return dict(transitions[-1])


def test_encoded_transition_validates_against_the_published_schema() -> None:
    transition = _real_transition()
    validator = contract.compile_schema(contract.load_schema(contract.QUALIFIED_SCHEMA))
    raw = contract.encode_transition(transition, emitted_at=NOW + 0.12)
    message = orjson.loads(raw)
    validator.validate(message)
    assert message["emitted_at"] == "2026-11-22T21:05:00.120Z"
    assert contract.parse_time(message["changed_at"]) == pytest.approx(
        transition["changed_at"], abs=0.0005
    )
    assert message["event_id"] == transition["event_id"]


def test_encoded_decay_transition_with_null_trigger_validates() -> None:
    transition = {**_real_transition(), "trigger_event_id": None, "cause": "decay"}
    validator = contract.compile_schema(contract.load_schema(contract.QUALIFIED_SCHEMA))
    validator.validate(orjson.loads(contract.encode_transition(transition, emitted_at=NOW)))


def test_encode_drops_fields_outside_the_contract() -> None:
    transition = {**_real_transition(), "internal": 1}
    assert "internal" not in orjson.loads(contract.encode_transition(transition, emitted_at=NOW))


# -------------------------------------------------------------------------------- dlq


def test_dlq_headers_validate_and_carry_no_value() -> None:
    error = rejected("email", with_("email", action=PII))
    headers = contract.dlq_headers(
        error.reason, error.detail, topic="email.events", partition=3, offset=42, failed_at=NOW
    )
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in headers)
    as_map = {k: v.decode() for k, v in headers}
    validator = contract.compile_schema(contract.load_schema(contract.DLQ_HEADERS_SCHEMA))
    validator.validate(as_map)
    assert as_map[contract.HEADER_REASON] == "unknown_event_type"
    assert as_map[contract.HEADER_PARTITION] == "3"
    assert as_map[contract.HEADER_OFFSET] == "42"
    assert as_map[contract.HEADER_FAILED_AT] == "2026-11-22T21:05:00.000Z"
    assert PII.encode() not in b"".join(v for _, v in headers)
