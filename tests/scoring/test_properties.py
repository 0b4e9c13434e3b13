"""Properties of the engine over random event sets (>= 300 examples each)."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import LeadState, advance, apply, next_change_at, next_change_by
from scoring.decay import rate_for, sign_changes
from scoring.engine import breakdown_at, cap_insert, score_at
from scoring.stages import evaluate_stage
from scoring.state import cap_pairs

from .models import small_model
from .strategies import events

M = small_model()
N = 300


def run(evs: list[dict[str, Any]]) -> LeadState:
    s = LeadState("L")
    for e in evs:
        s, _ = apply(s, e, M)
    return s


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=N, deadline=None)
@given(events(), st.randoms(use_true_random=False))
def test_order_independence(evs: list[dict[str, Any]], rnd: random.Random) -> None:
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    a, b = run(evs), run(shuffled)
    t = 70.0
    assert close(score_at(a, M, t), score_at(b, M, t))
    ba, bb = breakdown_at(a, M, t), breakdown_at(b, M, t)
    assert all(close(ba[k], bb[k]) for k in ba)
    assert a.profile == b.profile
    assert (a.fit_points, a.grade, a.bant, a.disqualifier) == (
        b.fit_points,
        b.grade,
        b.bant,
        b.disqualifier,
    )
    assert a.events_seen == b.events_seen == len(evs)
    for rid in a.rules.keys() | b.rules.keys():
        rate = M.rule_by_id[rid].rate  # type: ignore[union-attr]
        va = a.rules.get(rid, [0.0, 0.0])
        vb = b.rules.get(rid, [0.0, 0.0])
        assert close(va[0] * math.exp((va[1] - t) * rate), vb[0] * math.exp((vb[1] - t) * rate))


@settings(max_examples=N, deadline=None)
@given(events(), st.data())
def test_duplicates_are_idempotent(evs: list[dict[str, Any]], data: Any) -> None:
    dups = data.draw(st.lists(st.sampled_from(evs), max_size=10))
    mixed = list(evs)
    for d in dups:
        mixed.insert(data.draw(st.integers(0, len(mixed))), dict(d))
    a, b = run(evs), run(mixed)
    assert b.events_seen == a.events_seen == len(evs)
    assert a.to_dict() == b.to_dict() or (
        close(score_at(a, M, 70.0), score_at(b, M, 70.0)) and a.profile == b.profile
    )


@settings(max_examples=N, deadline=None)
@given(events(positive_only=True), st.lists(st.floats(0.0, 500.0), min_size=2, max_size=8))
def test_decay_is_monotone_without_events(evs: list[dict[str, Any]], offsets: list[float]) -> None:
    s = run(evs)
    clock = s.clock
    assert clock is not None
    scores = [score_at(s, M, clock + dt) for dt in sorted(offsets)]
    assert all(x >= y for x, y in itertools.pairwise(scores))
    assert all(x >= 0 for x in scores)


@settings(max_examples=N, deadline=None)
@given(events())
def test_caps_are_never_exceeded(evs: list[dict[str, Any]]) -> None:
    s = run(evs)
    for rid, windows in s.caps.items():
        rule = M.rule_by_id[rid]
        for w, flat in windows.items():
            counted = cap_pairs(flat)
            assert len(counted) <= rule.cap_count  # type: ignore[union-attr]
            assert counted == sorted(counted)
            assert all(math.floor(t / rule.cap_per) == w for t, _ in counted)  # type: ignore[union-attr]
    # independently: the capped rule is worth exactly its earliest N per window
    pricing = sorted(
        (e["time"], e["event_id"])
        for e in evs
        if e["source"] == "web" and e["path"].startswith("/pricing")
    )
    per_window: dict[int, list[tuple[float, str]]] = {}
    for t, eid in pricing:
        per_window.setdefault(math.floor(t / 10.0), []).append((t, eid))
    expected = sum(
        30.0 * 2 ** (-(70.0 - t) / 10.0) for lst in per_window.values() for t, _ in lst[:2]
    )
    acc = s.rules.get("w-pricing", [0.0, 0.0])
    assert close(acc[0] * 2 ** (-(70.0 - acc[1]) / 10.0), expected)


@settings(max_examples=N, deadline=None)
@given(events())
def test_next_change_at_agrees_with_advance(evs: list[dict[str, Any]]) -> None:
    s = run(evs)
    clock = s.clock
    assert clock is not None
    nc = next_change_at(s, M)
    if nc is None:
        _far, ts = advance(s.copy(), clock + 1e4, M)
        assert ts == []
        return
    assert nc >= clock
    delta = 1e-6
    stage = s.stage
    if nc - delta > clock:
        before, ts = advance(s.copy(), nc - delta, M)
        assert ts == [] and before.stage == stage
        # no crossing is skipped: direct evaluation on a grid up to just before
        for i in range(41):
            t = clock + (nc - delta - clock) * i / 40
            got = evaluate_stage(M, stage, score_at(s, M, t), s.grade, s.bant_count)
            assert got == stage, (t, nc)
    after, ts = advance(s.copy(), nc + delta, M)
    assert ts and ts[0]["changed_at"] == nc and ts[0]["cause"] == "decay"
    assert ts[0]["from_stage"] == stage and after.stage != stage
    direct = evaluate_stage(M, stage, score_at(s, M, nc + delta), s.grade, s.bant_count)
    assert direct == ts[0]["to_stage"]


@settings(max_examples=N, deadline=None)
@given(
    events(),
    st.floats(min_value=-50.0, max_value=500.0),
    st.booleans(),
    st.sampled_from(["as scored", "copied", "decoded"]),
)
def test_next_change_by_is_next_change_at_cut_at_until(
    evs: list[dict[str, Any]], offset: float, from_change: bool, how: str
) -> None:
    """Whatever the bound cached (fresh from scoring, dropped by a copy or a decode),
    the cheap answer is the exact next change when it is due by ``until``, else None.
    ``until`` is drawn around the clock, or around the change itself (edges)."""
    s = run(evs)
    if how == "copied":
        s = s.copy()
    elif how == "decoded":
        s = LeadState.from_dict(orjson.loads(orjson.dumps(s.to_dict())))
    clock = s.clock
    assert clock is not None
    exact = next_change_at(s.copy(), M)
    # Near the change: from 0.5 s before it to 5 s after.
    until = exact + offset / 100 if from_change and exact is not None else clock + offset
    got = next_change_by(s, M, until)
    assert got == (exact if exact is not None and exact <= until else None)


@settings(max_examples=N, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 1.0, 2.5]), st.sampled_from("abcd")), max_size=12),
    st.integers(min_value=1, max_value=4),
)
def test_cap_insert_keeps_what_insort_on_pairs_keeps(
    arrivals: list[tuple[float, str]], cap_count: int
) -> None:
    # The reference: the window as a list of pairs (schema version 1), and the
    # equal pairs a re-sent event makes once the dedup window has forgotten its id.
    pairs: list[tuple[float, str]] = []
    flat: list[Any] = []
    for t, eid in arrivals:
        expected_drop: float | None = None
        if len(pairs) < cap_count:
            bisect.insort(pairs, (t, eid))
            expected_admit = True
        elif (t, eid) < pairs[-1]:
            expected_drop = pairs.pop()[0]
            bisect.insort(pairs, (t, eid))
            expected_admit = True
        else:
            expected_admit = False
        got = cap_insert(flat, t, eid, cap_count)
        assert (got is not None) == expected_admit
        if got is not None:
            assert got[1] == expected_drop
            assert got[0] is not flat  # a new list: copies of the state share the old one
            flat = got[0]
        assert cap_pairs(flat) == pairs


@settings(max_examples=N, deadline=None)
@given(events(), events(max_size=5))
def test_to_dict_round_trip(evs: list[dict[str, Any]], more: list[dict[str, Any]]) -> None:
    s = run(evs)
    next_change_at(s, M)
    d = s.to_dict()
    assert d["v"] == 2
    restored = LeadState.from_dict(orjson.loads(orjson.dumps(d)))
    assert restored.to_dict() == d
    # Version 1 (cap windows as [t, id] pairs), in changelogs written before 2, reads
    # as the same state.
    v1 = dict(d, v=1)
    v1["caps"] = {
        rid: {w: [list(p) for p in cap_pairs(flat)] for w, flat in wins.items()}
        for rid, wins in d["caps"].items()
    }
    assert LeadState.from_dict(orjson.loads(orjson.dumps(v1))).to_dict() == d
    for e in more:
        e = dict(e, event_id="m" + e["event_id"], time=e["time"] + 30.0)
        s, ta = apply(s, e, M)
        restored, tb = apply(restored, e, M)
        assert ta == tb
    assert restored.to_dict() == s.to_dict()


@settings(max_examples=N, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-100, 100), st.sampled_from([1.0, 2.0, 3.0, 5.0, 7.0])),
        min_size=1,
        max_size=4,
        unique_by=lambda x: x[1],
    ),
    st.floats(-50, 50),
)
def test_sign_changes_match_a_dense_scan(terms: list[tuple[float, float]], k: float) -> None:
    cs = [c for c, _ in terms]
    mus = [rate_for(h) for _, h in terms]

    def g(x: float) -> float:
        return k + sum(c * math.exp(-m * x) for c, m in zip(cs, mus, strict=True))

    roots = sign_changes(cs, mus, k, 1e-9)
    assert roots == sorted(roots)
    for r in roots:  # each is a change of side
        assert (g(max(0.0, r - 1e-6)) >= 0) != (g(r) >= 0) or abs(g(r)) < 1e-6
    # a scan finds no change the root finder missed (between roots the side is constant)
    edges = [0.0, *roots, 200.0]
    for a, b in itertools.pairwise(edges):
        if b - a < 1e-3:
            continue
        xs = [a + (b - a) * (i + 0.5) / 50 for i in range(50)]
        sides = {g(x) >= 0 for x in xs if abs(g(x)) > 1e-9}
        assert len(sides) <= 1, (a, b)


@settings(max_examples=N, deadline=None)
@given(events(), st.booleans())
def test_dict_view_encodes_to_the_same_bytes_as_to_dict(
    evs: list[dict[str, Any]], with_next_change: bool
) -> None:
    s = run(evs)
    if with_next_change:
        next_change_at(s, M)
    view = orjson.dumps(s.to_dict_view(), option=orjson.OPT_NON_STR_KEYS)
    assert view == orjson.dumps(s.to_dict())


@settings(max_examples=N, deadline=None)
@given(events(), events(max_size=8), st.booleans())
def test_copy_is_independent_and_scores_like_the_original(
    evs: list[dict[str, Any]], more: list[dict[str, Any]], with_next_change: bool
) -> None:
    s = run(evs)
    if with_next_change:
        next_change_at(s, M)
    before = orjson.dumps(s.to_dict())
    c = s.copy()
    assert orjson.dumps(c.to_dict()) == before
    more = [dict(e, event_id="m" + e["event_id"], time=e["time"] + 30.0) for e in more]
    from_original, from_copy = [], []
    for e in more:  # changing the original leaves the copy as it was
        s, ts = apply(s, e, M)
        from_original.extend(ts)
    assert orjson.dumps(c.to_dict()) == before
    for e in more:  # and the copy scores on exactly like the original did
        c, ts = apply(c, e, M)
        from_copy.extend(ts)
    assert from_copy == from_original
    assert c.to_dict() == s.to_dict()
    c2 = c.copy()
    advance(c, 1e6, M)  # decay to the far future changes only the copy advanced
    assert c2.to_dict() == s.to_dict()
