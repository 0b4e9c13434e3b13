from __future__ import annotations

import math
import threading

import pytest

from scoring import LeadState, apply
from scoring import dispatch as dispatch_mod
from scoring.decay import rate_for, sign_changes

from .models import TEST_MODEL, small_model, web


def test_any_of_rules_and_memo_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    m = small_model(
        TEST_MODEL.replace(
            'match = { path = { glob = "/blog*" } }',
            'match = [{ path = { glob = "/blog*" } }, { referrer = { glob = "*news*" } }]',
        )
    )
    monkeypatch.setattr(dispatch_mod, "MEMO_LIMIT", 2)
    d = m.dispatch["web"]
    assert [r.id for r in d.match({"path": "/x", "referrer": "https://news.example"})] == ["w-blog"]
    for p in ("/a", "/b", "/c", "/blog/1"):
        assert [r.id for r in d.match({"path": p})] == (["w-blog"] if p == "/blog/1" else [])
    assert [r.id for r in d.match({"path": "/pricing/x"})] == ["w-pricing"]


def test_state_schema_version_and_repr() -> None:
    s = LeadState("L")
    s, _ = apply(s, web("/blog", 3.0), small_model())
    assert repr(s) == "LeadState('L', stage='cold', clock=3.0, events_seen=1)"
    d = s.to_dict()
    d["v"] = 3
    with pytest.raises(ValueError, match="unsupported LeadState schema version 3"):
        LeadState.from_dict(d)


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
