"""Per-partition batches straight from Faust's consumer to the scoring agent.

Faust hands every fetched record to its conductor one at a time
(``Consumer._drain_messages``): a ConsumerMessage, a conductor call guarded by
``wait_first`` (tasks and an ``asyncio.wait``), an Event, a channel-queue put, and
per-event ack bookkeeping. That path tops out near 10k records/s on one core, a small
fraction of what aiokafka fetches. :class:`Intake` replaces the consumer's drain loop:
records of the scoring agent's topics go, as one list per partition per fetch, onto a
queue the agent reads; records of every other topic (the table changelog during
recovery) still go through Faust's conductor record by record.

Kept from Faust's loop, per batch instead of per record:

- the fetch itself (``_wait_next_records``: paused partitions, flow control during
  rebalances) and the active/buffered partition filter;
- the read offset: records below it are dropped, as Faust does after a seek;
- the consumer generation: each batch carries it, and the agent discards batches and
  unflushed work from before a rebalance (their offsets were never acked, so the
  partition's next owner reads them again);
- acks: :meth:`Intake.ack` marks a partition's offsets up to the last record of a
  flushed batch as acked, in the consumer's own structures, so Faust's commit loop
  commits them exactly as it would acked events;
- the commit at a rebalance: :meth:`Intake.before_revoke` runs the agent's hook and
  commits before Faust forgets the revoked partitions' acks;
- ``broker_commit_every``: a commit once that many offsets are acked.

Everything here leans on Faust internals (``_drain_messages``, ``_wait_next_records``,
``_read_offset``, ``_acked``, ``_acked_index``, ``_committed_offset``, the
consumer thread's ``_create_consumer``, and ``on_partitions_revoked`` as the thread
calls it): :mod:`streams.faust_adapter.compat` checks each at start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from streams.core.fetchpace import FetchMode, FetchPace
from streams.core.loop import Batch
from streams.faust_adapter import compat

log = logging.getLogger("leadstream")

#: Fetched batches waiting for the agent. Each is at most one fetch of one
#: partition, so this bounds memory at about QUEUE_BATCHES x max poll records.
QUEUE_BATCHES = 16
#: Seconds the drain loop waits in one fetch (Faust's value).
FETCH_TIMEOUT_S = 1.0
#: aiokafka's generation of a member the group does not know (before its first join,
#: or dropped); no window is ever of this generation once partitions are assigned.
LOST = -1


class Intake:
    """The consumer's drain loop, with the agent's topics delivered in batches.

    The :class:`streams.core.loop.BatchSource` of the scoring loop.
    """

    def __init__(self, app: Any, topics: Collection[str]) -> None:
        self.app = app
        self.consumer = app.consumer
        compat.check_consumer(self.consumer)
        self.topics = frozenset(topics)
        self.queue: asyncio.Queue[Batch] = asyncio.Queue(QUEUE_BATCHES)
        #: tp -> (generation, next offset to ack): acks continue where the last ended.
        self._next_ack: dict[Any, tuple[int, int]] = {}
        #: tp -> (generation, first offset the drain loop read in that generation)
        self._first_read: dict[Any, tuple[int, int]] = {}
        #: The fetch request's mode, busy or quiet (see install and streams.core.fetchpace).
        self.pace: FetchPace | None = None
        self.exactly_once = False

    def install(
        self, *, fetch_min_bytes: int, fetch_max_wait_ms: int, exactly_once: bool = False
    ) -> None:
        """Replace the consumer's drain loop (Faust's fetcher calls it on each start)
        and set how long the broker may hold a fetch to fill it. ``exactly_once``: a
        read_committed consumer (it skips aborted records and waits for open
        transactions: inputs, reroutes and changelog recovery alike), and no current
        generation once the group has dropped this member (see :attr:`generation`).

        Faust creates its aiokafka consumer with ``fetch_max_wait_ms=1500`` and the
        default ``fetch_min_bytes=1``: under steady traffic every fetch returns a few
        records and the next goes out at once, thousands of fetch requests a second
        that cost the broker more CPU than the worker's scoring. Asking for
        ``fetch_min_bytes`` or ``fetch_max_wait_ms``, whichever comes first, keeps
        fetches full and bounds the wait they add. When records come slower than that
        request would poll, the drain loop switches it to a quiet one that waits for
        the first record (:mod:`streams.core.fetchpace`).
        """
        self.consumer._drain_messages = self._drain
        self.exactly_once = exactly_once
        pace = self.pace = FetchPace(FetchMode(fetch_min_bytes, fetch_max_wait_ms))
        thread = self.consumer._thread
        create = thread._create_consumer

        def create_consumer(*args: Any, **kwargs: Any) -> Any:
            client = create(*args, **kwargs)
            client._fetch_min_bytes = pace.mode.min_bytes  # read when the client starts
            client._fetch_max_wait_ms = pace.mode.max_wait_ms
            if exactly_once:
                # Faust sets it only under its own exactly-once mode, which would also
                # swap its producers and commits for per-partition transactions.
                client._isolation_level = "read_committed"
            return client

        thread._create_consumer = create_consumer

    def _set_fetch_mode(self, mode: FetchMode) -> None:
        """Ask the broker for ``mode`` from the next fetch request on.

        aiokafka's fetcher reads both values each time it builds a request (in
        Faust's consumer thread when the consumer is not in the worker's loop); each
        is one attribute, written whole.
        """
        client = self.consumer._thread._consumer
        fetcher = getattr(client, "_fetcher", None)
        if fetcher is not None:  # else the client starts with self.pace.mode
            fetcher._fetch_min_bytes = mode.min_bytes
            fetcher._fetch_max_wait_ms = mode.max_wait_ms

    def before_revoke(self, hook: Callable[[], Awaitable[None]], timeout_s: float) -> None:
        """Run ``hook`` (for at most ``timeout_s``) when a rebalance starts to revoke
        partitions, then commit.

        Faust forgets a revoked partition's acks before its own revoke handling
        commits, so offsets the hook acks must be committed here, while the group
        generation they belong to is still current. A hook or commit that fails is
        logged and the rebalance goes on: at worst the next owner reads the events
        again, as it would without the hook.
        """
        consumer = self.consumer
        revoke = consumer.on_partitions_revoked

        async def on_partitions_revoked(revoked: set[Any]) -> None:
            if not self.app.should_stop:  # stopping has its own hook (App.stop_hooks)
                try:
                    await asyncio.wait_for(hook(), timeout_s)
                    # A commit in flight may predate the hook's acks: let it end first.
                    await consumer.maybe_wait_for_commit_to_finish()
                    await consumer.commit()
                except Exception as exc:  # includes the timeout
                    log.warning("leadstream: work before the rebalance failed: %r", exc)
            await revoke(revoked)

        consumer.on_partitions_revoked = on_partitions_revoked

    @property
    def generation(self) -> int:
        """The consumer group generation; exactly-once: :data:`LOST` while the group
        no longer knows this member.

        A member whose session expired (a long pause) learns it from a heartbeat and
        rejoins, and Faust's revoke runs first, still in the old generation. Its
        windows must not be committed then: their partitions have other owners, who
        read the committed offsets already (the group coordinator would refuse them
        too, ``groupfencing``; this spares the transaction). aiokafka resets its
        generation when the group drops the member (Faust reads it the same way for
        its tracing spans).
        """
        if self.exactly_once and self._dropped_from_group():
            return LOST
        return int(self.app.consumer_generation_id)

    def _dropped_from_group(self) -> bool:
        coordinator = self._coordinator()
        return coordinator is not None and coordinator.generation == LOST

    def member(self) -> tuple[int, str] | None:
        """(generation, member id) as the group coordinator knows this consumer, or
        None before the consumer exists: what exactly-once commits offsets as
        (``groupfencing``: the coordinator refuses a member it no longer has)."""
        coordinator = self._coordinator()
        if coordinator is None:
            return None
        return int(coordinator.generation), str(coordinator.member_id)

    def _coordinator(self) -> Any:
        client = self.consumer._thread._consumer
        return None if client is None else client._coordinator

    def flowing(self) -> bool:
        """False while Faust's flow control holds the streams (a rebalance)."""
        return bool(self.app.flow_control.is_active())

    def ack(self, tp: Any, generation: int, last_offset: int) -> None:
        """Mark the partition's offsets through ``last_offset`` as processed.

        The range starts where the previous ack of this generation ended, or at the
        committed offset: offsets in between that were never delivered (compaction,
        transaction markers) would otherwise leave a gap that stops commits.
        """
        if generation != self.generation:
            return  # a rebalance revoked it; the next owner reads it again
        consumer = self.consumer
        previous = self._next_ack.get(tp)
        if previous is not None and previous[0] == generation:
            start = previous[1]
        else:
            committed = consumer._committed_offset[tp]
            if committed is not None:
                start = committed
            else:  # nothing committed yet: from the first offset read this generation
                first = self._first_read.get(tp)
                start = first[1] if first is not None and first[0] == generation else last_offset
        if start > last_offset:
            return
        offsets = range(start, last_offset + 1)
        consumer._acked[tp].extend(offsets)
        consumer._acked_index[tp].update(offsets)
        consumer._n_acked += len(offsets)
        self._next_ack[tp] = (generation, last_offset + 1)

    def committed(self, tp: Any, generation: int, last_offset: int) -> None:
        """Exactly-once: offsets through ``last_offset`` were committed by a transaction.

        Nothing is acked, so Faust's commit loop never commits (a late commit of an
        older window's offsets would move the group back); its view of the committed
        offset is kept for the lag gauge. After a rebalance Faust reads it back from
        the group.
        """
        if generation == self.generation:
            self.consumer._committed_offset[tp] = last_offset + 1

    async def _drain(self, fetcher: Any) -> None:
        """Faust's ``Consumer._drain_messages``, batched for the agent's topics."""
        consumer = self.consumer
        app = self.app
        consumer_should_stop = consumer._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = consumer._read_offset
        buffered = consumer._buffered_partitions
        topics = self.topics
        put = self.queue.put
        first_read = self._first_read
        # Faust's monitor warns of a stalled stream unless it sees records arrive.
        inbound = app.monitor.stream_inbound_time
        monotonic = time.monotonic
        # Faust's broker_commit_every, honoured as Faust's own drain loop does: a
        # commit once that many offsets are acked (besides the commit interval).
        commit_every = consumer._commit_every
        pace = self.pace
        clock = asyncio.get_running_loop().time
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                records, active = await consumer._wait_next_records(FETCH_TIMEOUT_S)
                if pace is not None:
                    n = sum(map(len, records.values())) if records else 0
                    mode = pace.observe(n, clock())
                    if mode is not None:
                        self._set_fetch_mode(mode)
                # Faust yields here too: a fetch can return at once, many times over.
                await asyncio.sleep(0)
                if not records or consumer.should_stop:
                    continue
                if commit_every is not None and consumer._n_acked >= commit_every:
                    consumer._n_acked = 0
                    await consumer.commit()
                generation = app.consumer_generation_id
                for tp, batch in records.items():
                    if not consumer.flow_active or app.consumer_generation_id != generation:
                        break  # a rebalance began: what was fetched is read again later
                    if active is not None and tp not in active and tp not in buffered:
                        continue
                    floor = read_offset[tp]
                    if floor is not None and batch[0].offset < floor:
                        batch = [r for r in batch if r.offset >= floor]
                        if not batch:
                            continue
                    if tp.topic in topics:
                        seen = first_read.get(tp)
                        if seen is None or seen[0] != generation:
                            first_read[tp] = (generation, batch[0].offset)
                        inbound[tp] = monotonic()
                        await put(Batch(tp, batch, generation))
                    else:
                        await self._deliver_each(tp, batch)
                    read_offset[tp] = batch[-1].offset
        except consumer.consumer_stopped_errors:
            if consumer.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if consumer.transport.app.should_stop:
                return
            raise

    async def _deliver_each(self, tp: Any, records: list[Any]) -> None:
        """Faust's own per-record path (conductor, channels), for other topics."""
        consumer = self.consumer
        to_message = consumer._to_message
        callback = consumer.callback
        suspended = consumer.suspend_flow
        for record in records:
            if suspended.is_set():
                # A rebalance is suspending flow: let Faust abandon the delivery.
                await consumer.wait_first(callback(to_message(tp, record)), suspended.wait())
            else:
                await callback(to_message(tp, record))
