"""How fast ``leadstream report`` reads and computes a long sales history, without Kafka.

    python -m bench.report_speed [--changes N] [--leads N] [--runs N] [--keep FILE]

Writes a history as an export file (the format ``leadstream report --save-export``
writes): ``--changes`` stage changes (default 1,000,000) as the worker publishes them
(every field, reasons included: ~1.2 KB each) over ``--leads`` leads (default a
quarter as many), walking up and down cold, warm, MQL and SQL over 30 days under two
model versions, and the outcomes :mod:`streams.local.crm` plans for each lead's first
SQL entry, its delays stretched to hours. Then it reads the file and computes the
report as the command does (``read_exports``, ``compute``, the rows both outputs
show), best of ``--runs``, and prints the seconds of each step, stage changes per
second, the peak memory and the load average. It passes no verdict: the target (1M
stage changes well under a minute) is in docs/kpis.md.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from streams.core.contract import format_time
from streams.local.crm import plan
from streams.salesreport.history import OUTCOME_KIND, QUALIFIED_KIND
from streams.salesreport.htmlreport import write_html
from streams.salesreport.kpis import SalesReport, compute
from streams.salesreport.read import read_exports
from streams.salesreport.rows import funnel_rows, grade_rows, reason_rows, time_rows

SEED = 42
START = 1_764_547_200.0  # 2025-12-01T00:00:00Z
SPAN_S = 30 * 86400.0
STAGES = ("cold", "warm", "mql", "sql")
MODELS = (("leadstream-default", "1.0.0"), ("leadstream-default", "1.1.0"))
REASON = {"rule_id": "web-demo", "description": "Viewed the demo request page", "points": 20.0}
FIT = {"rule_id": "fit-vp", "description": "Vice president", "points": 18.0}


def stage_changes(rng: random.Random, lead: str, n: int, at: float) -> Iterator[dict[str, Any]]:
    """``n`` stage changes of one lead: up more often than down, now and then
    disqualified; the model version of the time."""
    stage, grade = 0, rng.choices("ABCD", (2, 3, 3, 2))[0]
    for sequence in range(1, n + 1):
        at += rng.expovariate(1 / 43200)  # half a day apart on average
        down = stage == 3 or (stage > 0 and rng.random() < 0.3)
        to = stage - 1 if down else stage + 1
        to_stage = "disqualified" if rng.random() < 0.01 else STAGES[to]
        model = MODELS[at > START + SPAN_S / 2]
        yield _message(lead, sequence, STAGES[stage], to_stage, to > stage, grade, model, at)
        if to_stage == "disqualified":
            return
        stage = to


def _message(
    lead: str,
    sequence: int,
    from_stage: str,
    to_stage: str,
    up: bool,
    grade: str,
    model: tuple[str, str],
    at: float,
) -> dict[str, Any]:
    """A stage change with every field ``lead.qualified`` carries."""
    return {
        "event_id": f"{lead}-{sequence:04d}-0c6f2a58-3f0e-5b8e-9d4e",
        "lead_id": lead,
        "sequence": sequence,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "direction": "up" if up else "down",
        "cause": "event" if up else "decay",
        "trigger_event_id": f"wv-{lead}-{sequence}" if up else None,
        "score": 54.0,
        "breakdown": {"web": 39.0, "webinar": 15.0},
        "fit_score": 73.0,
        "grade": grade,
        "bant": {"budget": True, "authority": True, "need": True, "timeline": False},
        "reasons": [REASON, FIT, {**REASON, "rule_id": "webinar-attended", "points": 15.0}],
        "trigger_reasons": [REASON] if up else [],
        "engagement_reasons": [REASON, {**REASON, "rule_id": "web-pricing", "points": 10.0}],
        "fit_reasons": [FIT],
        "model_id": model[0],
        "model_version": model[1],
        "changed_at": format_time(at),
        "emitted_at": format_time(at + 0.003),
    }


def write_history(path: Path, n_changes: int, n_leads: int) -> tuple[int, int, int]:
    """The history as an export file; (stage changes, outcomes, leads) written."""
    rng = random.Random(SEED)
    changes = outcomes = leads = 0
    with path.open("wb") as f:
        while changes < n_changes:
            lead = f"lead-{leads:07d}"
            leads += 1
            quota = min(n_changes - changes, rng.randint(1, 2 * n_changes // n_leads - 1))
            sql_at, grade = None, "C"
            for value in stage_changes(rng, lead, quota, START + rng.random() * SPAN_S):
                changes += 1
                f.write(_line("lead.qualified", QUALIFIED_KIND, changes, value))
                if sql_at is None and value["to_stage"] == "sql":
                    sql_at, grade = value["changed_at"], value["grade"]
            if sql_at is not None:
                outcomes += _write_outcomes(f, lead, grade, sql_at, outcomes)
    return changes, outcomes, leads


def _write_outcomes(f: Any, lead: str, grade: str, sql_at: str, offset: int) -> int:
    from streams.core.contract import parse_time

    steps = plan(SEED, lead, grade, delay_scale=3600.0)  # the demo's seconds as hours
    for n, step in enumerate(steps):
        value = {
            "event_id": f"crm-{lead}-{n}",
            "lead_id": lead,
            "occurred_at": format_time(parse_time(sql_at) + step.after),
            "outcome": step.outcome,
            **step.fields,
        }
        f.write(_line("lead.outcomes", OUTCOME_KIND, offset + n, value))
    return len(steps)


def _line(topic: str, kind: str, offset: int, value: dict[str, Any]) -> bytes:
    # The export format (streams.modelpreview.exportfile), written in one go.
    record = {
        "topic": topic,
        "kind": kind,
        "partition": 0,
        "offset": offset,
        "timestamp": -1,
        "key": value["lead_id"],
        "value": value,
    }
    return orjson.dumps(record) + b"\n"


def timed_report(path: Path) -> tuple[dict[str, tuple[float, float]], SalesReport]:
    """Read, compute and the rows, as ``leadstream report`` does; (wall, CPU) seconds of
    each. CPU time is what other work on the machine does not change."""
    seconds: dict[str, tuple[float, float]] = {}
    clock = (time.perf_counter(), time.process_time())

    def lap(step: str) -> None:
        nonlocal clock
        now = (time.perf_counter(), time.process_time())
        seconds[step] = (now[0] - clock[0], now[1] - clock[1])
        clock = now

    history = read_exports([path])
    lap("read")
    report = compute(history)
    lap("compute")
    funnel_rows(report)
    time_rows(report)  # sorts every duration
    for _, cohort in report.cohorts():
        grade_rows(cohort)
    reason_rows(report, "lost")
    lap("rows")
    return seconds, report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, help="default: a quarter of --changes")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the export here and keep it")
    args = parser.parse_args(argv)
    n_leads = args.leads or max(1, args.changes // 4)
    with tempfile.TemporaryDirectory(prefix="report-speed-") as tmp:
        path = args.keep or Path(tmp) / "history.jsonl"
        changes, outcomes, leads = write_history(path, args.changes, n_leads)
        size = path.stat().st_size
        print(
            f"export: {changes:,} stage changes and {outcomes:,} outcomes of {leads:,} leads, "
            f"{size / 2**20:,.0f} MiB"
        )
        runs = [timed_report(path) for _ in range(args.runs)]
        best, report = min(runs, key=lambda r: sum(wall for wall, _ in r[0].values()))
        started = time.perf_counter()
        write_html(Path(tmp) / "report.html", report)
        html_s = time.perf_counter() - started
    total, cpu = (sum(t[i] for t in best.values()) for i in (0, 1))
    for step, (wall, step_cpu) in best.items():
        print(f"{step + ':':<9}{wall:7.2f} s  ({step_cpu:.2f} s CPU)")
    print(f"{'total:':<9}{total:7.2f} s  ({cpu:.2f} s CPU)  {changes / total:,.0f} stage changes/s")
    print(f"{'html:':<9}{html_s:7.2f} s  (not in the total)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"peak memory {peak:,.0f} MiB; load average {load}")
    print(f"funnel: {report.overall.funnel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
