"""Running a preview's shards: inline for one, else one process each.

Leads are independent, so shards of leads replay apart and their tallies add up
(``streams.modelpreview.tally``). The time every lead is evaluated at defaults to the
newest event time of the whole input, which no shard knows alone: each process
replays its records, sends its newest event time, waits for the ``now`` the parent
decides, then evaluates its leads and sends its tally. Processes are spawned, not
forked: the parent may run rich's refresh thread, and a fork copies no threads.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from multiprocessing.sharedctypes import Synchronized
from typing import Any, cast

from streams.modelpreview.exportfile import ExportFormatError
from streams.modelpreview.shard import Progress, ShardJob, replay_shard
from streams.modelpreview.tally import PreviewResult, merged

#: How often the parent passes the shards' progress on, in seconds.
POLL_S = 0.1

DecideNow = Callable[[float | None], float]


class PreviewError(RuntimeError):
    """The preview cannot go on; the message says why, in one line."""


def run_shards(
    job: ShardJob, shards: int, decide_now: DecideNow, progress: Progress
) -> PreviewResult:
    """Replay ``job.export`` in ``shards`` shards (``job.shard`` is ignored) and merge."""
    if shards == 1:
        try:
            return replay_shard(replace(job, shard=0, shards=1), progress, decide_now)
        except ExportFormatError as exc:
            raise PreviewError(str(exc)) from None
    return _in_processes(job, shards, decide_now, progress)


def _in_processes(
    job: ShardJob, shards: int, decide_now: DecideNow, progress: Progress
) -> PreviewResult:
    ctx = multiprocessing.get_context("spawn")
    counters = [(ctx.Value("q", 0), ctx.Value("q", 0)) for _ in range(shards)]
    pipes = [ctx.Pipe() for _ in range(shards)]
    procs = [
        ctx.Process(
            target=_shard_process,
            args=(replace(job, shard=i, shards=shards), *counters[i], pipes[i][1]),
            name=f"leadstream-preview-{i}",
            daemon=True,
        )
        for i in range(shards)
    ]
    for proc in procs:
        proc.start()
    conns = [parent for parent, _child in pipes]
    done = False
    try:
        relay = _Relay(counters, progress)
        newest = [v for v in _gather(conns, "newest", relay) if v is not None]
        now = decide_now(max(newest) if newest else None)
        for conn in conns:
            conn.send(now)
        results = _gather(conns, "result", relay)
        relay()
        done = True
    finally:
        for proc in procs:
            if not done:  # an error, or Ctrl-C: the others' work is moot
                proc.terminate()
            proc.join()
    return merged(results)


class _Relay:
    """Passes the shards' counters on to the parent's progress, as they grow."""

    def __init__(
        self,
        counters: list[tuple[Synchronized[int], Synchronized[int]]],
        progress: Progress,
    ) -> None:
        self.counters = counters
        self.progress = progress
        self.seen = [(0, 0)] * len(counters)

    def __call__(self) -> None:
        for i, (lines, records) in enumerate(self.counters):
            now = (lines.value, records.value)
            self.progress.lines(now[0] - self.seen[i][0])
            self.progress.records(now[1] - self.seen[i][1])
            self.seen[i] = now


def _gather(conns: list[Connection], kind: str, relay: Callable[[], None]) -> list[Any]:
    """One message of ``kind`` from every shard, in shard order."""
    got: dict[int, Any] = {}
    while len(got) < len(conns):
        waiting = [c for i, c in enumerate(conns) if i not in got]
        for ready in wait(waiting, timeout=POLL_S):
            conn = cast(Connection, ready)  # wait() returns what it was given
            i = conns.index(conn)
            try:
                what, payload = conn.recv()
            except EOFError:
                raise PreviewError(f"shard {i} of the replay died") from None
            if what == "error":
                raise PreviewError(payload)
            if what == "crash":
                raise PreviewError(f"shard {i} of the replay failed:\n{payload}")
            got[i] = payload
        relay()
    return [got[i] for i in range(len(conns))]


def _shard_process(
    job: ShardJob, lines: Synchronized[int], records: Synchronized[int], conn: Connection
) -> None:
    """A shard's process: replay, send the newest event time, get ``now``, send the tally."""

    def decide_now(newest: float | None) -> float:
        conn.send(("newest", newest))
        now: float = conn.recv()
        return now

    # Ctrl-C reaches the whole process group: the parent stops the shards itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = replay_shard(job, Progress(_adder(lines), _adder(records)), decide_now)
    except ExportFormatError as exc:
        conn.send(("error", str(exc)))
    except Exception:
        conn.send(("crash", traceback.format_exc()))
    else:
        conn.send(("result", result))


def _adder(counter: Synchronized[int]) -> Callable[[int], None]:
    """Adds to a shared counter, from a shard's process; ends the process once its
    parent is gone (killed, not interrupted): nobody would read what it finds."""
    parent = os.getppid()

    def add(n: int) -> None:
        if os.getppid() != parent:
            os._exit(1)
        with counter.get_lock():
            counter.value += n

    return add
