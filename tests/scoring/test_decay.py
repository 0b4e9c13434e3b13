"""Exact decay and its root finder (scoring.decay)."""

from __future__ import annotations

import itertools
import math
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.decay import rate_for, sign_changes

from .strategies import EXAMPLES as N


def test_sign_changes_of_a_constant_is_empty() -> None:
    assert sign_changes([], [], 3.0, 1e-9) == []


def test_sign_changes_near_the_subnormal_range_ends() -> None:
    """The closed form's root is seconds before the computed g changes side here;
    stepping by tol from it ran for hours (found by hypothesis)."""
    c, k, mu, tol = 2.220446049250313e-16, -5e-324, rate_for(7.0), 1e-9
    found: list[list[float]] = []
    search = threading.Thread(target=lambda: found.append(sign_changes([c], [mu], k, tol)))
    search.daemon = True  # a regression would spin on: let the test fail, not hang
    search.start()
    search.join(timeout=10.0)
    assert found, "sign_changes did not return within 10 s"
    [x] = found[0]

    def side(at: float) -> bool:
        return c * math.exp(-mu * at) + k >= 0

    assert side(x) != side(0.0)
    assert side(x - tol) == side(0.0)  # within tol after the change


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
