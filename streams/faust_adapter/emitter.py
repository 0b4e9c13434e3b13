"""Records the worker produces, handed straight to the app's aiokafka producer.

Faust's ``Topic.send_soon`` builds a FutureMessage and a PendingMessage per record
and moves it through the producer buffer, several times the cost of aiokafka's own
``send`` (which appends to the partition's open record batch). Stage changes arrive
in bursts (a campaign, a decay wave), so the worker sends with aiokafka directly. The
app's producer is Faust's own: Faust's commit flushes it before committing offsets,
so a record handed over here is delivered before the offsets of its cause commit.

A failed delivery stops the worker: committing offsets past a stage change or a
state that never reached Kafka would lose it for good, while a restart reads the
uncommitted events again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("leadstream")


class Emitter:
    """The :class:`streams.core.loop.Sender` of the scoring loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._crashing: asyncio.Future[Any] | None = None
        #: Something was sent since the last flush.
        self._unflushed = False

    @property
    def producer(self) -> Any:
        """The app's AIOKafkaProducer (started with the app)."""
        return self.app.producer._ensure_producer()

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        delivered = await self.producer.send(
            topic, value, key=key, headers=headers, partition=partition
        )
        delivered.add_done_callback(self.check_delivered)
        self._unflushed = True

    async def flush(self) -> None:
        """Wait until everything sent so far is delivered (a no-op if nothing was)."""
        if self._unflushed:
            self._unflushed = False
            await self.producer.flush()

    def check_delivered(self, delivered: asyncio.Future[Any]) -> None:
        if delivered.cancelled() or delivered.exception() is None:
            return
        error = delivered.exception()
        assert error is not None
        self.fail(error)

    def fail(self, error: BaseException) -> None:
        """Stop the worker (once): something it produced did not reach Kafka."""
        if self._crashing is None:
            log.error("leadstream: a produce request failed (%s); stopping", type(error).__name__)
            self._crashing = asyncio.ensure_future(self.app.crash(error))
