"""The run's report: the table of every measure, headed by where it ran (machine,
Kafka, commit, scoring build, event loop, backlog), printed and appended to
``bench/RESULTS.md``."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO
from bench.cpu import CpuShares
from bench.latency import Point, latency_cell
from streams.build import scoring_build
from streams.local.settings import LocalSettings
from streams.settings import Settings

RESULTS = REPO / "bench" / "RESULTS.md"
RESULTS_HEAD = "# leadstream benchmark results\n\n`make bench` appends here.\n\n"

#: A table row: (measure, result, target).
Row = tuple[str, str, str]


@dataclass(frozen=True)
class WorkerFigures:
    """What was measured on the worker that scored the backlog."""

    ready_s: float
    backlog_s: float
    #: Sustained events/s written.
    rate: float
    #: Table cell: RSS at ready -> after the backlog.
    memory: str
    idle: CpuShares
    #: The target point's events/s.
    latency_rate: float
    latency_points: list[Point]
    floor: dict[str, float] | None
    #: Table cell, and how many new leads arrived.
    marginal: tuple[str, int] | None


@dataclass(frozen=True)
class Results:
    """Every figure of a run; a measure skipped (``--skip``) is None."""

    quick: bool
    local_broker: bool
    events: int
    #: Distinct leads in the backlog.
    active: int
    ceiling: float
    #: events/s of the naive agent, and the events it handled.
    naive: tuple[float, int] | None
    worker: WorkerFigures
    recovery_leads: int
    recovery_s: float | None


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def kafka_version(local: bool) -> str:
    if not local:
        return "external broker (KAFKA_BOOTSTRAP_SERVERS)"
    found = sorted(Path(LocalSettings.from_env().cache_dir).glob("kafka-*"))
    return f"Apache Kafka {found[-1].name.removeprefix('kafka-')} (LocalKafka)" if found else "?"


def git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, check=True
        )
        dirty = subprocess.run(
            # RESULTS.md is what a run appends to: it does not make the code dirty.
            [
                "git",
                "status",
                "--porcelain",
                "--",
                "scoring",
                "streams",
                "bench",
                ":!bench/RESULTS.md",
            ],
            cwd=REPO,
            capture_output=True,
        )
        return out.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def throughput_rows(r: Results) -> list[Row]:
    rate = r.worker.rate
    rows = [
        ("ceiling (aiokafka getmany + orjson.loads)", f"{r.ceiling:,.0f} events/s", ""),
        ("pipeline (leadstream worker, rocksdb, written and acked)", f"{rate:,.0f} events/s", ""),
        ("pipeline / ceiling", f"{rate / r.ceiling:.0%}", ">= 50%"),
    ]
    if r.naive is not None:
        naive_rate, naive_n = r.naive
        what = f"naive Faust (per event + table write, {naive_n:,} ev)"
        rows.append((what, f"{naive_rate:,.0f} ev/s", ""))
        rows.append(("pipeline / naive", f"{rate / naive_rate:.1f}x", ">= 5x"))
    return rows


def latency_rows(w: WorkerFigures) -> list[Row]:
    rows = []
    for workload, offered, point in w.latency_points:
        what = (
            f"latency p50 / p99, backlog's mix live at {offered:,.0f} ev/s"
            if workload == "mix"
            else f"latency p50 / p99, all-new qualifying leads at {offered:,.0f} ev/s"
        )
        what += f" for {point['seconds']:g} s ({point['matched']:,.0f} stage changes)"
        target = "p99 <= 100 ms" if workload == "mix" and offered == w.latency_rate else ""
        rows.append((what, latency_cell(point, "worker"), target))
    if w.floor is not None:
        what = (
            f"latency floor p50 / p99, the mix at {w.latency_rate:,.0f} ev/s through "
            f"bench.relay, raw aiokafka and no scoring ({w.floor['matched']:,.0f} events)"
        )
        rows.append((what, latency_cell(w.floor, "relay"), ""))
    return rows


def memory_and_recovery_rows(r: Results) -> list[Row]:
    what = f"memory: RSS at ready -> after the backlog ({r.active:,} leads)"
    rows = [(what, r.worker.memory, "")]
    if r.worker.marginal is not None:
        cell, new_leads = r.worker.marginal
        what = f"memory: RSS per 100k more leads, after the backlog ({new_leads:,} new)"
        rows.append((what, cell, "stated"))
    if r.recovery_s is not None:
        what = f"recovery of {r.recovery_leads:,} leads (empty data dir)"
        rows.append((what, f"{r.recovery_s:.1f} s", "1M <= 60 s"))
    return rows


def table(r: Results) -> str:
    """The Markdown table; a skipped measure leaves its rows out rather than nan."""
    rows = [
        *throughput_rows(r),
        ("CPU with nothing offered, after the backlog", str(r.worker.idle), ""),
        *latency_rows(r.worker),
        *memory_and_recovery_rows(r),
    ]
    out = "| measure | result | target |\n|---|---|---|\n"
    return out + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)


def heading(r: Results) -> str:
    """The run's date, commit and where it ran."""
    worker_settings = Settings.from_env()  # as the worker read them
    return (
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — "
        f"`{git_head()}`{' (--quick)' if r.quick else ''}\n\n"
        f"- Machine: {machine()}\n- Kafka: {kafka_version(r.local_broker)}\n"
        f"- Scoring: {scoring_build().kind}; event loop of the worker, the ceiling and the"
        f" relay: {worker_settings.event_loop}\n"
        f"- Backlog: {r.events:,} events, {r.active:,} leads, 4 partitions x 4 topics; "
        f"worker ready {r.worker.ready_s:.1f}s, backlog done {r.worker.backlog_s:.1f}s "
        f"after start; windows of {worker_settings.flush_events:,} events or"
        f" {worker_settings.flush_interval_s:g} s; {worker_settings.processing_guarantee}\n\n"
    )


def report(r: Results) -> str:
    return heading(r) + table(r)


def record(text: str) -> None:
    """Append a run's report to RESULTS.md (created with its title if missing)."""
    if not RESULTS.exists():
        RESULTS.write_text(RESULTS_HEAD)
    with RESULTS.open("a") as f:
        f.write(text + "\n")
