"""Stage evaluation with hysteresis (scoring.stages)."""

from __future__ import annotations

import pytest

from scoring.stages import evaluate_stage

from .models import small_model

M = small_model()


@pytest.mark.parametrize(
    ("current", "score", "grade", "bant", "expected"),
    [
        ("cold", 19.9, "D", 0, "cold"),
        ("cold", 20.0, "D", 0, "warm"),
        ("cold", 60.0, "D", 0, "warm"),
        ("cold", 60.0, "B", 0, "mql"),
        ("cold", 85.0, "B", 2, "sql"),
        ("cold", 85.0, "B", 1, "mql"),
        ("warm", 10.0, "D", 0, "warm"),
        ("warm", 9.9, "D", 0, "cold"),
        ("mql", 40.0, "B", 0, "mql"),
        ("mql", 39.9, "B", 0, "warm"),
        ("mql", 9.0, "B", 0, "cold"),
        ("mql", 45.0, "C", 0, "warm"),
        ("sql", 65.0, "B", 2, "sql"),
        ("sql", 64.9, "B", 2, "mql"),
        ("sql", 70.0, "B", 1, "mql"),
        ("sql", 70.0, "D", 1, "warm"),
        ("disqualified", 70.0, "B", 0, "mql"),
    ],
)
def test_stage_hysteresis_table(
    current: str, score: float, grade: str, bant: int, expected: str
) -> None:
    assert evaluate_stage(M, current, score, grade, bant) == expected
