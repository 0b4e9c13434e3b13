"""One shortcut through Faust's consumer loop.

For every message, ``Consumer._drain_messages`` hands it to the conductor with
``self.wait_first(callback(message), self.suspend_flow.wait())``: four tasks and an
``asyncio.wait`` per message, so the conductor can be abandoned if flow is suspended
(a rebalance) while it waits. That costs more than scoring the event. This wraps the
consumer's ``wait_first`` so that, while flow is *not* suspended, the callback is
awaited directly; otherwise Faust's own path runs. ``_drain_messages`` ignores the
result, and it is the consumer's only caller of ``wait_first``.
"""

from __future__ import annotations

import inspect
from typing import Any


def install(consumer: Any) -> None:
    if getattr(consumer, "_leadstream_fastpath", False):
        return
    original = consumer.wait_first
    suspended = consumer.suspend_flow

    async def wait_first(*coros: Any, timeout: Any = None) -> Any:  # noqa: ASYNC109
        if len(coros) == 2 and inspect.iscoroutine(coros[0]) and not suspended.is_set():
            callback, flow_wait = coros
            if inspect.iscoroutine(flow_wait):
                flow_wait.close()  # never started: close it so it is not "never awaited"
            await callback
            return None
        return await original(*coros, timeout=timeout)

    consumer.wait_first = wait_first
    consumer._leadstream_fastpath = True
