"""Faust's aiokafka consumer, run on the worker's event loop instead of a thread.

Faust runs its aiokafka consumer as a service in a thread with a loop of its own
and reaches it through method queues: each fetch is a call handed to that thread
and a result handed back, two cross-thread wake-ups, while the thread's fetching
and record parsing wait for the GIL the scoring loop holds. Running that same
service as tasks on the worker's loop lowered p50 latency by about a quarter on the
bench, and the burst's p99 with it (docs/performance.md has the measurements).

Only how the service is run changes: its rebalance listener, commits, seeks and
flow control are Faust's code, and its calls become plain awaits.
``LEADSTREAM_CONSUMER_IN_LOOP=false`` goes back to Faust's thread. This leans on
internals of Faust (``Consumer._new_consumer_thread``) and of mode
(``ServiceThread``'s ``Worker``, ``thread_loop``, ``_serve`` and
``_gather_remaining_tasks``): both are pinned exactly, and
:mod:`streams.faust_adapter.compat` checks each at start.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from mode.threads import QueueServiceThread
from mode.utils.futures import maybe_async


class LoopTask:
    """Stands in for mode's ``WorkerThread``: serves the service as a task."""

    def __init__(self, service: QueueServiceThread) -> None:
        self.service = service
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # Held here: the loop keeps only a weak reference to a running task.
        self.task = asyncio.ensure_future(self.service._serve())
        # _serve reports a crash itself (the service's crash, then the app's).
        self.task.add_done_callback(lambda task: task.cancelled() or task.exception())

    def stop(self) -> None:
        """Nothing to join: the service's stop has awaited its shutdown."""


class InLoop(QueueServiceThread):
    """A :class:`mode.threads.QueueServiceThread` that runs on its parent's loop.

    Mix in before the thread class; construct with :func:`in_loop_kwargs`.
    """

    async def call_thread(self, fun: Any, *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))

    async def _gather_remaining_tasks(self) -> None:
        """Leave the loop's tasks alone.

        A thread sweeps its own loop when it ends (cancels every task left on it);
        this loop is the worker's.
        """


def in_loop_kwargs(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    """Constructor arguments that put an :class:`InLoop` service on ``loop``."""
    return {"loop": loop, "thread_loop": loop, "Worker": LoopTask}


class InLoopConsumerThread(InLoop, AIOKafkaConsumerThread):
    """Faust's aiokafka consumer service, on the worker's loop."""


class InLoopConsumer(AIOKafkaConsumer):
    """Faust's aiokafka ``Consumer`` whose consumer service runs on the worker's loop."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return InLoopConsumerThread(self, beacon=self.beacon, **in_loop_kwargs(self.loop))


class InLoopTransport(AIOKafkaTransport):
    """Faust's aiokafka transport, creating :class:`InLoopConsumer`."""

    Consumer = InLoopConsumer
