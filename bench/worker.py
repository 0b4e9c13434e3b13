"""The leadstream worker under measurement, and what the bench reads of it: its
progress and histograms from ``/metrics``, its RSS from ``/proc``, and py-spy
profiles."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import PARTITIONS, Topics
from streams.local.launcher import WorkerProcess

#: Longest wait for a worker over the backlog's topics to be ready.
READY_TIMEOUT_S = 300.0


def parse_histogram(body: bytes, name: str, where: str = "") -> dict[float, float]:
    """Cumulative bucket counts (upper bound -> count) of histogram ``name`` in a
    Prometheus text page, summed over the series whose labels include ``where``."""
    pattern = rb"^" + name.encode() + rb'_bucket\{([^}]*le="([^"]+)"[^}]*)\} (\S+)$'
    out: dict[float, float] = {}
    for labels, le, n in re.findall(pattern, body, re.M):
        if where.encode() in labels:
            out[float(le)] = out.get(float(le), 0.0) + float(n)
    return out


class BenchWorker(WorkerProcess):
    """A ``leadstream worker`` (rocksdb store, the bench's partitions) over the run's
    topics, started at once; its log is ``<data_dir>/worker.log``."""

    def __init__(self, bootstrap: str, topics: Topics, app_id: str, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.start(
            {
                **topics.env(app_id),
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "LEADSTREAM_STORE": "rocksdb://",
                "LEADSTREAM_PARTITIONS": str(PARTITIONS),
            }
        )

    def events_done(self) -> int:
        return self.progress()[0]

    def progress(self) -> tuple[int, int]:
        """(input messages handled, of which acked: their window written), -1 if the
        metrics page does not answer."""
        status, body = self.get("/metrics")
        if status != 200:
            return -1, -1
        total = 0.0
        for m in re.finditer(rb"^leadstream_(?:events|dlq)_total\{[^}]*\} (\S+)$", body, re.M):
            total += float(m.group(1))
        acked = re.search(rb"^leadstream_events_acked_total (\S+)$", body, re.M)
        return int(total), int(float(acked.group(1))) if acked else 0

    def wait_events_done(self, n: int, timeout: float = 420.0, *, written: bool = False) -> None:
        """Poll the worker's counters until it has consumed ``n`` events in all (and,
        with ``written``, written and acked their windows)."""
        deadline = time.monotonic() + timeout
        while (done := self.progress()[1 if written else 0]) < n:
            self.check_alive()
            if time.monotonic() > deadline:
                what = "written" if written else "consumed"
                raise RuntimeError(f"the worker {what} only {done} of {n} events")
            time.sleep(0.1)

    def histogram(self, name: str, where: str = "") -> dict[float, float]:
        """:func:`parse_histogram` of the worker's metrics page."""
        return parse_histogram(self.get("/metrics")[1], name, where)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


@contextlib.contextmanager
def py_spy(pid: int, out: str | None) -> Iterator[None]:
    """Within ``with``: py-spy (installed next to this Python, for profiling only)
    records ``pid`` into ``out`` as collapsed stacks; nothing when ``out`` is None."""
    if out is None:
        yield
        return
    exe = str(Path(sys.executable).with_name("py-spy"))
    spy = subprocess.Popen(
        [exe, "record", "-p", str(pid), "-f", "raw", "-o", out, "-r", "200"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(timeout=30)
