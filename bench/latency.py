"""Latency under a steady live load, on the worker and without it.

- latency points: the backlog's mix (``bench.live_load``) offered at a tenth, a
  quarter and half the pipeline throughput (or ``--latency-rate``; that target point
  held four times as long as the others), then, at a quarter of it, a burst of new
  leads that each qualify. Each times produce -> the broker's append of the
  ``lead.qualified`` message an event triggered (p50/p99; also to its arrival at the
  bench's consumer), with the CPU share of the worker, the broker and the generator,
  the worker's batch and state-flush p99 and its GC pauses meanwhile;
- latency floor: the target point's load through ``bench.relay`` (raw aiokafka, one
  event in sixteen passed straight to an output topic), timed the same way: what the
  machine, the broker and the generator cost before the worker adds any.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.common import PARTITIONS, REPO, Topics, create_topics, say
from bench.cpu import CpuShares
from bench.live_load import Live, burst_messages, live_mix, offer_and_time
from bench.worker import BenchWorker, py_spy
from streams.local.processes import stop_process

#: Longest wait for bench.relay to be positioned on its topics, and how long it
#: relays before it is timed.
RELAY_START_S = 60.0
RELAY_WARMUP_S = 3.0
GC_PAUSE = "leadstream_gc_pause_seconds"
GENERATIONS = (0, 1, 2)
#: The worker's histograms whose p99 each point reports.
STAGES = ("leadstream_batch_duration_seconds", "leadstream_state_flush_duration_seconds")

#: A latency point: (workload "mix" or "burst", events/s offered, its figures).
Point = tuple[str, float, dict[str, float]]


@dataclass(frozen=True)
class LoadTarget:
    """Where the latency points offer their load: the worker over the run's topics."""

    worker: BenchWorker
    broker_pid: int | None
    bootstrap: str
    topics: Topics
    #: The backlog's leads: the mix draws from them.
    n_leads: int


def gc_pauses(before: list[dict[float, float]], after: list[dict[float, float]]) -> str:
    """Per generation collected between two scrapes: how many, and the bound of the
    longest (its histogram bucket)."""
    parts = []
    for b, a in zip(before, after, strict=True):
        n = a.get(float("inf"), 0.0) - b.get(float("inf"), 0.0)
        longest = bucket_quantile(b, a, 1.0) * 1000 if n else 0.0
        parts.append(f"{n:.0f} (<= {longest:g} ms)")
    return ", ".join(parts)


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Upper bound of the bucket holding the q-quantile of what was observed in between."""
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    for le in sorted(after):
        if after[le] - before.get(le, 0.0) >= q * total:
            return le
    return float("nan")


def percentile_ms(ordered: list[float], p: float) -> float:
    """The ``p`` quantile of sorted seconds, in ms (nan when empty)."""
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else math.nan


def _scrape(worker: BenchWorker) -> tuple[list[dict[float, float]], list[dict[float, float]]]:
    """The worker's stage histograms and GC pause histograms (per generation)."""
    stages = [worker.histogram(name) for name in STAGES]
    gcs = [worker.histogram(GC_PAUSE, f'generation="{g}"') for g in GENERATIONS]
    return stages, gcs


def latency(
    at: LoadTarget, rate: float, duration: float, workload: str, trace_to: str | None = None
) -> dict[str, float]:
    """One latency point: ``workload`` ("mix" or "burst") at ``rate`` for ``duration``."""
    messages: list[Live] = (
        live_mix(rate, duration, at.n_leads)
        if workload == "mix"
        else list(itertools.islice(burst_messages(int(time.time())), int(rate * duration) + 1))
    )
    before, gc_before = _scrape(at.worker)
    # Who used the two cores while the load was offered: the answer to "is the worker
    # at capacity?" when p99 grows.
    with CpuShares(at.worker.pid, at.broker_pid) as cpu:
        trace: list[tuple[float, float]] | None = [] if trace_to else None
        timed = asyncio.run(
            offer_and_time(at.bootstrap, at.topics, rate, duration, messages, trace)
        )
    after, gc_after = _scrape(at.worker)
    batch_p99, flush_p99 = (bucket_quantile(b, a, 0.99) for b, a in zip(before, after, strict=True))
    gcs = gc_pauses(gc_before, gc_after)
    out = latency_stats(*timed, cpu)
    out["seconds"] = duration
    say(
        f"latency ({workload}) at {rate:,.0f} ev/s offered, {out['matched']:,.0f} stage changes "
        f"of {out['sent']:,.0f} events, p50 / p99 to the append: {latency_cell(out, 'worker')}; "
        f"in the worker, p99 of a batch <= {batch_p99 * 1000:g} ms, of a state flush <= "
        f"{flush_p99 * 1000:g} ms; GC pauses by generation {gcs}"
    )
    if trace_to and trace is not None:
        path = Path(f"{trace_to}.{workload}.{rate:.0f}.json")
        path.write_bytes(orjson.dumps(trace))
        say(f"  trace in {path}; slowest half-seconds: {slowest_spans(trace)}")
    return out


def latency_points(
    at: LoadTarget,
    rates: list[float],
    target_rate: float,
    seconds: float,
    target_seconds: float,
    *,
    trace_to: str | None = None,
    profile: str | None = None,
) -> list[Point]:
    """The mix at each of ``rates``, then the burst at half ``target_rate``. The
    target point (the mix at ``target_rate``) lasts ``target_seconds``, the others
    ``seconds``; ``profile``, if given, gets a py-spy profile of the target point."""
    points: list[Point] = []
    workloads = [("mix", offered) for offered in rates] + [("burst", target_rate / 2)]
    for workload, offered in workloads:
        target = workload == "mix" and offered == target_rate
        done_before = at.worker.events_done()
        with py_spy(at.worker.pid, profile if target else None):
            result = latency(at, offered, target_seconds if target else seconds, workload, trace_to)
        points.append((workload, offered, result))
        # Each point starts on a drained worker, its events scored and their windows
        # written: a point that overloads it must not leave its queue or its writes
        # to the next (the burst's first second read p50 180-270 ms after the 60 s
        # point, 2026-12-01).
        at.worker.wait_events_done(done_before + int(result["sent"]), written=True)
    return points


def slowest_spans(trace: list[tuple[float, float]], span_s: float = 0.5, n: int = 3) -> str:
    """The ``n`` spans of produce time with the highest latency, as "at: p50/max ms":
    periodic stalls show as evenly spaced spans (a window's close, say), an overload
    as adjacent ones.

    >>> slowest_spans([(100.0, 0.010), (100.2, 0.020), (101.1, 0.300), (102.6, 0.050)], n=2)
    '1.0 s: 300/300 ms, 2.5 s: 50/50 ms'
    """
    if not trace:
        return "none"
    start = min(t for t, _ in trace)
    spans: dict[int, list[float]] = {}
    for t, latency_s in trace:
        spans.setdefault(int((t - start) / span_s), []).append(latency_s)
    worst = sorted(spans.items(), key=lambda kv: max(kv[1]), reverse=True)[:n]
    return ", ".join(
        f"{k * span_s:.1f} s: {sorted(v)[len(v) // 2] * 1000:.0f}/{max(v) * 1000:.0f} ms"
        for k, v in sorted(worst)
    )


def latency_stats(
    to_append: list[float], to_arrival: list[float], sent: int, cpu: CpuShares
) -> dict[str, float]:
    """p50/p99 in ms of what :func:`offer_and_time` timed, with the CPU shares meanwhile."""
    to_append.sort()
    to_arrival.sort()
    return {
        "p50": percentile_ms(to_append, 0.5),
        "p99": percentile_ms(to_append, 0.99),
        "arrival_p50": percentile_ms(to_arrival, 0.5),
        "arrival_p99": percentile_ms(to_arrival, 0.99),
        "matched": len(to_append),
        "sent": sent,
        **cpu,
    }


def latency_cell(point: dict[str, float], process: str) -> str:
    """A latency row's result: p50 / p99 to the append, then arrival and CPU."""
    return (
        f"{point['p50']:.1f} / {point['p99']:.1f} ms (arrival at a consumer: "
        f"{point['arrival_p50']:.0f} / {point['arrival_p99']:.0f} ms; CPU: {process} "
        f"{point[process]:.0%}, broker {point['broker']:.0%}, generator "
        f"{point['generator']:.0%})"
    )


def latency_floor(
    broker_pid: int | None, bootstrap: str, prefix: str, rate: float, duration: float, n_leads: int
) -> dict[str, float]:
    """The latency point's load and timing with ``bench.relay`` in the worker's place.

    Topics of its own (the worker never sees this load); what the relay's p99 leaves
    to the target is what the worker may add on this machine.
    """
    topics = Topics(prefix)
    create_topics(bootstrap, topics)
    warmup = live_mix(rate, RELAY_WARMUP_S, n_leads)
    messages = live_mix(rate, duration, n_leads)
    args = ["--bootstrap", bootstrap, "--inputs", ",".join(topics.inputs)]
    args += ["--partitions", str(PARTITIONS), "--output", topics.names["qualified"]]
    relay = subprocess.Popen(
        [sys.executable, "-m", "bench.relay", *args], cwd=REPO, stdout=subprocess.PIPE
    )
    try:
        assert relay.stdout is not None
        # "ready", or nothing if it died first (its stderr shows why) or hangs.
        started, _, _ = select.select([relay.stdout], [], [], RELAY_START_S)
        if not started or relay.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"bench.relay did not start (exit code {relay.poll()})")
        # New topics' first second is slow end to end (70-190 ms); the worker's are warm.
        asyncio.run(offer_and_time(bootstrap, topics, rate, RELAY_WARMUP_S, warmup))
        with CpuShares(relay.pid, broker_pid, worker="relay") as cpu:
            timed = asyncio.run(offer_and_time(bootstrap, topics, rate, duration, messages))
    finally:
        stop_process(relay, grace_s=10)
    out = latency_stats(*timed, cpu)
    say(
        f"latency floor (bench.relay, no scoring) at {rate:,.0f} ev/s offered, "
        f"{out['matched']:,.0f} relayed of {out['sent']:,.0f} events, p50 / p99 to the append: "
        f"{latency_cell(out, 'relay')}"
    )
    return out
