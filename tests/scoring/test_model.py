"""The model's types (scoring.model), as the loader compiles them."""

from __future__ import annotations

from .models import small_model


def test_small_model_compiles() -> None:
    m = small_model()
    assert [r.id for r in m.rules_by_source["web"]] == ["w-pricing", "w-blog", "w-careers"]
    assert repr(m.rules[0]) == "Rule('w-pricing', web, +30)"
    assert repr(m.fit_rules[0]) == "FitRule('f-senior', +20)"
    assert repr(m.stages[1]) == "Stage('warm', entry=20, exit=10)"
