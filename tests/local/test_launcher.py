"""The worker launcher without a broker: its environment, its HTTP helpers, and a
worker that exits before it is ready."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.local.launcher import WorkerError, WorkerProcess


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = (200, b'{"ok": true}') if self.path == "/ready" else (404, b"no")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_launcher_owns_the_data_dir_and_web_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADSTREAM_LOG_LEVEL", "debug")
    worker = WorkerProcess(tmp_path, web_port=12345)
    env = worker.env({"LEADSTREAM_WEB_PORT": "1", "LEADSTREAM_STORE": "memory://"})
    assert env["LEADSTREAM_WEB_PORT"] == "12345"  # where get() asks
    assert env["LEADSTREAM_WEB_HOST"] == "127.0.0.1"
    assert env["LEADSTREAM_DATA_DIR"] == str(tmp_path)
    assert env["LEADSTREAM_STORE"] == "memory://"
    assert env["LEADSTREAM_LOG_LEVEL"] == "info"  # not this environment's debug
    assert worker.env({"LEADSTREAM_LOG_LEVEL": "warn"})["LEADSTREAM_LOG_LEVEL"] == "warn"
    assert worker.log_path == tmp_path / "worker.log"


def test_get_returns_status_and_body_or_zero_when_nothing_listens(
    tmp_path: Path, server: int
) -> None:
    worker = WorkerProcess(tmp_path, web_port=server)
    assert worker.get("/ready") == (200, b'{"ok": true}')
    assert worker.get_json("/ready") == (200, {"ok": True})
    assert worker.get("/missing") == (404, b"no")
    assert WorkerProcess(tmp_path).get("/ready") == (0, b"")  # a free port: refused


def test_a_worker_that_exits_fails_wait_ready_at_once_with_its_log(tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path).start({"LEADSTREAM_EVENT_LOOP": "no-such-loop"})
    with pytest.raises(WorkerError, match="configuration error") as err:
        worker.wait_ready(timeout=60)
    assert "worker exited with 2" in str(err.value)
    assert worker.stop(5) is True  # already gone: nothing to signal


def test_a_worker_not_started_cannot_be_stopped(tmp_path: Path) -> None:
    with pytest.raises(WorkerError, match="not started"):
        WorkerProcess(tmp_path).stop()
