"""The worker's garbage-collector schedule: freeze every tick, thaw and collect
everything once per full interval."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from streams import worker

Tick = Callable[[], Awaitable[None]]


class TimerApp:
    """What tune_gc needs of a Faust app: ``@app.timer(interval=...)``."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Tick]] = []

    def timer(self, interval: float) -> Callable[[Tick], Tick]:
        def register(tick: Tick) -> Tick:
            self.timers.append((interval, tick))
            return tick

        return register


async def test_ticks_freeze_and_every_full_interval_collects_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))

    def collect(*args: int) -> int:
        calls.append("collect")
        return 0

    monkeypatch.setattr(gc, "collect", collect)
    monkeypatch.setattr(gc, "set_threshold", lambda *args: calls.append(args))
    monkeypatch.setattr(worker, "GC_FULL_INTERVAL_S", 3 * worker.GC_FREEZE_INTERVAL_S)
    app = TimerApp()

    worker.tune_gc(app)

    assert calls == ["freeze", (worker.GC_GEN0_THRESHOLD, 10, 10)]
    [(interval, tick)] = app.timers
    assert interval == worker.GC_FREEZE_INTERVAL_S
    calls.clear()
    for _ in range(6):
        await tick()
    full = ["unfreeze", "collect", "freeze"]
    assert calls == ["freeze", "freeze", *full, "freeze", "freeze", *full]
