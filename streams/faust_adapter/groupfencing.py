"""Zombie fencing for exactly-once: TxnOffsetCommit v3 with the group generation (KIP-447).

aiokafka 0.14 commits a transaction's input offsets with TxnOffsetCommit v0, which
the group coordinator does not check against the consumer group: a worker the group
dropped while it was paused (a *zombie*) could still commit a window whose
partitions another worker has already read, and its stage changes would appear
twice. From v3 the request carries the member's generation, member id and group
instance id, and the coordinator refuses a member the group no longer has
(``ILLEGAL_GENERATION``, ``UNKNOWN_MEMBER_ID``, ``FENCED_INSTANCE_ID``).

:func:`install` swaps aiokafka's handler of that request for
:class:`GenerationCheckedOffsetCommit`, which sends v3 when the group id is a
:class:`GroupMember` (how :class:`~streams.faust_adapter.transactions.WindowTransactions`
passes it) and the broker speaks v3 (Kafka 2.5+), and turns a refusal into an
abortable :class:`StaleMember` error: the loop aborts that window as stale instead of
stopping (its events are read again by the partitions' owners). Anything else goes
to aiokafka's own handler, unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any, TypeAlias

from aiokafka.producer import sender as aiokafka_sender
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.transaction import TxnOffsetCommitRequest_v0
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from streams.core.loop import StaleWindow

#: Error codes by which the group coordinator refuses a member it no longer has, or
#: one whose generation is not settled yet: the window must not commit.
STALE_MEMBER_CODES = {
    22: "ILLEGAL_GENERATION",
    25: "UNKNOWN_MEMBER_ID",
    27: "REBALANCE_IN_PROGRESS",
    82: "FENCED_INSTANCE_ID",
}


class StaleMember(StaleWindow):
    """The group coordinator refused the window's offsets: the member is stale."""


class GroupMember(str):
    """A consumer group id carrying the member's identity, as KIP-447 fences by.

    A ``str`` so that it passes through aiokafka's transaction manager unchanged
    (which keys and encodes it as the group id) to the handler below."""

    generation: int
    member_id: str
    instance_id: str | None

    def __new__(
        cls, group_id: str, *, generation: int, member_id: str, instance_id: str | None
    ) -> GroupMember:
        member = super().__new__(cls, group_id)
        member.generation = generation
        member.member_id = member_id
        member.instance_id = instance_id
        return member


class TxnOffsetCommitResponse_v3(Response):
    API_KEY = 28
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "errors",
            CompactArray(
                ("topic", CompactString("utf-8")),
                (
                    "partition_errors",
                    CompactArray(
                        ("partition", Int32), ("error_code", Int16), ("tags", TaggedFields)
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class TxnOffsetCommitRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 28
    API_VERSION = 3
    RESPONSE_TYPE = TxnOffsetCommitResponse_v3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("group_id", CompactString("utf-8")),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", CompactString("utf-8")),
        ("group_instance_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("topic", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition", Int32),
                        ("offset", Int64),
                        ("leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


_Struct: TypeAlias = TxnOffsetCommitRequest_v0 | TxnOffsetCommitRequest_v3


class MemberTxnOffsetCommitRequest(Request[_Struct]):
    """TxnOffsetCommit at v3 when the broker has it (with the member), else v0."""

    API_KEY = 28

    def __init__(
        self,
        *,
        transactional_id: str,
        member: GroupMember,
        producer_id: int,
        producer_epoch: int,
        topics: list[tuple[str, list[tuple[int, int, str]]]],
    ) -> None:
        self.transactional_id = transactional_id
        self.member = member
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.topics = topics

    def build(self, request_struct_class: type[_Struct]) -> _Struct:
        group_id = str(self.member)
        if request_struct_class.API_VERSION < 3:  # a broker before 2.5: no fencing
            return request_struct_class(
                self.transactional_id, group_id, self.producer_id, self.producer_epoch, self.topics
            )
        topics: list[
            tuple[str, list[tuple[int, int, int, str, dict[int, bytes]]], dict[int, bytes]]
        ]
        topics = [
            (topic, [(p, offset, -1, metadata, {}) for p, offset, metadata in partitions], {})
            for topic, partitions in self.topics
        ]
        return request_struct_class(
            self.transactional_id,
            group_id,
            self.producer_id,
            self.producer_epoch,
            self.member.generation,
            self.member.member_id,
            self.member.instance_id,
            topics,
            {},
        )


class GenerationCheckedOffsetCommit(aiokafka_sender.TxnOffsetCommitHandler):
    """aiokafka's TxnOffsetCommit handler, sending the member's generation (v3)."""

    def create_request(self) -> Any:
        member = self._group_id
        if not isinstance(member, GroupMember):
            return super().create_request()
        txn_manager = self._sender._txn_manager
        topics: defaultdict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for tp, offset in sorted(self._offsets.items()):
            topics[tp.topic].append((tp.partition, offset.offset, offset.metadata))
        return MemberTxnOffsetCommitRequest(
            transactional_id=txn_manager.transactional_id,
            member=member,
            producer_id=txn_manager.producer_id,
            producer_epoch=txn_manager.producer_epoch,
            topics=list(topics.items()),
        )

    def handle_response(self, resp: Any) -> Any:
        if resp.API_VERSION < 3:
            return super().handle_response(resp)
        errors = [
            (topic, [(partition, code) for partition, code, _ in partitions])
            for topic, partitions, _ in resp.errors
        ]
        stale = {
            STALE_MEMBER_CODES[c] for _, ps in errors for _, c in ps if c in STALE_MEMBER_CODES
        }
        if stale:
            # Abortable, as aiokafka treats a refused group authorisation: the offsets'
            # future fails, and the transaction can only be aborted.
            error = StaleMember(
                f"the group refused the window's offsets: {', '.join(sorted(stale))}"
            )
            fail_abortably(self._sender._txn_manager, error)
            return None
        return super().handle_response(SimpleNamespace(errors=errors))


def fail_abortably(txn_manager: Any, error: BaseException) -> None:
    """Fail the open transaction so that it can only be aborted, and the abort ends
    it at the coordinator.

    aiokafka's ``error_transaction`` also forgets which partitions and group the
    transaction holds, so the abort that follows looks empty and completes locally,
    without an EndTxn: the coordinator keeps the transaction open until its timeout,
    holding every read_committed reader of those partitions (the new owner's
    recovery waited 15-23 s in bench.chaos), and then fences this producer. They
    are put back for the abort."""
    partitions, group = set(txn_manager._txn_partitions), txn_manager._txn_consumer_group
    txn_manager.error_transaction(error)
    txn_manager._txn_partitions.update(partitions)
    txn_manager._txn_consumer_group = group
    # Read here: the abort replaces this future unread, which asyncio would log as an
    # error nobody handled (the commit's caller gets the error anyway).
    txn_manager.wait_for_transaction_end().exception()


def install() -> None:
    """Make aiokafka's producers send TxnOffsetCommit through the handler above."""
    aiokafka_sender.TxnOffsetCommitHandler = GenerationCheckedOffsetCommit
