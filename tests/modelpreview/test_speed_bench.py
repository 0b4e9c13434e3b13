"""``bench/preview_speed.py`` keeps running and reports what docs/model-preview.md says."""

from __future__ import annotations

import re

import pytest

from bench import preview_speed


def test_the_speed_bench_prints_events_per_second_per_jobs_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert preview_speed.main(["--events", "3000", "--leads", "300", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "export: 3,000 events over 300 leads" in out
    assert re.search(r"^scoring\.apply alone, one model, one core: +[\d,]+ events/s$", out, re.M)
    found = re.search(r"^jobs 1: +([\d,]+) events/s .* ([\d,]+) leads, ([\d,]+) would", out, re.M)
    assert found is not None
    rate, leads, moved = (int(g.replace(",", "")) for g in found.groups())
    assert rate > 0 and 0 < leads <= 300 and 0 <= moved <= leads
