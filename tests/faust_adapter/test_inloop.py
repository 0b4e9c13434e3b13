"""faust_adapter.inloop: Faust's consumer service runs on the worker's loop, in its thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from mode.threads import QueueServiceThread

from streams.faust_adapter.app import create_app
from streams.faust_adapter.inloop import InLoop, InLoopConsumerThread, in_loop_kwargs
from streams.settings import Settings
from tests.support import close_app_loops


class Probe(InLoop, QueueServiceThread):
    """Records where its start and its calls run."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.seen: list[tuple[int, asyncio.AbstractEventLoop]] = []

    def where(self) -> tuple[int, asyncio.AbstractEventLoop]:
        return threading.get_ident(), asyncio.get_running_loop()

    async def on_start(self) -> None:
        self.seen.append(self.where())

    async def fetch(self, n: int) -> int:
        self.seen.append(self.where())
        return n + 1


async def test_the_service_starts_calls_and_stops_on_the_callers_loop() -> None:
    loop = asyncio.get_running_loop()
    here = (threading.get_ident(), loop)
    threads = threading.active_count()
    # A task of the worker's that must outlive the service: a thread sweeps its
    # own loop when it ends, which here is the caller's.
    bystander = asyncio.ensure_future(asyncio.sleep(3600))
    probe = Probe(**in_loop_kwargs(loop))
    try:
        await asyncio.wait_for(probe.start(), 10)
        assert threading.active_count() == threads
        assert await asyncio.wait_for(probe.call_thread(probe.fetch, 41), 10) == 42
        assert probe.seen == [here, here]
        await asyncio.wait_for(probe.stop(), 10)
        assert probe._shutdown.is_set()
        await asyncio.sleep(0)
        assert not bystander.done()
    finally:
        bystander.cancel()


@pytest.mark.parametrize(
    ("in_loop", "thread_type"), [("true", InLoopConsumerThread), ("false", AIOKafkaConsumerThread)]
)
def test_the_setting_picks_where_the_consumer_runs(
    tmp_path: Path, in_loop: str, thread_type: type[Any]
) -> None:
    settings = Settings.from_env(
        {"LEADSTREAM_CONSUMER_IN_LOOP": in_loop},
        app_id="inloop-unit",
        data_dir=str(tmp_path),
        store="memory://",
    )
    ls = create_app(settings)
    try:
        thread: Any = getattr(ls.app.consumer, "_thread")  # noqa: B009 (Faust-internal)
        assert type(thread) is thread_type
        assert (thread.thread_loop is ls.app.loop) == (in_loop == "true")
    finally:
        close_app_loops(ls.app)
