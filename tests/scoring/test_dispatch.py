"""Which rules of a source match an event (scoring.dispatch)."""

from __future__ import annotations

import pytest

from scoring import dispatch as dispatch_mod

from .models import TEST_MODEL, small_model


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
