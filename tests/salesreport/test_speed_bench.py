"""``bench/report_speed.py`` keeps running and prints what docs/kpis.md quotes."""

from __future__ import annotations

import re

import pytest

from bench import report_speed


def test_the_speed_bench_prints_each_step_and_the_rate(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_speed.main(["--changes", "4000", "--leads", "1000"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"^export: 4,000 stage changes and ([\d,]+) outcomes of ([\d,]+) leads", out)
    assert found is not None, out
    outcomes, leads = (int(g.replace(",", "")) for g in found.groups())
    assert outcomes > 0 and 0 < leads <= 4000
    steps = dict(re.findall(r"^(read|compute|rows|total): +([\d.]+) s", out, re.M))
    assert set(steps) == {"read", "compute", "rows", "total"}
    assert float(steps["total"]) == pytest.approx(
        sum(float(steps[s]) for s in ("read", "compute", "rows")), abs=0.02
    )
    assert re.search(r"^total: .* ([\d,]+) stage changes/s$", out, re.M)
    funnel = re.search(r"^funnel: \[(\d+), (\d+)", out, re.M)
    assert funnel is not None and int(funnel.group(1)) == leads
