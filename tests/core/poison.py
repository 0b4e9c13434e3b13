"""A scoring bug on demand, for the tests of what an error while scoring leaves."""

from __future__ import annotations

from typing import Any

import pytest

import streams.core.pipeline as pipeline_module

#: The event id the engine fails on.
POISON = "poison"


def half_done_poison(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the engine fail on event ``POISON`` after changing the state in place, as
    a bug half-way through ``apply`` would."""
    real_apply = pipeline_module.apply

    def apply(state: Any, event: Any, model: Any) -> Any:
        if event["event_id"] == POISON:
            state.events_seen += 1000  # half of what the failed call did
            raise RecursionError("maximum recursion depth exceeded")
        return real_apply(state, event, model)

    monkeypatch.setattr(pipeline_module, "apply", apply)
