"""Per-lead state: encoding, versions, copies (scoring.state); properties over random
event sets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import LeadState, advance, apply, next_change_at
from scoring.state import cap_pairs

from .models import SIGNAL_MODEL, small_model, web
from .strategies import EXAMPLES as N
from .strategies import events

M = small_model()
#: What every v4 field holds (history, bot patterns, caps by value) gets exercised, and
#: v6's contributions (kept under a model whose outcomes reset scores).
S = small_model(SIGNAL_MODEL + '\n[outcomes.recycled]\nstage = "warm"\nreset = 0.5\n')


def run(evs: list[dict[str, Any]], model: Any = M) -> LeadState:
    s = LeadState("L")
    for e in evs:
        s, _ = apply(s, e, model)
    return s


def test_state_schema_version_and_repr() -> None:
    s = LeadState("L")
    s, _ = apply(s, web("/blog", 3.0), small_model())
    assert repr(s) == "LeadState('L', stage='cold', clock=3.0, events_seen=1)"
    d = s.to_dict()
    d["v"] = 7
    with pytest.raises(ValueError, match="unsupported LeadState schema version 7"):
        LeadState.from_dict(d)


@settings(max_examples=N, deadline=None)
@given(events(), events(max_size=5))
def test_to_dict_round_trip(evs: list[dict[str, Any]], more: list[dict[str, Any]]) -> None:
    s = LeadState("L")
    for e in evs:
        s, _ = apply(s, e, S)
    next_change_at(s, S)
    s.applied["web.visits:0"] = 41
    d = s.to_dict()
    assert d["v"] == 6
    restored = LeadState.from_dict(orjson.loads(orjson.dumps(d)))
    assert restored.to_dict() == d
    # Version 5 (before the contributions a late reset leaves out) reads without any.
    v5 = {k: v for k, v in d.items() if k != "contributions"}
    d = dict(d, contributions=[])
    assert LeadState.from_dict(orjson.loads(orjson.dumps(dict(v5, v=5)))).to_dict() == d
    # Version 4 (before stage entry times, SLAs and resets) reads with them empty.
    new_in_5 = ("entered", "since", "sla_due", "resets")
    v4 = {k: v for k, v in v5.items() if k not in new_in_5}
    d = dict(d, entered={}, since=None, sla_due=None, resets=[])
    assert LeadState.from_dict(orjson.loads(orjson.dumps(dict(v4, v=4)))).to_dict() == d
    # Version 3 (before the history, bot patterns and caps by value) reads with them
    # empty; versions 1 and 2 (before positions and the change count) with nothing
    # applied and no changes counted either.
    new_in_4 = ("caps_by", "history", "recent", "bots_filtered")
    v3 = {k: v for k, v in v4.items() if k not in new_in_4}
    d = dict(d, caps_by={}, history=[], recent=[], bots_filtered=0)
    assert LeadState.from_dict(orjson.loads(orjson.dumps(dict(v3, v=3)))).to_dict() == d
    v2 = {k: v for k, v in v3.items() if k not in ("applied", "changes")}
    d = dict(d, applied={}, changes=0)
    assert LeadState.from_dict(orjson.loads(orjson.dumps(dict(v2, v=2)))).to_dict() == d
    # Version 1 (cap windows as [t, id] pairs), in changelogs written before 2, too.
    v1 = dict(v2, v=1)
    v1["caps"] = {
        rid: {w: [list(p) for p in cap_pairs(flat)] for w, flat in wins.items()}
        for rid, wins in d["caps"].items()
    }
    assert LeadState.from_dict(orjson.loads(orjson.dumps(v1))).to_dict() == d
    s = LeadState.from_dict(orjson.loads(orjson.dumps(s.to_dict())))
    restored = LeadState.from_dict(orjson.loads(orjson.dumps(s.to_dict())))
    for e in more:
        e = dict(e, event_id="m" + e["event_id"], time=e["time"] + 30.0)
        s, ta = apply(s, e, S)
        restored, tb = apply(restored, e, S)
        assert ta == tb
    assert restored.to_dict() == s.to_dict()


@settings(max_examples=N, deadline=None)
@given(events(), st.booleans())
def test_dict_view_encodes_to_the_same_bytes_as_to_dict(
    evs: list[dict[str, Any]], with_next_change: bool
) -> None:
    s = run(evs, S)
    if with_next_change:
        next_change_at(s, S)
    view = orjson.dumps(s.to_dict_view(), option=orjson.OPT_NON_STR_KEYS)
    assert view == orjson.dumps(s.to_dict())


@settings(max_examples=N, deadline=None)
@given(events(), events(max_size=8), st.booleans())
def test_copy_is_independent_and_scores_like_the_original(
    evs: list[dict[str, Any]], more: list[dict[str, Any]], with_next_change: bool
) -> None:
    s = run(evs, S)
    if with_next_change:
        next_change_at(s, S)
    before = orjson.dumps(s.to_dict())
    c = s.copy()
    assert orjson.dumps(c.to_dict()) == before
    more = [dict(e, event_id="m" + e["event_id"], time=e["time"] + 30.0) for e in more]
    from_original, from_copy = [], []
    for e in more:  # changing the original leaves the copy as it was
        s, ts = apply(s, e, S)
        from_original.extend(ts)
    assert orjson.dumps(c.to_dict()) == before
    for e in more:  # and the copy scores on exactly like the original did
        c, ts = apply(c, e, S)
        from_copy.extend(ts)
    assert from_copy == from_original
    assert c.to_dict() == s.to_dict()
    c2 = c.copy()
    advance(c, 1e6, S)  # decay to the far future changes only the copy advanced
    assert c2.to_dict() == s.to_dict()
