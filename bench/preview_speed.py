"""How fast ``leadstream model preview`` replays recorded input, without Kafka.

    python -m bench.preview_speed [--events N] [--leads N] [--jobs 1,2] [--runs N]

Writes the bench's workload (``streams.local.workload``, seed 42: Zipf-skewed leads,
the web/email/webinar/profile mix, out-of-order events and duplicates, 21 days) as an
export file, each record stamped when it would have arrived (the newest event time
so far), keyed by lead on 4 partitions. The candidate is the bundled model edited as
``bench.migrate_cost`` edits it (pricing 10 -> 12 points, MQL entry 50 -> 45). Then
it replays the file through both models side by side, as the command does
(``streams.modelpreview.parallel.run_shards``: process start, both passes over the
file, every lead evaluated at the end), once per ``--jobs`` value (best of
``--runs``), and prints input events per second of wall time, and the CPU time per
event of this process and its children. It passes no verdict: the target (50k
events/s) is in docs/model-preview.md, and the machine's speed moves through the day.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import resource
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.migrate_cost import EDITS
from scoring import LeadState, apply, load_model_text
from streams.core.contract import Rejected, decode_event, parse_time
from streams.core.partitioning import Partitioner
from streams.local.workload import generate_events
from streams.modelpreview.exportfile import ExportRecord, encode_record, read_record
from streams.modelpreview.parallel import run_shards
from streams.modelpreview.shard import ModelSource, Progress, ShardJob
from streams.modelpreview.tally import PreviewResult
from streams.settings import Settings

SEED = 42
SPAN_DAYS = 21
START = 1_764_547_200.0  # 2025-12-01T00:00:00Z
TOPICS = {
    "web": "web.visits",
    "email": "email.events",
    "webinar": "webinar.events",
    "profile": "lead.profiles",
}


def write_workload_export(path: Path, n_events: int, n_leads: int, partitions: int = 4) -> None:
    """The workload as an export file, records stamped at their arrival."""
    partition_of = Partitioner(partitions).partition_of
    offsets: dict[tuple[str, int], int] = {}
    arrived = START
    events = generate_events(
        n_events=n_events, n_leads=n_leads, seed=SEED, start=START, span_s=SPAN_DAYS * 86400
    )
    with path.open("wb") as f:
        for kind, lead, value in events:
            arrived = max(arrived, _event_time(value))
            topic, partition = TOPICS[kind], partition_of(lead)
            offset = offsets.get((topic, partition), 0)
            offsets[topic, partition] = offset + 1
            record = ExportRecord(
                topic, kind, partition, offset, round(arrived * 1000), lead.encode(), value
            )
            f.write(encode_record(record))


def _event_time(value: bytes) -> float:
    import orjson

    return parse_time(orjson.loads(value)["occurred_at"])


def edited_default() -> tuple[ModelSource, ModelSource]:
    text = resources.files("scoring").joinpath("default_model.toml").read_text("utf-8")
    edited = text
    for old, new in EDITS:
        assert old in edited, old
        edited = edited.replace(old, new, 1)
    load_model_text(edited, "edited")  # fails here, not in a shard, if the edit is bad
    return ModelSource("default", text), ModelSource("edited", edited)


def replay(export: Path, jobs: int) -> tuple[float, float, PreviewResult]:
    """(wall seconds, CPU seconds of this process and its children, the result)."""
    current, candidate = edited_default()
    job = ShardJob(export, 0, jobs, current, candidate, Settings.from_env())
    before = _cpu()
    started = time.perf_counter()
    result = run_shards(job, jobs, lambda newest: newest or START, Progress(_nop, _nop))
    return time.perf_counter() - started, _cpu() - before, result


def apply_rate(export: Path, runs: int) -> float:
    """Events/s of ``scoring.apply`` alone over the export's valid events, under the
    bundled model, on one core (best of ``runs``; the collector off, as in the
    preview): what scoring itself costs, most of a preview's time. Two models on one
    core can reach half of it."""
    current, _ = edited_default()
    model = load_model_text(current.text, current.name)
    events = []
    with export.open("rb") as f:
        for line in f:
            record = read_record(line)
            with contextlib.suppress(Rejected):  # none in this workload
                events.append(
                    decode_event(record.kind, record.value, now=2e9, max_future_skew_s=300)
                )
    best = 0.0
    gc.disable()  # as the preview runs (streams.modelpreview.shard)
    for _ in range(runs):
        states: dict[str, LeadState] = {}
        started = time.perf_counter()
        for event in events:
            lead = event["lead_id"]
            states[lead], _changes = apply(states.get(lead) or LeadState(lead), event, model)
        best = max(best, len(events) / (time.perf_counter() - started))
    gc.enable()
    return best


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _nop(n: int) -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--leads", type=int, default=50_000)
    ap.add_argument("--jobs", default="1,2", help="comma list of process counts")
    ap.add_argument("--runs", type=int, default=1, help="runs per --jobs value (best kept)")
    args = ap.parse_args(argv)
    jobs = [int(j) for j in args.jobs.split(",")]
    with tempfile.TemporaryDirectory(prefix="preview-speed-") as tmp:
        export = Path(tmp) / "workload.jsonl"
        write_workload_export(export, args.events, args.leads)
        size = export.stat().st_size
        print(
            f"export: {args.events:,} events over {args.leads:,} leads, {size / 2**20:.0f} MiB; "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        )
        ceiling = apply_rate(export, args.runs)
        print(f"scoring.apply alone, one model, one core: {ceiling:12,.0f} events/s")
        for n in jobs:
            wall, cpu, result = min(
                (replay(export, n) for _ in range(args.runs)), key=lambda r: r[0]
            )
            rate = result.records / wall
            print(
                f"jobs {n}: {rate:12,.0f} events/s  ({wall:.2f} s wall, "
                f"{1e6 * cpu / result.records:.1f} us CPU per event; {result.leads:,} leads, "
                f"{result.moves.leads:,} would change stage; "
                f"{rate / (n * ceiling / 2):.0%} of {n} x apply alone / 2 models; "
                f"load average {os.getloadavg()[0]:.2f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
