"""streams.core.statecodec: the stored-state format and its cached next-change tail.

``due_from_raw`` must agree with the full decode for every state the scoring library
can produce; ``encode_state`` writes exactly ``orjson.dumps(state.to_dict())``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import LeadState, ScoringModel, advance, apply, load_default_model, next_change_at
from streams.core.statecodec import (
    DUE_NOW,
    NOT_CACHED,
    decode_state,
    due_from_raw,
    encode_state,
    next_change_from_raw,
)
from streams.local.workload import sample_states
from tests.scoring.models import small_model
from tests.scoring.strategies import events

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
    state.model = SMALL.fingerprint
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


# ------------------------------------------------------------------------ the format


@settings(max_examples=300, deadline=None)
@given(events(max_size=40))
def test_every_write_encodes_the_current_state(evs: list[dict[str, Any]]) -> None:
    """encode_state encodes the state's own containers (tuples, int window keys)
    instead of to_dict's copies, and gets the same bytes."""
    state = LeadState("L")
    for event in evs:
        state, _ = apply(state, event, SMALL)
        assert encode_state(state) == orjson.dumps(state.to_dict())


def test_to_dict_ends_with_the_cached_tail_due_from_raw_reads() -> None:
    """The contract due_from_raw depends on: to_dict's last three keys, in order."""
    state = realistic_states(1)[0]
    next_change_at(state, DEFAULT)
    assert list(state.to_dict())[-3:] == ["next_change", "next_change_up", "next_change_valid"]
    assert list(state.to_dict_view()) == list(state.to_dict())
    assert next(iter(state.to_dict())) == "v"


def test_a_reordered_tail_is_not_read_as_cached() -> None:
    """If to_dict's order changed, due_from_raw must decline rather than misread."""
    state = realistic_states(1)[0]
    next_change_at(state, DEFAULT)
    d = state.to_dict()
    tail = {k: d.pop(k) for k in ("next_change_valid", "next_change_up", "next_change")}
    assert due_from_raw(orjson.dumps({**d, **tail})) is NOT_CACHED
    assert decode_state(orjson.dumps({**d, **tail})).to_dict() == state.to_dict()


def test_a_state_of_another_model_is_due_at_once() -> None:
    """Its cached next change is the old model's: a tick must migrate it first."""
    state = realistic_states(1)[0]
    assert state.model == DEFAULT.fingerprint
    next_change_at(state, DEFAULT)
    assert next_change_from_raw(encode_state(state), DEFAULT) == next_change_at(state, DEFAULT)
    state.model = "0123456789abcdef"
    assert next_change_from_raw(encode_state(state), DEFAULT) == DUE_NOW


def test_a_pending_sla_is_the_due_time_the_stored_tail_gives() -> None:
    from tests.scoring.models import SALES_MODEL, profile, web, webinar

    model = small_model(SALES_MODEL)
    s = LeadState("L")
    attrs = {"seniority": "vp", "budget_status": "planned", "decision_role": "decision_maker"}
    for e in [profile(0.0, "p", **attrs), web("/pricing", 0.1, "w1"), web("/pricing", 0.2, "w2")]:
        s, _ = apply(s, e, model)
    s, _ = apply(s, webinar("attended", 0.3, "wb"), model)
    assert s.stage == "sql"  # sales own it: no decay change, only the SLA at 100.3
    raw = encode_state(s)
    assert next_change_from_raw(raw, model) == pytest.approx(100.3)
    next_change_at(s, model)  # cached: the tail is read without decoding
    raw = encode_state(s)
    assert due_from_raw(raw) == pytest.approx(100.3)
    back = decode_state(raw)
    assert next_change_at(back, model) == pytest.approx(100.3)
    back, ts = advance(back, 200.0, model)
    assert [t["cause"] for t in ts] == ["sla_breach"]
