"""TxnOffsetCommit with the member's generation (streams.faust_adapter.groupfencing),
without a broker: the request's encoding at each version, and what a response does
to the transaction. tests/integration/test_exactly_once.py has the broker's side."""

from __future__ import annotations

from io import BytesIO
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.protocol.transaction import TxnOffsetCommitRequest_v0
from aiokafka.structs import OffsetAndMetadata

from streams.core.loop import StaleWindow
from streams.faust_adapter import groupfencing
from streams.faust_adapter.groupfencing import (
    GenerationCheckedOffsetCommit,
    GroupMember,
    MemberTxnOffsetCommitRequest,
    StaleMember,
    TxnOffsetCommitRequest_v3,
    TxnOffsetCommitResponse_v3,
)

MEMBER = GroupMember("app", generation=7, member_id="m-1", instance_id="worker-0")
TOPICS = [("web.visits", [(0, 42, ""), (3, 9, "")])]


def request() -> MemberTxnOffsetCommitRequest:
    return MemberTxnOffsetCommitRequest(
        transactional_id="app-worker-0",
        member=MEMBER,
        producer_id=11,
        producer_epoch=2,
        topics=TOPICS,
    )


def test_a_broker_with_v3_gets_the_members_generation_and_id() -> None:
    struct = request().prepare({28: (0, 3)})
    assert isinstance(struct, TxnOffsetCommitRequest_v3)
    assert struct.FLEXIBLE_VERSION  # the flexible request header goes with it
    decoded = TxnOffsetCommitRequest_v3.decode(BytesIO(struct.encode()))
    assert decoded.to_object() == {
        "transactional_id": "app-worker-0",
        "group_id": "app",
        "producer_id": 11,
        "producer_epoch": 2,
        "generation_id": 7,
        "member_id": "m-1",
        "group_instance_id": "worker-0",
        "topics": [
            {
                "topic": "web.visits",
                "partitions": [
                    {"partition": 0, "offset": 42, "leader_epoch": -1, "metadata": "", "tags": {}},
                    {"partition": 3, "offset": 9, "leader_epoch": -1, "metadata": "", "tags": {}},
                ],
                "tags": {},
            }
        ],
        "tags": {},
    }


def test_a_broker_before_v3_gets_v0_without_the_member() -> None:
    struct = request().prepare({28: (0, 2)})
    assert isinstance(struct, TxnOffsetCommitRequest_v0)
    assert struct.to_object()["group_id"] == "app"


class FakeTxnManager:
    transactional_id = "app-worker-0"
    producer_id = 11
    producer_epoch = 2

    def __init__(self) -> None:
        self._txn_partitions = {TopicPartition("lead.qualified", 0)}
        self._txn_consumer_group: str | None = "app"
        self.errors: list[BaseException] = []
        self.committed: list[tuple[TopicPartition, int, str]] = []
        self.waiter = Waiter()

    def error_transaction(self, exc: BaseException) -> None:
        # As aiokafka's: the transaction's partitions and group are forgotten.
        self._txn_partitions.clear()
        self._txn_consumer_group = None
        self.errors.append(exc)
        self.waiter.error = exc

    def wait_for_transaction_end(self) -> Waiter:
        return self.waiter

    def offset_committed(self, tp: TopicPartition, offset: int, group_id: str) -> None:
        self.committed.append((tp, offset, group_id))


class Waiter:
    """The transaction's end future: whether its error was read."""

    error: BaseException | None = None
    read = False

    def exception(self) -> BaseException | None:
        self.read = True
        return self.error


def handler(group_id: str = MEMBER) -> tuple[GenerationCheckedOffsetCommit, FakeTxnManager]:
    txn = FakeTxnManager()
    sender = SimpleNamespace(_txn_manager=txn, _retry_backoff=0.1)
    offsets = {TopicPartition("web.visits", 0): OffsetAndMetadata(42, "")}
    return GenerationCheckedOffsetCommit(sender, offsets, group_id), txn


def response_v3(error_code: int) -> Any:
    return TxnOffsetCommitResponse_v3(0, [("web.visits", [(0, error_code, {})], {})], {})


@pytest.mark.parametrize("code", [22, 25, 27, 82])
def test_a_refused_member_makes_the_transaction_abortable_as_stale(code: int) -> None:
    h, txn = handler()
    assert h.handle_response(response_v3(code)) is None  # no retry
    [error] = txn.errors
    assert isinstance(error, StaleMember) and isinstance(error, StaleWindow)
    assert groupfencing.STALE_MEMBER_CODES[code] in str(error)
    assert txn.committed == []
    assert txn.waiter.read  # or asyncio logs an error nobody handled, at the abort
    # Kept for the abort, or it ends locally and the broker holds the transaction open.
    assert txn._txn_partitions == {TopicPartition("lead.qualified", 0)}
    assert txn._txn_consumer_group == "app"


def test_an_accepted_commit_is_recorded_as_aiokafka_records_it() -> None:
    h, txn = handler()
    assert h.handle_response(response_v3(0)) is None
    assert txn.errors == []
    assert txn.committed == [(TopicPartition("web.visits", 0), 42, MEMBER)]


def test_a_plain_group_id_keeps_aiokafkas_own_request() -> None:
    h, _ = handler("app")
    assert type(h.create_request()) is aiokafka_sender.TxnOffsetCommitRequest
    assert isinstance(handler()[0].create_request(), MemberTxnOffsetCommitRequest)


def test_install_swaps_the_handler_the_sender_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiokafka_sender, "TxnOffsetCommitHandler", object)
    groupfencing.install()
    assert aiokafka_sender.TxnOffsetCommitHandler is GenerationCheckedOffsetCommit
