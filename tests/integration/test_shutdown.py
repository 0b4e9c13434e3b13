"""A worker whose broker is gone still stops on SIGTERM, within its stop deadline."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from streams.local.kafka import LocalKafka, free_ports
from streams.local.processes import stop_process
from streams.local.settings import LocalSettings
from tests.integration.harness import Topics, Worker


def test_sigterm_with_the_broker_gone_ends_within_the_stop_timeout(tmp_path: Path) -> None:
    # A private broker: this test takes it away from under the worker.
    port, controller_port = free_ports(2)
    broker = LocalKafka(
        LocalSettings.from_env().cache_dir, tmp_path / "kafka", port, controller_port
    )
    broker.start()
    worker = Worker(
        broker.bootstrap,
        Topics(f"stop-{uuid.uuid4().hex[:8]}"),
        tmp_path / "worker",
        extra_env={"LEADSTREAM_STOP_TIMEOUT_SECONDS": "3"},
    ).start()
    try:
        worker.wait_ready()
    finally:
        broker.stop()
    assert worker.proc is not None
    started = time.monotonic()
    stopped = stop_process(worker.proc, 30.0)
    took = time.monotonic() - started
    assert stopped, worker.log_tail()
    # Faust alone never finishes this stop; the deadline ends it.
    assert took < 20.0, (took, worker.log_tail())
    assert "still stopping after 3s; exiting now" in worker.log_tail(80), worker.log_tail(80)
