"""``LEADSTREAM_EVENT_LOOP``: the worker refuses uvloop it cannot import, with one
line that says what to do (the integration suite runs workers on each loop)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from streams import worker
from streams.settings import Settings


def test_uvloop_that_is_not_installed_stops_the_worker_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    policy = asyncio.get_event_loop_policy()
    assert worker.run_worker(Settings(event_loop="uvloop")) == 2
    assert "uvloop is not installed (pip install uvloop, or LEADSTREAM_EVENT_LOOP=asyncio)" in (
        capsys.readouterr().err
    )
    assert asyncio.get_event_loop_policy() is policy  # nothing was switched
