"""encode_state writes exactly ``orjson.dumps(state.to_dict())``: it encodes the
state's own containers (tuples, int window keys) instead of to_dict's copies."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings

from scoring import LeadState, apply
from streams.pipeline import encode_state
from tests.scoring.models import small_model
from tests.scoring.strategies import events

M = small_model()


@settings(max_examples=300, deadline=None)
@given(events(max_size=40))
def test_every_write_encodes_the_current_state(evs: list[dict[str, Any]]) -> None:
    state = LeadState("L")
    for event in evs:
        state, _ = apply(state, event, M)
        assert encode_state(state) == orjson.dumps(state.to_dict())
