"""What writing lead states costs, per window size, without Kafka.

    python -m bench.state_writes [--events N] [--leads N] [--windows 2000,8000,23000]

Replays the bench's backlog workload (``bench.backlog.backlog_events``, same
seed and sizes as ``bench/run.py``) through ``scoring.apply`` and, for each window
size (events per write-behind window: the worker's rate times
``LEADSTREAM_FLUSH_INTERVAL_SECONDS``), counts what the worker would write: one state
per lead touched in a window. Prints writes per event, bytes written per input byte,
the mean time per state written to find its next decay change and to encode it, and
which parts of the encoded states take the bytes.

Small windows (live traffic at a few thousand events/s) touch more distinct leads per
event than the backlog's large ones, one reason an event costs the worker more live
than in the backlog at low rates. At the bench's half-throughput point the live
windows are as large as the backlog's, and what costs more is each write: the hot
leads' states grow (``python -m bench.live_cost``).

Last, it times orjson on the largest final states (the hot leads rewritten every
window): first in place, the containers the engine built over the replay, as the
worker encodes them; then in other layouts built beforehand (so the figures leave
out building them): the current layout (version 2, each cap window one flat list)
rebuilt, schema version 1 (each window a list of pairs), as columns (all times, then
all ids), and as columns with times in integer microseconds. Compare the built
layouts with each other, not with "in place": containers built together lie
together in memory, and a state the engine grew event by event has its objects
spread over the heap, which costs orjson about a third more than the layout does.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backlog import backlog_events
from scoring import LeadState, apply, load_default_model, next_change_at
from scoring.state import cap_pairs
from streams.core.contract import Rejected, decode_event
from streams.core.statecodec import encode_state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.state_writes")
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--windows", default="2000,8000,23000")
    args = parser.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",")]
    model = load_default_model()
    now = time.time()
    decoded = []
    input_bytes = 0
    for kind, lead_id, value in backlog_events(args.events, args.leads, now):
        input_bytes += len(value)
        try:
            event = decode_event(kind, value, now=now, max_future_skew_s=3600)
        except Rejected:
            continue
        decoded.append((lead_id, event))
    print(
        f"{len(decoded):,} events ({input_bytes / 1e6:.1f} MB of input) over {args.leads:,} leads"
    )
    print(
        f"{'window':>8} {'writes/event':>13} {'state bytes/input byte':>23}"
        f" {'next change us/state':>21} {'encode us/state':>16}"
    )
    shares: Counter[str] = Counter()
    for window in windows:
        states: dict[str, LeadState] = {}
        writes = written = 0
        next_change_s = encode_s = 0.0
        for lo in range(0, len(decoded), window):
            touched = set()
            for lead_id, event in decoded[lo : lo + window]:
                state = states.get(lead_id) or LeadState(lead_id)
                states[lead_id], _ = apply(state, dict(event), model)
                touched.add(lead_id)
            t0 = time.perf_counter()
            for lead_id in touched:
                next_change_at(states[lead_id], model)
            t1 = time.perf_counter()
            for lead_id in touched:
                written += len(encode_state(states[lead_id]))
            next_change_s += t1 - t0
            encode_s += time.perf_counter() - t1
            writes += len(touched)
        print(
            f"{window:>8,} {writes / len(decoded):>13.2f} {written / input_bytes:>23.2f}"
            f" {next_change_s / writes * 1e6:>21.1f} {encode_s / writes * 1e6:>16.1f}"
        )
        if window == windows[-1]:
            for state in states.values():
                for part, value in state.to_dict_view().items():
                    shares[part] += len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    total = sum(shares.values())
    print(
        "bytes of the final states: "
        + ", ".join(f"{part} {n / total:.0%}" for part, n in shares.most_common(5))
    )
    hot = sorted(states.values(), key=lambda s: len(encode_state(s)), reverse=True)[:2000]
    for name, layout in LAYOUTS.items():
        docs = [layout(state) for state in hot]
        size, seconds = _time_dumps(docs)
        print(f"layout {name:>20}: {size:,.0f} B/state, {seconds * 1e6:.1f} us to encode")
    return 0


Pairs = list[tuple[float, str]]


def _columns(pairs: Pairs, times: Callable[[float], float | int]) -> list[list[Any]]:
    return [[times(t) for t, _ in pairs], [e for _, e in pairs]]


def _layout(state: LeadState, times: Callable[[float], float | int]) -> dict[str, Any]:
    doc = state.to_dict_view()
    doc["seen"] = _columns(state.seen_heap, times)
    doc["caps"] = {
        rule: {w: _columns(cap_pairs(flat), times) for w, flat in windows.items()}
        for rule, windows in state.caps.items()
    }
    return doc


def _v1(state: LeadState) -> dict[str, Any]:
    """Schema version 1: each cap window a list of (time, id) pairs."""
    doc = state.to_dict_view()
    doc["caps"] = {
        rule: {w: cap_pairs(flat) for w, flat in windows.items()}
        for rule, windows in state.caps.items()
    }
    return doc


def _rebuilt(state: LeadState) -> dict[str, Any]:
    """The current layout with its containers built anew, next to each other."""
    view = state.to_dict_view()
    doc: dict[str, Any] = orjson.loads(orjson.dumps(view, option=orjson.OPT_NON_STR_KEYS))
    return doc


LAYOUTS: dict[str, Callable[[LeadState], dict[str, Any]]] = {
    "current (v2), in place": LeadState.to_dict_view,
    "current (v2), rebuilt": _rebuilt,
    "v1, windows as pairs": _v1,
    "columns": lambda state: _layout(state, float),
    "columns, int us": lambda state: _layout(state, lambda t: round(t * 1_000_000)),
}


def _time_dumps(docs: list[dict[str, Any]], repeat: int = 5) -> tuple[float, float]:
    """Mean encoded size and best mean time of ``orjson.dumps`` per document."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for doc in docs:
            orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
        best = min(best, (time.perf_counter() - t0) / len(docs))
    size = sum(len(orjson.dumps(d, option=orjson.OPT_NON_STR_KEYS)) for d in docs) / len(docs)
    return size, best


if __name__ == "__main__":
    raise SystemExit(main())
