"""Start a ``leadstream worker`` child process and talk to it over its HTTP port.

One launcher for the benchmark (``bench/``) and the integration tests
(``tests/integration/harness.py``): both need a worker with its own data dir, web
port and log file, its readiness awaited by polling ``/ready`` with a deadline, and
a graceful stop (SIGTERM, as an orchestrator sends it) or a kill.

Example::

    worker = WorkerProcess(data_dir).start({"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    try:
        worker.wait_ready(timeout=90)
        status, body = worker.get_json("/leads/lead-1")
    finally:
        worker.stop()
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streams.local.kafka import free_ports
from streams.local.processes import stop_process
from streams.settings import ENV_VARS

#: The source checkout: the worker runs as ``python -m streams.cli`` from it.
REPO = Path(__file__).resolve().parents[2]
#: The worker's web server listens on loopback only; the helpers below ask it there.
WEB_HOST = "127.0.0.1"
#: Log lines quoted when a worker fails.
LOG_TAIL_LINES = 40


class WorkerError(RuntimeError):
    """The worker exited, or was not ready in time; the message ends with its log."""


class WorkerProcess:
    """One ``leadstream worker`` child process, its log in a file.

    ``data_dir`` is the worker's ``LEADSTREAM_DATA_DIR``; ``web_port`` (a free one
    unless given) its ``LEADSTREAM_WEB_PORT``; ``log_path`` (default
    ``<data_dir>/worker.log``) gets its stdout and stderr.
    """

    def __init__(
        self, data_dir: Path, *, web_port: int | None = None, log_path: Path | None = None
    ) -> None:
        self.data_dir = data_dir
        self.web_port = web_port if web_port is not None else free_ports(1)[0]
        self.log_path = log_path if log_path is not None else data_dir / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        #: ``time.perf_counter()`` when the process was spawned.
        self.started = 0.0

    def env(self, settings: Mapping[str, str]) -> dict[str, str]:
        """The child's environment: this one, then ``settings`` (environment variables
        of ``streams.settings.Settings``), then the data dir and web address, which
        the launcher owns (its HTTP helpers must reach the port the worker opens)."""
        return {
            **os.environ,
            # "warn" makes Faust set the root logger to DEBUG: info is the quiet level.
            ENV_VARS["log_level"]: "info",
            **settings,
            ENV_VARS["data_dir"]: str(self.data_dir),
            ENV_VARS["web_host"]: WEB_HOST,
            ENV_VARS["web_port"]: str(self.web_port),
        }

    def start(self, settings: Mapping[str, str]) -> WorkerProcess:
        """Spawn the worker with ``settings`` (see :meth:`env`); returns at once. A
        worker that has exited may be started again (its log starts over)."""
        if self.proc is not None and self.proc.poll() is None:
            raise WorkerError(f"worker on port {self.web_port} is running already")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                cwd=REPO,
                env=self.env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started = time.perf_counter()
        return self

    @property
    def pid(self) -> int:
        return self._started().pid

    def _started(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise WorkerError(f"worker on port {self.web_port} was not started")
        return self.proc

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise :class:`WorkerError`, with the log's tail, if the worker has exited."""
        code = self._started().poll()
        if code is not None:
            raise WorkerError(f"worker exited with {code}:\n{self.log_tail()}")

    def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` from the worker: (status, body); status 0 when nothing answers."""
        url = f"http://{WEB_HOST}:{self.web_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:  # refused, reset or timed out: not listening (yet, or any more)
            return 0, b""

    def get_json(self, path: str) -> tuple[int, Any]:
        status, body = self.get(path)
        return status, (json.loads(body) if body else None)

    def wait_ready(self, timeout: float, interval: float = 0.05) -> float:
        """Poll ``/ready`` until it answers 200; seconds from spawn to then.

        Raises :class:`WorkerError` as soon as the worker exits, or after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while self.get("/ready")[0] != 200:
            self.check_alive()
            if time.monotonic() > deadline:
                raise WorkerError(f"worker not ready within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(interval)
        return time.perf_counter() - self.started

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then wait up to ``timeout`` before a SIGKILL. True if it stopped
        by itself in time (its exit code is then ``proc.returncode``)."""
        return stop_process(self._started(), timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash: no window written, no offsets committed."""
        proc = self._started()
        proc.kill()
        proc.wait()
