"""With the broker gone: the worker logs the outage in a few lines, not thousands, and
every command (worker, demo, tail) still stops on SIGTERM within its grace period."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from streams.local.kafka import LocalKafka, free_ports
from streams.local.launcher import REPO
from streams.local.processes import stop_process
from streams.local.settings import LocalSettings
from tests.integration.harness import Topics, Worker, poll

#: aiokafka's ERROR per failed request while the broker is down.
CONNECT_ERROR = "Unable connect to node"


def command(args: list[str], bootstrap: str, topics: Topics, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **topics.env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_sigterm_with_the_broker_gone_ends_within_the_stop_timeout(tmp_path: Path) -> None:
    # A private broker: this test takes it away from under the worker.
    port, controller_port = free_ports(2)
    broker = LocalKafka(
        LocalSettings.from_env().cache_dir, tmp_path / "kafka", port, controller_port
    )
    broker.start()
    topics = Topics(f"stop-{uuid.uuid4().hex[:8]}")
    worker = Worker(
        broker.bootstrap,
        topics,
        tmp_path / "worker",
        extra_env={"LEADSTREAM_STOP_TIMEOUT_SECONDS": "3"},
    ).start()
    demo_log, tail_log = tmp_path / "demo.log", tmp_path / "tail.log"
    try:
        worker.wait_ready()
        demo = command(["demo", "--rate", "200"], broker.bootstrap, topics, demo_log)
        tail = command(["tail"], broker.bootstrap, topics, tail_log)
        poll(lambda: "sent" in demo_log.read_text(), timeout=30, what="demo traffic")
        poll(lambda: "Ctrl-C to stop" in tail_log.read_text(), timeout=30, what="the tail")
    finally:
        broker.stop()
    assert worker.proc is not None
    # The outage is on: wait until the worker has seen it.
    poll(lambda: CONNECT_ERROR in worker.log_tail(400), timeout=30, what="connection errors")
    for name, proc, log in (("demo", demo, demo_log), ("tail", tail, tail_log)):
        started = time.monotonic()
        assert stop_process(proc, 30.0), (name, log.read_text()[-2000:])
        assert time.monotonic() - started < 20.0, (name, log.read_text()[-2000:])
    started = time.monotonic()
    stopped = stop_process(worker.proc, 30.0)
    took = time.monotonic() - started
    assert stopped, worker.log_tail()
    # Faust alone never finishes this stop; the deadline ends it.
    assert took < 20.0, (took, worker.log_tail())
    log = worker.log_tail(100_000)
    assert "still stopping after 3s; exiting now" in log, worker.log_tail(80)
    # Every failed request of the outage was an ERROR line before; now one per kind per
    # 10 s (the outage here lasts a few seconds).
    assert log.count(CONNECT_ERROR) <= 3, log.count(CONNECT_ERROR)
