"""The Kafka-free bench scripts keep running, and what they count holds together."""

from __future__ import annotations

import re

import pytest

from bench import bench_scoring, live_cost, state_writes
from bench.latency import slowest_spans
from bench.worker import parse_histogram


def test_state_writes_counts_fewer_writes_per_event_in_larger_windows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 3,000 is a multiple of 100: each lead a large window writes is touched in at
    # least one of the small windows it is made of, so small windows write at least
    # as often.
    assert state_writes.main(["--events", "3000", "--leads", "300", "--windows", "100,3000"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert [w for w, *_ in rows] == ["100", "3,000"]
    small, large = (float(r[1]) for r in rows)
    assert 0 < large <= small <= 1
    assert large <= 300 / 3000  # one window: one write per distinct lead, not per event
    shares = re.search(r"bytes of the final states: (.*)", out)
    assert shares is not None and "seen" in shares.group(1)
    layouts = re.findall(r"^layout +(.+?): ([\d,]+) B/state, ([\d.]+) us to encode$", out, re.M)
    assert [name for name, *_ in layouts] == list(state_writes.LAYOUTS)


def test_live_cost_scores_both_phases_and_reports_the_hot_states(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--events", "4000", "--leads", "200", "--rate", "2000", "--seconds", "2"]
    assert live_cost.main(args) == 0
    out = capsys.readouterr().out
    rows = dict(
        (name, (int(n.replace(",", "")), float(writes)))
        for name, n, writes in re.findall(
            r"^(backlog|live) +([\d,]+) +[\d.]+ +[\d.]+ +([\d.]+) +[\d.]+$", out, re.M
        )
    )
    assert rows["backlog"][0] == 4000 and rows["live"][0] == 4000
    # A write per lead per window: at most one per event, and at least one per window.
    assert 0 < rows["backlog"][1] <= 1 and 0 < rows["live"][1] <= 1
    assert "batches of 20 against 4,000, windows of 4,000" in out
    ids = [int(n) for n in re.findall(r"B encoded, (\d+) dedup ids", out)]
    assert len(ids) == 2 and 0 < ids[0] <= ids[1]  # live events only add ids here


def test_live_cost_closes_live_windows_at_their_size_as_the_worker_does(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2,000 events/s for 2 s fill 4,000 events by age; the worker's loop closes at 1,000.
    monkeypatch.setenv("LEADSTREAM_FLUSH_EVENTS", "1000")
    args = ["--events", "2000", "--leads", "100", "--rate", "2000", "--seconds", "2"]
    assert live_cost.main(args) == 0
    found = re.search(r"windows of ([\d,]+) against ([\d,]+) events", capsys.readouterr().out)
    assert found is not None
    live, backlog = (int(n.replace(",", "")) for n in found.groups())
    # Closed at 1,000 (up to twice that while the one before is still written), not
    # at the 4,000 their age would allow; the backlog's one batch is one window.
    assert 1000 <= live <= 2000 and backlog == 2000


def test_bench_scoring_reports_apply_against_its_baseline_and_passes_no_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_scoring.main(["--events", "2000", "--leads", "100", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    figures = dict(re.findall(r"^(apply|baseline|ratio): +([\d,.]+)", out, re.M))
    apply, base, ratio = (
        float(figures[k].replace(",", "")) for k in ("apply", "baseline", "ratio")
    )
    assert ratio == pytest.approx(base / apply, rel=0.05)
    assert "events: 2,000 over" in out


def test_parse_histogram_sums_the_series_whose_labels_match() -> None:
    page = b"""# TYPE leadstream_gc_pause_seconds histogram
leadstream_gc_pause_seconds_bucket{generation="0",le="0.01"} 3.0
leadstream_gc_pause_seconds_bucket{generation="0",le="+Inf"} 5.0
leadstream_gc_pause_seconds_bucket{generation="2",le="0.01"} 1.0
leadstream_gc_pause_seconds_bucket{generation="2",le="+Inf"} 2.0
leadstream_gc_pause_seconds_count{generation="2"} 2.0
leadstream_batch_duration_seconds_bucket{le="+Inf"} 9.0
"""
    name = "leadstream_gc_pause_seconds"
    assert parse_histogram(page, name) == {0.01: 4.0, float("inf"): 7.0}
    assert parse_histogram(page, name, 'generation="2"') == {0.01: 1.0, float("inf"): 2.0}
    assert parse_histogram(page, name, 'generation="1"') == {}
    assert parse_histogram(page, "leadstream_batch_duration_seconds") == {float("inf"): 9.0}


def test_slowest_spans_names_the_worst_half_seconds_in_time_order() -> None:
    # Stalls every 1.5 s (as a window's close caused, 2026-11-30) among fast events.
    trace = [(1000.0 + i * 0.1, 0.015) for i in range(60)]
    trace += [(1001.6, 0.400), (1003.1, 0.500), (1004.6, 0.450), (1002.0, 0.090)]
    assert slowest_spans(trace) == "1.5 s: 15/400 ms, 3.0 s: 15/500 ms, 4.5 s: 15/450 ms"
    assert slowest_spans(trace, n=1) == "3.0 s: 15/500 ms"
    assert slowest_spans([]) == "none"


def test_migrate_cost_times_the_migration_against_a_plain_read_and_write(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import migrate_cost

    assert migrate_cost.main(["--leads", "300"]) == 0
    out = capsys.readouterr().out
    plain = float(re.search(r"read and write a lead: +([\d.]+) us", out).group(1))  # type: ignore[union-attr]
    found = re.search(r"read, migrate and write a lead: +([\d.]+) us \(([\d.]+)x\)", out)
    assert found is not None and plain > 0
    assert float(found.group(2)) == pytest.approx(float(found.group(1)) / plain, rel=0.02)
    assert "stage changes caused by the edit" in out
