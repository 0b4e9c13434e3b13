"""`make bench` must keep working: a small run of the whole harness against the test
broker produces every row of its table with a measured value (figures unchecked:
performance lives in bench/, not in timed tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

ROWS = [
    r"ceiling \(aiokafka getmany \+ orjson\.loads\) \| [\d,]+ events/s",
    r"pipeline \(leadstream worker, rocksdb, written and acked\) \| [\d,]+ events/s",
    r"pipeline / ceiling \| \d+%",
    r"naive Faust \(per event \+ table write, 2,000 ev\) \| [\d,]+ ev/s",
    r"pipeline / naive \| [\d.]+x",
    r"CPU with nothing offered, after the backlog \| worker \d+%, broker \d+%",
    *[
        rf"latency p50 / p99, {what} at [\d,]+ ev/s for [\d.]+ s \([\d,]+ stage changes\) \| "
        r"[\d.]+ / [\d.]+ ms \(arrival at a consumer: \d+ / \d+ ms; CPU: worker \d+%"
        for what in ["backlog's mix live"] * 3 + ["all-new qualifying leads"]
    ],
    r"latency floor p50 / p99, the mix at [\d,]+ ev/s through bench\.relay, raw aiokafka and "
    r"no scoring \([\d,]+ events\) \| [\d.]+ / [\d.]+ ms \(arrival at a consumer: \d+ / \d+ ms; "
    r"CPU: relay \d+%",
    # A small run's few thousand leads may weigh less than what the worker frees.
    r"memory: RSS at ready -> after the backlog \([\d,]+ leads\) \| \d+ -> \d+ MiB "
    r"\((\d+ MiB per 100k leads|not measurable at this size)\)",
    r"memory: RSS per 100k more leads, after the backlog \([\d,]+ new\) \| "
    r"(\d+ MiB|not measurable at this size \(RSS [-+]\d+ MiB\))",
    r"recovery of 5,000 leads \(empty data dir\) \| [\d.]+ s",
]


def test_bench_run_measures_every_row(kafka_bootstrap: str) -> None:
    results = REPO / "bench" / "RESULTS.md"
    before = results.read_bytes() if results.exists() else None
    litter_before = set(REPO.glob("*-data"))
    # Enough backlog for several throughput polls (0.1 s apart) between its 10% and
    # 90%: 40k events (~0.4 s at ~86k events/s) once passed between two polls. --quick
    # makes the windows small enough that several are acked while it is scored (at
    # the default 50k, none would be).
    args = ["--quick", "--events", "80000", "--leads", "5000", "--naive-events", "2000"]
    args += ["--new-leads", "5000", "--recovery-leads", "5000", "--latency-seconds", "2"]
    args += ["--no-record"]
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    for window_setting in ("LEADSTREAM_FLUSH_EVENTS", "LEADSTREAM_FLUSH_INTERVAL_SECONDS"):
        env.pop(window_setting, None)
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    table = run.stdout[run.stdout.index("| measure |") :]
    for row in ROWS:
        assert re.search(row, table), f"no row matching {row!r} in:\n{table}"
    assert "nan" not in table
    assert "windows of 8,000 events or 2 s" in run.stdout  # a tenth of the backlog
    assert len(re.findall(r"^\| latency", table, re.M)) == 5
    # --no-record leaves the results file alone
    assert (results.read_bytes() if results.exists() else None) == before
    # Every process's data (the naive Faust app's too) stays in the bench's temp dir.
    assert set(REPO.glob("*-data")) == litter_before
