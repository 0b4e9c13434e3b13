"""The write-behind window: one write per lead per window, acks only after the
writes, a closed window's bytes are its own, rebalances drop everything unacked."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from scoring import LeadState
from streams.core.window import Write, WriteBehind


class Recorder:
    def __init__(
        self,
        *,
        max_events: int = 1000,
        max_age_s: float = 10.0,
        slice_s: float = 1.0,
        pace: float = 0.0,
    ) -> None:
        self.now = 0.0  # the clock a paced writer reads
        #: what the writer encoded, in order (published after, in slices)
        self.stored: list[Write] = []
        self.published: list[Write] = []
        self.acks: list[tuple[int, dict[Any, int]]] = []
        self.reports: list[int] = []
        self.acked_events: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = False
        self.wb = WriteBehind(
            encode=self.encode,
            publish=self.publish,
            ack=lambda generation, offsets: self.acks.append((generation, dict(offsets))),
            written=self.written,
            max_events=max_events,
            max_age_s=max_age_s,
            slice_s=slice_s,
            pace=pace,
            clock=lambda: self.now,
        )

    def encode(self, lead: str, state: LeadState, partition: int) -> bytes:
        value = b"%d" % state.events_seen
        self.stored.append((lead.encode(), partition, value))
        return value

    def written(self, states: int, events: int, seconds: float) -> None:
        self.reports.append(states)
        self.acked_events.append(events)

    async def publish(self, writes: list[Write]) -> None:
        await self.gate.wait()
        if self.fail_next:
            raise RuntimeError("broker gone")
        assert all(w in self.stored for w in writes)  # encoded before published
        self.published.extend(writes)

    def batch(self, states: Mapping[str, LeadState], offset: int, now: float = 0.0) -> None:
        touched = {lead: (s, 0, 0) for lead, s in states.items()}
        self.wb.record(touched, {("t", 0): offset}, len(states), now)

    async def settle(self) -> None:
        while not await self.wb.work():
            pass
        if self.wb.publishing is not None:
            await asyncio.wait([self.wb.publishing])


def lead(name: str, seen: int) -> LeadState:
    s = LeadState(name)
    s.events_seen = seen
    return s


async def test_each_lead_is_written_once_per_window_and_acked_after() -> None:
    r = Recorder()
    a, b = lead("a", 1), lead("b", 1)
    r.batch({"a": a}, offset=10)
    a.events_seen = 2
    r.batch({"a": a, "b": b}, offset=11)
    assert r.wb.pending_events == 3
    await r.wb.close()
    await r.settle()
    assert sorted(r.published) == sorted(r.stored) == [(b"a", 0, b"2"), (b"b", 0, b"1")]
    assert r.acks == [(-1, {("t", 0): 11})]
    assert r.reports == [2] and r.acked_events == [3]  # two states for three events
    assert r.wb.closed is None and r.wb.pending_events == 0


async def test_acks_wait_for_the_changelog() -> None:
    r = Recorder()
    r.batch({"a": lead("a", 1)}, offset=3)
    r.gate.clear()  # the broker is slow
    await r.wb.close()
    assert await r.wb.work() is True  # stored; publishing in the background
    assert r.stored and not r.published and not r.acks
    r.gate.set()
    await r.settle()
    assert r.acks == [(-1, {("t", 0): 3})]


async def test_a_closed_window_keeps_its_bytes_when_a_later_batch_changes_the_lead() -> None:
    r = Recorder()
    a = lead("a", 5)
    r.batch({"a": a}, offset=1)
    await r.wb.close()
    r.wb.claim("a")  # the next batch is about to change a
    a.events_seen = 6
    r.batch({"a": a}, offset=2)
    await r.settle()
    assert r.published == [(b"a", 0, b"5")]
    assert r.acks == [(-1, {("t", 0): 1})]
    await r.wb.close()
    await r.settle()
    assert r.published[-1] == (b"a", 0, b"6")
    assert r.acks[-1] == (-1, {("t", 0): 2})


async def test_slices_publish_as_stored_and_ack_once_everything_is_written() -> None:
    r = Recorder(slice_s=0.0)
    r.batch({f"l{i}": lead(f"l{i}", i) for i in range(200)}, offset=7)
    await r.wb.close()
    rounds = 1
    published_between_slices = []
    while not await r.wb.work():
        for _ in range(5):  # let the background publication run, as batches would
            await asyncio.sleep(0)
        assert r.acks == []
        published_between_slices.append(len(r.published))
        rounds += 1
    assert rounds > 1  # a zero budget still encodes 64 leads per slice
    # Each stored slice goes out before the window is complete, in store order.
    assert published_between_slices[0] > 0
    assert published_between_slices == sorted(published_between_slices)
    await r.settle()
    assert r.published == r.stored
    assert len({w[0] for w in r.published}) == 200
    assert r.acks == [(-1, {("t", 0): 7})]
    assert r.reports == [200]


async def test_windows_publish_in_order_one_at_a_time() -> None:
    r = Recorder(slice_s=0.0)
    r.gate.clear()
    r.batch({f"l{i}": lead(f"l{i}", i) for i in range(100)}, offset=1)
    await r.wb.close()
    await r.wb.finish()
    r.batch({"x": lead("x", 1)}, offset=2)
    closing = asyncio.ensure_future(r.wb.close())  # waits for the first publication
    await asyncio.sleep(0.01)
    assert not closing.done() and r.acks == []
    r.gate.set()
    await closing
    await r.settle()
    assert [offsets for _, offsets in r.acks] == [{("t", 0): 1}, {("t", 0): 2}]


async def test_a_failed_publication_stops_every_later_ack() -> None:
    r = Recorder()
    r.fail_next = True
    r.batch({"a": lead("a", 1)}, offset=1)
    await r.wb.close()
    await r.wb.work()
    first = r.wb.publishing
    assert first is not None
    await asyncio.wait([first])
    r.fail_next = False
    r.batch({"b": lead("b", 1)}, offset=2)
    await r.wb.close()
    await r.wb.work()
    second = r.wb.publishing
    assert second is not None
    await asyncio.wait([second])
    with pytest.raises(RuntimeError, match="broker gone"):
        second.result()  # the later window fails with the first one's error
    assert r.acks == [] and r.published == []


async def test_due_by_events_or_age_and_waits_while_a_window_is_open() -> None:
    r = Recorder(max_events=3, max_age_s=0.5)
    assert not r.wb.due(100.0) and r.wb.seconds_left(100.0) is None
    r.batch({"a": lead("a", 1)}, offset=1, now=100.0)
    assert not r.wb.due(100.1)
    left = r.wb.seconds_left(100.1)
    assert left is not None and abs(left - 0.4) < 1e-9
    assert r.wb.due(100.5)
    r.batch({"b": lead("b", 1), "c": lead("c", 1)}, offset=2, now=100.2)
    assert r.wb.due(100.2)
    await r.wb.close()
    assert r.wb.seconds_left(100.2) == 0.0  # a closed window is work to do now


async def test_a_window_past_its_age_waits_for_the_last_one_to_be_written() -> None:
    r = Recorder(max_events=3, max_age_s=1.0, slice_s=0.01, pace=0.5)
    r.batch({"a": lead("a", 1), "b": lead("b", 1)}, offset=1, now=0.0)
    r.now = 1.0
    await r.wb.close()  # written over 0.5 s from now
    r.batch({"c": lead("c", 1)}, offset=2, now=1.0)
    r.now = 2.5
    assert not r.wb.due(2.5)  # by age, but the window before is not written yet
    r.gate.clear()  # the changelog holds the publication back
    assert await r.wb.work() is True and r.wb.closed is None
    assert not r.wb.due(2.5)  # written, not yet published
    assert r.wb.seconds_left(2.5) == 0.01  # polls, does not spin
    r.batch({"d": lead("d", 1), "e": lead("e", 1)}, offset=3, now=2.5)
    assert not r.wb.due(2.5)  # at max_events too: it grows instead of stalling
    assert r.wb.seconds_left(2.5) == 0.01
    r.batch({"f": lead("f", 1), "g": lead("g", 1), "h": lead("h", 1)}, offset=4, now=2.5)
    assert r.wb.due(2.5)  # twice max_events closes it regardless
    r.gate.set()
    await r.settle()
    assert r.wb.due(2.5) and r.acks == [(-1, {("t", 0): 1})]


async def test_a_full_window_waits_for_the_last_one_instead_of_finishing_it_at_once() -> None:
    r = Recorder(max_events=3, max_age_s=10.0, slice_s=0.01, pace=0.5)
    r.batch({"a": lead("a", 1), "b": lead("b", 1), "c": lead("c", 1)}, offset=1, now=0.0)
    r.now = 1.0
    assert r.wb.due(1.0)  # full, nothing before it
    await r.wb.close()  # written over 0.5 s from now
    r.batch({"d": lead("d", 1), "e": lead("e", 1), "f": lead("f", 1)}, offset=2, now=1.0)
    assert not r.wb.due(1.0) and r.wb.closed is not None  # full, the last one still writing
    left = r.wb.seconds_left(1.0)
    assert left is not None and left > 0.0  # the next paced chunk, not a stall
    r.now = 1.5
    await r.settle()
    assert r.wb.due(1.5) and r.acks == [(-1, {("t", 0): 1})]


async def test_a_rebalance_discards_both_windows_unacked() -> None:
    r = Recorder()
    r.batch({"a": lead("a", 1)}, offset=1)
    await r.wb.close()
    r.batch({"b": lead("b", 1), "c": lead("c", 1)}, offset=2)
    assert r.wb.discard(generation=3) == 3
    assert r.wb.open.generation == 3 and r.wb.closed is None
    assert await r.wb.work() is True
    assert (r.published, r.acks) == ([], [])
    assert not r.wb.is_dirty("a") and not r.wb.is_dirty("b")


async def test_a_paced_window_is_written_evenly_over_its_share_of_the_window() -> None:
    r = Recorder(max_age_s=1.0, pace=0.5)
    r.batch({f"l{i}": lead(f"l{i}", i) for i in range(160)}, offset=9, now=0.0)
    r.now = 1.0  # open for 1 s: written over the next 0.5 s
    await r.wb.close()
    assert await r.wb.work() is False and r.stored == []  # nothing due yet
    left = r.wb.seconds_left(r.now)
    assert left is not None and 0.0 < left <= 0.5 * 16 / 160 + 1e-9  # one chunk's time
    r.now = 1.25
    assert await r.wb.work() is False
    assert len(r.stored) == 80  # half the time, half the states
    r.wb.claim("l0")  # a later batch copies l0 out; it still counts once
    r.now = 1.5
    assert await r.wb.work() is True
    assert len(r.stored) == 160 and len({w[0] for w in r.stored}) == 160
    await r.settle()
    assert r.acks == [(-1, {("t", 0): 9})]


async def test_claimed_states_are_spread_over_the_pace_not_written_first() -> None:
    r = Recorder(max_age_s=1.0, pace=0.5)
    r.batch({f"l{i}": lead(f"l{i}", i) for i in range(320)}, offset=9, now=0.0)
    r.now = 1.0
    await r.wb.close()
    hot = {f"l{i}".encode() for i in range(0, 320, 5)}  # a new batch touches 64 of them
    for key in hot:
        r.wb.claim(key.decode())
    r.now = 1.125  # a quarter of the pace: 80 states
    await r.wb.work()
    first = [w[0] for w in r.stored]
    assert len(first) == 80
    assert 8 <= sum(key in hot for key in first) <= 32  # about their share (16), not 64
    r.now = 1.5
    await r.settle()
    assert {w[0] for w in r.stored} == {f"l{i}".encode() for i in range(320)}
    assert len(r.stored) == 320


async def test_a_claimed_state_is_written_as_it_was_before_the_batch() -> None:
    r = Recorder(max_age_s=1.0, pace=0.5)
    a = lead("a", 3)
    r.batch({"a": a, "b": lead("b", 1)}, offset=1, now=0.0)
    r.now = 1.0
    await r.wb.close()
    r.wb.claim("a")
    a.events_seen = 4  # the batch changes the cached state in place
    r.now = 2.0
    await r.settle()
    assert sorted(r.published) == [(b"a", 0, b"3"), (b"b", 0, b"1")]


async def test_a_transactional_window_begins_before_its_writes_and_commits_before_its_ack() -> None:
    r = Recorder()
    steps: list[str] = []
    verdicts = [True, False]

    async def begin(window: Any) -> None:
        steps.append(f"begin {window.events}")

    async def commit(window: Any) -> bool:
        steps.append(f"commit {len(r.published)}")
        return verdicts.pop(0)

    wb = r.wb = WriteBehind(
        encode=r.encode,
        publish=r.publish,
        ack=lambda generation, offsets: steps.append("ack"),
        written=r.written,
        max_events=1000,
        max_age_s=10.0,
        slice_s=1.0,
        begin=begin,
        commit=commit,
    )
    r.batch({"a": lead("a", 1), "b": lead("b", 1)}, offset=1)
    await wb.close()
    await r.settle()
    r.batch({"c": lead("c", 1)}, offset=2)
    await wb.close()
    await r.settle()
    # The second window's commit said no (stale): no ack, nothing reported.
    assert steps == ["begin 2", "commit 2", "ack", "begin 1", "commit 3"]
    assert r.reports == [2]


async def test_a_window_cancelled_at_a_revoke_does_not_cancel_the_next_ones() -> None:
    r = Recorder()
    r.gate.clear()  # the write at the revoke overruns
    r.batch({"a": lead("a", 1)}, offset=1)
    await r.wb.close()
    await r.wb.finish()
    assert r.wb.publishing is not None
    await asyncio.sleep(0)  # the chain is under way, waiting for the broker
    r.wb.publishing.cancel()
    await asyncio.wait([r.wb.publishing])
    assert r.wb.discard(generation=2) == 0  # already out of the windows
    r.gate.set()
    r.batch({"b": lead("b", 1)}, offset=2)
    await r.wb.close()
    await r.settle()
    assert r.acks == [(2, {("t", 0): 2})] and r.published == [(b"b", 0, b"1")]
