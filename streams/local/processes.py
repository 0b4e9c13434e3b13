"""Stopping child processes the same way everywhere (``up``, tests, benchmarks)."""

from __future__ import annotations

import signal
import subprocess


def stop_process(proc: subprocess.Popen[bytes], grace_s: float) -> bool:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL. True if it stopped by itself."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
