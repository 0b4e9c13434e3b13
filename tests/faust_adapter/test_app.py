"""The app's own additions to Faust's: a crash's stop has a deadline, as a signal's."""

from __future__ import annotations

import asyncio

from streams.faust_adapter.app import create_app
from streams.settings import Settings
from tests.support import close_app_loops


def test_a_crash_starts_the_stop_deadline_once() -> None:
    ls = create_app(Settings.from_env({"LEADSTREAM_STOP_TIMEOUT_SECONDS": "7"}))
    started: list[float] = []
    ls.app.deadline = started.append  # type: ignore[method-assign]
    try:

        async def crash_twice() -> None:
            await ls.app.crash(RuntimeError("a produce request failed"))
            await ls.app.crash(RuntimeError("and another"))

        asyncio.run(crash_twice())
    finally:
        close_app_loops(ls.app)
    assert ls.app.crashed
    assert started == [7.0]
