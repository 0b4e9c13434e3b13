"""Who uses the machine's cores: the CPU share of the worker (or the relay), the
broker and the bench's own process (the load generator) over a stretch of wall time,
read from ``/proc``. The answer to "is the worker at capacity?" when p99 grows."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.common import say

#: How long the idle shares are measured for, after the backlog.
IDLE_S = 5.0


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds ``pid`` has used so far (0 when unknown or gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of proc(5) (utime, stime), counted after the ")" of comm.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShares(dict[str, float]):
    """Within ``with``: each process's CPU time over the wall time (1.0 = a core)."""

    def __init__(self, worker_pid: int, broker_pid: int | None, worker: str = "worker") -> None:
        super().__init__()
        self.pids = {worker: worker_pid, "broker": broker_pid, "generator": os.getpid()}

    def __enter__(self) -> CpuShares:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.started
        for name, pid in self.pids.items():
            self[name] = (cpu_seconds(pid) - self.before[name]) / wall

    def __str__(self) -> str:
        return ", ".join(f"{name} {share:.0%}" for name, share in self.items())


def idle_cpu(worker_pid: int, broker_pid: int | None) -> CpuShares:
    """What the broker and the worker cost with nothing offered (fetch polling, the
    log cleaner compacting the changelog the backlog wrote, ...)."""
    with CpuShares(worker_pid, broker_pid) as idle:
        time.sleep(IDLE_S)  # the measuring window, not a wait for anything
    say(f"idle for 5 s after the backlog: CPU {idle}")
    return idle
