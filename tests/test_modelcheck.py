"""``leadstream model check``: valid models exit 0 with their differences; invalid 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main

DEFAULT = Path(__file__).resolve().parents[1] / "scoring" / "default_model.toml"


def test_a_valid_edit_prints_its_differences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = tmp_path / "edited.toml"
    edited.write_text(
        DEFAULT.read_text().replace('name = "mql"', 'name = "hot"\nrenamed_from = ["mql"]')
    )
    assert main(["model", "check", str(edited)]) == 0
    out = capsys.readouterr().out
    assert "valid (leadstream-default" in out
    assert "stage mql renamed to hot (its leads keep their place)" in out


def test_the_model_in_use_unchanged_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "check", str(DEFAULT), "--against", str(DEFAULT)]) == 0
    assert "no change that affects scoring" in capsys.readouterr().out


def test_an_invalid_model_exits_1_with_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\n')
    assert main(["model", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "invalid scoring model" in err and "stages: missing" in err
