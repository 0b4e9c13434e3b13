"""encode_state writes exactly ``orjson.dumps(state.to_dict())``, whatever the engine
changed since the last write (it encodes the state's own containers, not copies)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import LeadState, apply
from streams.pipeline import decode_state, encode_state
from tests.scoring.models import small_model
from tests.scoring.strategies import events

M = small_model()


def written(state: LeadState) -> bytes:
    raw = encode_state(state)
    assert raw == orjson.dumps(state.to_dict())
    return raw


@settings(max_examples=300, deadline=None)
@given(
    events(max_size=40),
    st.lists(st.sampled_from(["write", "claim", "write claimed", "reload", ""]), max_size=40),
)
def test_every_write_encodes_the_current_state(
    evs: list[dict[str, Any]], between: list[str]
) -> None:
    # Writes at random points, with what a worker does between them: a window
    # claims a copy before a batch changes the lead, and writes that copy later, in
    # any order with the lead's own writes; or the state is read back from the store.
    state = LeadState.new("L")
    claimed: LeadState | None = None
    for i, event in enumerate(evs):
        state, _ = apply(state, event, M)
        step = between[i] if i < len(between) else ""
        if step == "write":
            written(state)
        elif step == "claim" and claimed is None:
            claimed = state.copy()
        elif step == "write claimed" and claimed is not None:
            written(claimed)
            claimed = None
        elif step == "reload":
            state = decode_state(written(state))
    written(state)
    if claimed is not None:
        written(claimed)


def test_pruned_and_new_windows_are_encoded_again() -> None:
    # w-pricing: at most 2 per 10 s window; windows older than max_lateness are pruned
    state = LeadState.new("L")
    for t in range(0, 600, 5):
        event = {"event_id": f"p{t}", "lead_id": "L", "source": "web", "time": float(t)}
        state, _ = apply(state, {**event, "path": "/pricing", "url": "https://x/pricing"}, M)
        written(state)
    assert len(state.caps["w-pricing"]) < 60  # pruned along the way
