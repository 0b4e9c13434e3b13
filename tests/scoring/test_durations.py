"""Durations in the model file (scoring.durations)."""

from __future__ import annotations

import pytest

from scoring.durations import parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30d", 2592000.0),
        ("12h", 43200.0),
        ("15m", 900.0),
        ("90s", 90.0),
        ("1.5s", 1.5),
        (90, 90.0),
        (2.5, 2.5),
        (".5h", 1800.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["1x", "", "d", "-3s", True, None, -1, float("inf"), [1]])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)
