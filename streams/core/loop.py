"""The worker loop: take fetched batches, score them, write states behind, ack.

:class:`ScoringLoop` is the whole of what the worker does between Kafka and
``scoring``, as named steps a test can drive with in-memory fakes (no Faust here):

- :meth:`~ScoringLoop.run` is the agent's body: :meth:`~ScoringLoop.take` the next
  batches, :meth:`~ScoringLoop.score_batches` them, repeat;
- :meth:`~ScoringLoop.score_batches` scores through :class:`~streams.core.pipeline.
  Pipeline`, sends what the batch caused at once (stage changes, dead letters,
  reroutes) and leaves the touched states to the write-behind window
  (:mod:`streams.core.window`), which stores and publishes them once per lead per
  window and only then acks the window's offsets;
- :meth:`~ScoringLoop.revoke` and :meth:`~ScoringLoop.stop` write both windows and
  ack them before partitions move or the worker stops, so their next owner starts
  where this one ended; :meth:`~ScoringLoop.recovered` rebuilds the decay schedule
  from the owned partitions' states after each rebalance;
- :meth:`~ScoringLoop.fire_decay_ticks` sends one tick per lead whose stage changes by
  decay alone; ticks come back through the source as input, so a lead's state is only
  ever changed here, in order with its events.

What the loop needs from the outside is three small interfaces: a
:class:`BatchSource` (fetched batches, the consumer generation, acks), a
:class:`StateStore` (the local store plus the changelog) and a :class:`Sender` (the
producer). The Faust adapter (``streams.faust_adapter``) implements them.

Exactly-once (``LEADSTREAM_PROCESSING_GUARANTEE=exactly_once``) adds a fourth,
:class:`Transactions`: each state window becomes one Kafka transaction holding its
stage changes, dead letters and reroutes (held with the window instead of sent at
once), its changelog records and its input offsets; states reach the local store
only once it commits, and the consumer commits nothing itself. Decay ticks stay
outside transactions: a repeated tick finds nothing due.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from scoring import LeadState, ScoringModel, next_change_at, next_change_by
from scoring.migrate import migrate
from streams.core.partitioning import Partitioner
from streams.core.pipeline import (
    KIND_HEADER,
    ORIGIN_HEADER,
    TICK_KIND,
    BatchResult,
    Message,
    Pipeline,
    settle,
)
from streams.core.schedule import DecaySchedule
from streams.core.statecodec import decode_state, encode_state, next_change_from_raw
from streams.core.window import Write, WriteBehind, WriteWindow
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import internal_topics

log = logging.getLogger("leadstream")

#: Longest stretch of state writing between two batches (see streams.core.window).
WRITE_SLICE_S = 0.005
#: A closed window's writes are spread over this fraction of the time it was open,
#: finishing before the next one closes (see streams.core.window).
WRITE_PACE = 0.8
#: Longest wait for a transaction's abort after a failure: past it the broker aborts
#: the transaction itself (its timeout), and the worker is stopping anyway.
ABORT_TIMEOUT_S = 5.0
#: States indexed between two yields to the event loop after a rebalance (~25 ms).
RECOVERY_SLICE = 5_000
#: Decay changes due within this long of a batch are scheduled as the batch is
#: scored, the rest when the lead's window is written: a window and its paced write
#: may take longer than a crossing is away. Past two windows and their writes, with a
#: minute to spare for windows a loaded worker lets grow (only leads that may cross
#: by then pay for an exact solve; the bound rules out the rest).
DECAY_LOOKAHEAD_S = 60.0


@dataclass(slots=True)
class Batch:
    """Consecutive records of one partition from one fetch.

    ``tp`` has ``.topic`` and ``.partition`` (faust's TP, aiokafka's TopicPartition);
    each record has ``.offset``, ``.key``, ``.value`` and ``.headers``.
    """

    tp: Any
    records: list[Any]
    generation: int


class BatchSource(Protocol):
    """Fetched batches and the consumer's side of the bargain."""

    #: Batches of the loop's topics, in fetch order.
    queue: asyncio.Queue[Batch]

    @property
    def generation(self) -> int:
        """The consumer group generation now; it changes with every rebalance."""
        ...

    def flowing(self) -> bool:
        """False while a rebalance is in progress (what is fetched then is stale)."""
        ...

    def ack(self, tp: Any, generation: int, last_offset: int) -> None:
        """Mark the partition's offsets through ``last_offset`` as done (to commit)."""
        ...

    def committed(self, tp: Any, generation: int, last_offset: int) -> None:
        """Offsets through ``last_offset`` were committed in a transaction: nothing
        for the consumer to commit (exactly-once)."""
        ...


class StateStore(Protocol):
    """Lead states: the local store of each partition and the changelog behind it."""

    def get(self, key: bytes, partition: int) -> bytes | None: ...

    async def publish(self, writes: list[Write]) -> None:
        """Send ``(key, partition, value)`` writes to the changelog and, once they are
        delivered, store them locally (never ahead of the changelog); raise if a
        write was not delivered."""
        ...


class Sender(Protocol):
    """The producer of everything else the loop writes."""

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None: ...

    async def flush(self) -> None:
        """Wait until everything sent so far is delivered."""
        ...

    def fail(self, error: BaseException) -> None:
        """Stop the worker: something produced did not reach Kafka."""
        ...


class StaleWindow(Exception):
    """Raised by :meth:`Transactions.commit` when the consumer group refused the
    window's offsets: this worker is no longer the member the window was read as (a
    pause the group outlived). The window is aborted, not committed, and the worker
    goes on: the rebalance it will learn of discards what it holds."""


class Transactions(Protocol):
    """Exactly-once: one Kafka transaction per state window, one open at a time."""

    async def begin(self) -> None: ...

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Produce a record in the open transaction."""
        ...

    async def publish(self, writes: list[Write]) -> None:
        """Send state writes to the changelog in the open transaction; they are stored
        locally only once it commits."""
        ...

    async def commit(self, last_offsets: Mapping[Any, int]) -> None:
        """Add the input offsets (the last processed per topic-partition) and commit,
        then store the transaction's writes locally; raise if it did not commit
        (nothing of it is then visible, stored or committed): :class:`StaleWindow`
        if the group refused the offsets."""
        ...

    async def abort(self) -> None:
        """Abort the open transaction, if there is one."""
        ...


@dataclass(frozen=True, slots=True)
class LoopTopics:
    """Topic names by role, and the input kind each source topic carries."""

    kinds: Mapping[str, str]  # source topic -> web | email | webinar | profile | tick
    qualified: str
    dlq: str
    repartition: str
    ticks: str

    @classmethod
    def of(cls, settings: Settings) -> LoopTopics:
        repartition, ticks = internal_topics(settings)
        kinds = {**settings.input_kinds, ticks: TICK_KIND}
        return cls(kinds, settings.topic_qualified, settings.topic_dlq, repartition, ticks)

    @property
    def sources(self) -> list[str]:
        """Every topic the loop reads: the inputs, the repartition and tick topics."""
        return [*self.kinds, self.repartition]


class ScoringLoop:
    """Batches in, scores and stage changes out, states written once per window."""

    def __init__(
        self,
        *,
        settings: Settings,
        model: ScoringModel,
        metrics: Metrics,
        source: BatchSource,
        store: StateStore,
        sender: Sender,
        transactions: Transactions | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """With ``transactions``, exactly-once: ``sender`` then sends decay ticks only."""
        self.settings = settings
        self.model = model
        self.metrics = metrics
        self.source = source
        self.store = store
        self.sender = sender
        self.transactions = transactions
        self.topics = LoopTopics.of(settings)
        self.partitioner = Partitioner(settings.partitions)
        self.pipeline = Pipeline(
            model=model,
            metrics=metrics,
            partitioner=self.partitioner,
            max_future_skew_s=settings.max_future_skew_s,
            max_dead_letter_bytes=settings.dlq_max_value_bytes,
        )
        self.schedule = DecaySchedule()
        #: Decoded states in front of the store (hot leads skip a read and a decode).
        self.cache: dict[str, LeadState] = {}
        self.writer = WriteBehind(
            encode=self._encode,
            publish=self._publish,
            ack=self._ack,
            written=self._written,
            max_events=settings.flush_events,
            max_age_s=settings.flush_interval_s,
            slice_s=WRITE_SLICE_S,
            pace=WRITE_PACE,
            clock=monotonic,
            begin=self._begin if transactions is not None else None,
            commit=self._commit if transactions is not None else None,
            rollback=self._roll_back if transactions is not None else None,
        )
        self._clock = clock
        self._monotonic = monotonic
        #: Encoded states not yet stored locally (the one window publishing): a lead
        #: that falls back after an error reads its last good state here first.
        self._unwritten: dict[str, bytes] = {}
        #: Leads whose renumbered state an unencodable one left to the closed window.
        self._restated: set[str] = set()
        #: What states that could not be encoded owe (dead letters, a stage change),
        #: as (topic, key, value, headers), sent with the window before its ack.
        self._unstored: list[tuple[str, bytes, bytes, list[tuple[str, bytes]] | None]] = []
        self._lookahead_s = DECAY_LOOKAHEAD_S + 2 * settings.flush_interval_s * (1 + WRITE_PACE)
        # Scoring and writing both windows at a revoke or stop never interleave: the
        # windows are written between two batches, never inside one.
        self._turn = asyncio.Lock()
        #: Set at a graceful stop: batches taken from then on are left to the next owner.
        self.stopping = False
        #: Set once the first assignment's states are recovered (readiness).
        self.ready = False

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """The agent's body: forever take batches and score them."""
        while True:
            batches = await self.take()
            async with self._turn:
                if self.stopping:
                    continue  # written and acked already; the next owner reads these
                await self.score_batches(batches)
            # Nothing above suspends while batches are queued, so without this the
            # drain task and the consumer's replies would wait until the queue is
            # empty, and the next fetch with them: fetch age p99 80-150 ms -> 40-65
            # ms at 15k events/s (bench).
            await asyncio.sleep(0)

    async def take(self) -> list[Batch]:
        """Batches up to ``batch_size`` events; none when the writer has work first."""
        queue = self.source.queue
        batch_size = self.settings.batch_size
        if queue.empty():
            wait = self.writer.seconds_left(self._monotonic())
            if wait is None:
                first = await queue.get()
            elif wait <= 0:
                return []
            else:
                try:
                    first = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    return []
        else:
            first = queue.get_nowait()
        batches = [first]
        n = len(first.records)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.batch_linger_s
        while n < batch_size:
            while n < batch_size and not queue.empty():
                batch = queue.get_nowait()
                batches.append(batch)
                n += len(batch.records)
            left = deadline - loop.time()
            if n >= batch_size or left <= 0:
                break
            # More may be on the way: give the fetcher a slice of the linger.
            await asyncio.sleep(min(left, 0.001))
        return batches

    async def score_batches(self, batches: list[Batch]) -> None:
        """Score what is current, send what it caused, then a slice of state writing."""
        if not self.sync_generation():
            return  # mid-rebalance: not acked, fetched again after it
        generation = self.writer.open.generation
        batches = [b for b in batches if b.generation == generation]
        if batches:
            await self.emit(self.handle(batches))
        if self.writer.due(self._monotonic()):
            await self.writer.close()
        await self.writer.work()

    def handle(self, batches: list[Batch]) -> BatchResult:
        """Score the batches; their touched states go to the open window."""
        started = time.perf_counter()
        kinds = self.topics.kinds
        messages: list[Message] = []
        append = messages.append
        last_offsets: dict[Any, int] = {}
        for batch in batches:
            topic, partition = batch.tp.topic, batch.tp.partition
            kind = kinds.get(topic)
            if kind is not None:
                source = f"{topic}:{partition}"
                for r in batch.records:
                    append(
                        Message(topic, partition, r.offset, r.key, r.value, kind, source, r.offset)
                    )
            else:  # the repartition topic: kind and origin in headers
                for r in batch.records:
                    k = _header(r.headers, KIND_HEADER) or "unknown"
                    origin, _, at = (_header(r.headers, ORIGIN_HEADER) or "").rpartition(":")
                    if origin and at.isdigit():
                        append(
                            Message(topic, partition, r.offset, r.key, r.value, k, origin, int(at))
                        )
                    else:  # rerouted by an older version: deduplicated where it is
                        append(Message(topic, partition, r.offset, r.key, r.value, k))
            last_offsets[batch.tp] = batch.records[-1].offset
        claim = self.writer.claim
        cache = self.cache
        store_get = self.store.get
        leads = self.metrics.leads

        def load(lead_id: str, index: int) -> LeadState | None:
            claim(lead_id)  # the batch is about to change it
            state = cache.get(lead_id)
            if state is not None:
                return state
            raw = store_get(lead_id.encode(), messages[index].partition)
            if raw is None:
                leads.inc()  # first event of a lead this worker owns
                return None
            return decode_state(raw)

        now = self._clock()
        result = self.pipeline.process(messages, now=now, load=load, fall_back=self.fall_back)
        soon = now + self._lookahead_s
        model, schedule = self.model, self.schedule
        for lead_id, (state, partition, _index) in result.touched.items():
            cache[lead_id] = state
            due = next_change_by(state, model, soon)
            if due is not None:
                schedule.set(partition, lead_id, due)
        self.writer.record(result.touched, last_offsets, len(messages), self._monotonic())
        self.metrics.batch_size.observe(len(messages))
        self.metrics.batch_duration.observe(time.perf_counter() - started)
        return result

    async def emit(self, result: BatchResult) -> None:
        """Hand what a batch caused to the producer (exactly-once: to its window)."""
        topics = self.topics
        if self.transactions is not None:
            # Sent in the window's transaction: a read_committed consumer could not
            # see them before it commits anyway.
            held = self.writer.open.outputs
            held.extend((topics.qualified, key, value, None) for key, value in result.qualified)
            held.extend((topics.dlq, key, value, headers) for key, value, headers in result.dead)
            held.extend((topics.repartition, k, v, headers) for k, v, headers in result.reroute)
            return
        send = self.sender.send
        for key, value in result.qualified:
            await send(topics.qualified, key, value)
        for dkey, value, headers in result.dead:
            await send(topics.dlq, dkey, value, headers)
        for key, value, headers in result.reroute:
            await send(topics.repartition, key, value, headers)

    def sync_generation(self) -> bool:
        """Drop windows a rebalance made stale; False while one is in progress."""
        generation = self.source.generation
        if generation != self.writer.open.generation:
            discarded = self.writer.discard(generation)
            if discarded:
                # A rebalance came and writing the windows at its revoke failed or
                # overran: none of it was acked, the partitions' owners read it again.
                self.metrics.discarded.inc(discarded)
                self.cache.clear()
                self._unwritten.clear()
                self._restated.clear()
        return self.source.flowing()

    # ------------------------------------------------------- the writer's callbacks

    def _encode(self, lead_id: str, state: LeadState, partition: int) -> bytes | None:
        try:
            value = encode_state(state)
        except Exception as exc:  # one lead's state, not the window (issue 23)
            self._unstorable(lead_id, state, partition, exc)
            return None
        self._unwritten[lead_id] = value
        # Rescheduled here, once per lead per window (changes due soon were scheduled
        # as they were scored) -- unless a later batch changed the lead (it is dirty
        # again): this is then the closed window's copy, and the lead's newer state
        # schedules its own.
        if not self.writer.is_dirty(lead_id):
            self.schedule.set(partition, lead_id, next_change_at(state, self.model))
        return value

    def _unstorable(self, lead_id: str, state: LeadState, partition: int, error: Exception) -> None:
        """A state that cannot be encoded is not written: the lead keeps its last
        stored state, the rest of the window is written and acked, and the offsets
        of the events the lead loses go to the dead-letter topic with the window."""
        log.warning(
            "leadstream: a lead's state could not be encoded (%s); it keeps its last "
            "stored state and the events since go to the dead-letter topic",
            type(error).__name__,
        )
        held, good = self.fall_back(lead_id, partition)
        held.append(state)
        now = self._clock()
        detail = f"lead state not stored: {type(error).__name__}"
        write, transitions, dead = settle(lead_id, held, good, self.model, now, detail)
        for topic, key, value, headers in dead:
            self._unstored.append((self.topics.dlq, key, value, headers))
            self.metrics.dlq.labels(topic, "processing_error").inc()
        closed = self.writer.closed
        if write is not None and closed is not None and lead_id not in self._restated:
            self._restated.add(lead_id)  # once a window: its state may not encode either
            out = BatchResult()
            self.pipeline.emit_transitions(out, transitions, now, write)
            for key, value in out.qualified:
                self._unstored.append((self.topics.qualified, key, value, None))
            # Written with the window being written (its ack follows), as if it had
            # been this state all along.
            self.cache[lead_id] = write
            closed.dirty[lead_id] = (write, partition)

    def fall_back(self, lead_id: str, partition: int) -> tuple[list[LeadState], LeadState | None]:
        """Forget what memory holds of ``lead_id`` (its cached state and the open
        window's) and hold its last good state instead: the closed window's copy if
        it has one, else the state being written, else the stored one. Returns the
        states forgotten and that last good state (see ``Pipeline.process``)."""
        held: list[LeadState] = []
        cached = self.cache.pop(lead_id, None)
        if cached is not None:
            held.append(cached)
        entry = self.writer.open.dirty.pop(lead_id, None)
        if entry is not None and entry[0] is not cached:
            held.append(entry[0])
        good = self._last_good(lead_id, partition)
        if good is not None:
            self.cache[lead_id] = good
        self.schedule.set(
            partition, lead_id, next_change_at(good, self.model) if good is not None else None
        )
        return held, good

    def _last_good(self, lead_id: str, partition: int) -> LeadState | None:
        closed = self.writer.closed
        if closed is not None:
            # Claimed before the batch changed the lead (Pipeline's load claims
            # first); the closed window writes that copy, so the lead gets its own.
            entry = closed.claimed.get(lead_id)
            if entry is not None:
                return entry[0].copy()
        raw = self._unwritten.get(lead_id)
        if raw is None:
            raw = self.store.get(lead_id.encode(), partition)
        if raw is None:
            return None
        try:
            return decode_state(raw)
        except Exception:  # unreadable too: the lead starts afresh
            return None

    async def _publish(self, writes: list[Write]) -> None:
        if self.transactions is not None:
            await self._publish_in_transaction(writes)
            return
        try:
            # What unstorable states owe first: the window's ack follows its
            # publication, so they are delivered before their offsets commit.
            unstored, self._unstored = self._unstored, []
            for topic, key, value, headers in unstored:
                await self.sender.send(topic, key, value, headers)
            # The stage changes, dead letters and reroutes these states caused are
            # delivered before the states are stored: after a crash, a stored state
            # makes its events replays, and what they sent would never be sent again.
            await self.sender.flush()
            if writes:
                await self.store.publish(writes)
        except Exception as exc:
            self.sender.fail(exc)
            raise

    def _ack(self, generation: int, last_offsets: Mapping[Any, int]) -> None:
        # Exactly-once: the offsets were committed with the window's transaction. An
        # ack would let the consumer commit them again later, after the next window's
        # transaction had committed higher ones: a regression that re-reads a window
        # whose stage changes are already visible.
        done = self.source.ack if self.transactions is None else self.source.committed
        for tp, last_offset in last_offsets.items():
            done(tp, generation, last_offset)

    # --------------------------------------------- the writer's callbacks, exactly-once

    async def _begin(self, window: WriteWindow) -> None:
        """Open the window's transaction with the outputs its batches held."""
        transactions = self.transactions
        assert transactions is not None
        try:
            await transactions.begin()
            outputs, window.outputs = window.outputs, []
            for topic, key, value, headers in outputs:
                await transactions.send(topic, key, value, headers)
        except BaseException as exc:
            await self._abort(exc)
            raise

    async def _publish_in_transaction(self, writes: list[Write]) -> None:
        transactions = self.transactions
        assert transactions is not None
        try:
            unstored, self._unstored = self._unstored, []
            for topic, key, value, headers in unstored:
                await transactions.send(topic, key, value, headers)
            if writes:
                await transactions.publish(writes)
        except BaseException as exc:
            await self._abort(exc)
            raise

    async def _commit(self, window: WriteWindow) -> bool:
        """Commit the window's transaction with its offsets; False if it is stale."""
        transactions = self.transactions
        assert transactions is not None
        if window.generation != self.source.generation:
            # A rebalance moved on without this window written at its revoke: its
            # partitions' owners read these events again, so nothing of it may commit.
            await self._abort(None)
            return False
        try:
            await transactions.commit(window.last_offsets)
        except StaleWindow as exc:
            # A zombie's window (docs/architecture.md): the partitions' new owners
            # read these events; nothing of it may commit, and nothing is wrong here.
            log.warning("leadstream: a window was not committed: %s", exc)
            self.metrics.discarded.inc(window.events)
            await self._abort(None)
            return False
        except BaseException as exc:
            await self._abort(exc)
            raise
        return True

    async def _roll_back(self) -> None:
        """Windows were dropped (a rebalance): abort a transaction one of them began."""
        await self._abort(None)

    async def _abort(self, error: BaseException | None) -> None:
        """Abort the open transaction; stop the worker unless it was a cancellation
        (a write at a revoke or stop that overran: the windows are dropped)."""
        transactions = self.transactions
        assert transactions is not None
        try:
            await asyncio.wait_for(transactions.abort(), ABORT_TIMEOUT_S)
        except Exception as exc:  # the broker aborts it at its timeout; we stop
            log.warning("leadstream: aborting a transaction failed: %r", exc)
            error = error or exc
        if error is not None and not isinstance(error, asyncio.CancelledError):
            self.sender.fail(error)

    def _written(self, states: int, events: int, seconds: float) -> None:
        metrics, cache = self.metrics, self.cache
        self._unwritten.clear()  # the window is stored: the store has them all
        self._restated.clear()
        metrics.state_writes.inc(states)
        metrics.events_acked.inc(events)
        metrics.flush_duration.observe(seconds)
        if len(cache) > self.settings.state_cache_leads:
            # Every state outside the open window is written: those may go.
            is_dirty = self.writer.is_dirty
            for lead_id in [k for k in cache if not is_dirty(k)]:
                del cache[lead_id]
        metrics.state_cache.set(len(cache))

    # ------------------------------------------------- rebalances, stops, recovery

    async def write_windows(self, before: str) -> None:
        """Write both windows and wait until they are acked (between two batches).

        At a graceful stop or a rebalance, so the next owner re-reads nothing: with
        2 s windows that would be ~4 s of events and their stage changes sent again.
        """
        writer = self.writer
        async with self._turn:
            if not self.sync_generation():
                return
            if not writer.pending_events:
                # A window's publication may still be under way (exactly-once: its
                # commit): it must end before the partitions move.
                if writer.publishing is not None and not writer.publishing.done():
                    await writer.publishing
                return
            started = time.perf_counter()
            if writer.open.events:
                await writer.close()
            await writer.finish()
            if writer.publishing is not None:
                await writer.publishing  # the last step acks the window
            log.info(
                "leadstream: wrote the state windows before %s in %.2fs",
                before,
                time.perf_counter() - started,
            )

    async def stop(self) -> None:
        """A graceful stop: write and ack both windows; score nothing after."""
        self.stopping = True  # run() skips what it takes from now on
        await self.write_windows("stopping")

    async def revoke(self) -> None:
        """Partitions are about to move: write and ack both windows first."""
        await self.write_windows("the rebalance")

    async def recovered(self, owned: set[int], states: Iterable[tuple[bytes, bytes]]) -> int:
        """After each rebalance: drop cached states, index owned leads' decay timers.

        ``states`` are the stored ``(key, value)`` pairs of the owned partitions (others
        are skipped). Returns the number of leads owned. Gives way to the event loop
        every :data:`RECOVERY_SLICE` states: a million leads take seconds, and the
        consumer's heartbeats run on this loop (a pass longer than the session
        timeout made the group drop the worker and recover again, in a loop).
        """
        self.cache.clear()
        schedule, model, partition_of = self.schedule, self.model, self.partitioner.partition_of
        schedule.drop_partitions_except(owned)
        for partition in owned:
            schedule.reset(partition)
        leads = 0
        for seen, (key, raw) in enumerate(states, 1):
            lead_id = key.decode() if isinstance(key, bytes) else str(key)
            partition = partition_of(lead_id)
            if partition in owned:
                leads += 1
                schedule.set(partition, lead_id, next_change_from_raw(raw, model))
            if seen % RECOVERY_SLICE == 0:
                await asyncio.sleep(0)
        self.metrics.leads.set(leads)
        self.metrics.scheduled.set(len(schedule))
        self.ready = True
        log.info("leadstream: %d leads recovered, %d decay timers", leads, len(schedule))
        return leads

    # ------------------------------------------------------------------ decay

    async def fire_decay_ticks(self) -> int:
        """Send a tick for every lead whose decay change is due; returns how many.

        A tick is a record in the lead's own partition of the tick topic, which the
        loop reads like an input, so the change is applied in order with the lead's
        events. The topic was needed while states were written through Faust's table
        (writes only inside stream iteration); they no longer are, and ticks could
        be scored in-process under ``_turn`` instead. That simplification is left for
        the exactly-once work (issue 23), which changes how the loop tracks what it
        applied per input record, ticks included.
        """
        now = self._clock()
        send, topic = self.sender.send, self.topics.ticks
        sent = 0
        for partition in self.schedule.partitions():
            for lead_id in self.schedule.pop_due(partition, now):
                await send(topic, lead_id.encode(), b"%.3f" % now, None, partition)
                sent += 1
        return sent

    def lead_state(self, lead_id: str, stored: Callable[[str], bytes | None]) -> LeadState | None:
        """The newest state of ``lead_id``: cached, else ``stored(lead_id)`` decoded
        (and, if scored under another model, migrated for reading; nothing is sent
        or written: the lead's next record or tick does that)."""
        state = self.cache.get(lead_id)
        if state is not None:
            return state
        raw = stored(lead_id)
        if raw is None:
            return None
        state = decode_state(raw)
        migrate(state, self.model, self._clock())
        return state


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None
