"""The start-up check of every private part of faust, mode and aiokafka we rely on.

leadstream replaces a few of Faust's internals for speed (the consumer's drain loop,
the table's writes, the consumer thread) and reads others (acked offsets, the
committed offsets, the producer). None of that is public API, so an upgrade may
break it without a type error. This module lists each of them in one place, and
:func:`check_installed` (at start, before Faust runs) and :func:`check_consumer`
(once the app's consumer exists) fail with one line naming what changed.

faust-streaming and mode-streaming are pinned exactly in ``pyproject.toml``; the
versions below are the ones this code was checked against. aiokafka is pinned to a
minor series.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from importlib import metadata
from typing import Any

#: distribution -> the version (or version prefix) this adapter was written for.
PINNED: dict[str, str] = {
    "faust-streaming": "0.15.3",
    "mode-streaming": "0.7.1",
    "aiokafka": "0.14.",
}

#: (module, class, attributes the adapter uses or overrides). Class attributes and
#: methods only; instance attributes are in CONSUMER_ATTRIBUTES and INIT_ASSIGNED.
CLASS_ATTRIBUTES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        (
            "_drain_messages",  # replaced by Intake._drain
            "_wait_next_records",
            "_to_message",
            "_new_consumer_thread",  # overridden by InLoopConsumer
            "consumer_stopped_errors",
            "wait_first",
            "on_partitions_revoked",
            "maybe_wait_for_commit_to_finish",
        ),
    ),
    (
        "faust.transport.drivers.aiokafka",
        "AIOKafkaConsumerThread",
        ("_create_consumer", "_consumer"),
    ),
    ("faust.transport.drivers.aiokafka", "Producer", ("_ensure_producer",)),
    (
        "faust.stores.rocksdb",
        "Store",
        ("_db_for_partition", "partition_path", "offset_key", "set_persisted_offset"),
    ),
    # Wrapped under exactly-once (streams.faust_adapter.recovery).
    ("faust.tables.recovery", "Recovery", ("_build_highwaters",)),
    ("mode.threads", "QueueServiceThread", ("_serve", "_gather_remaining_tasks", "call_thread")),
    ("mode.worker", "Worker", ("_on_sigint", "_on_sigterm")),
    ("aiokafka.client", "AIOKafkaClient", ("force_metadata_update",)),
    ("aiokafka.conn", "AIOKafkaConnection", ("close",)),  # kafka_meta.check_access
    # Exactly-once: TxnOffsetCommit with the member (groupfencing) replaces this
    # handler (looked up by name in the sender module) and reads the transaction
    # manager's identity through it.
    ("aiokafka.producer.sender", "TxnOffsetCommitHandler", ("create_request", "handle_response")),
    (
        "aiokafka.producer.transaction_manager",
        "TransactionManager",
        ("producer_id", "producer_epoch", "error_transaction", "wait_for_transaction_end"),
    ),
    ("aiokafka.protocol.api", "RequestStruct", ("FLEXIBLE_VERSION", "build_request_header")),
)

#: (module, function, keyword parameters passed to it): functions outside aiokafka's
#: public API called directly. ``create_conn`` is one connection with TLS and SASL,
#: whose errors are the real ones (the clients log and retry them); see
#: ``kafka_meta.check_access``.
FUNCTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "aiokafka.conn",
        "create_conn",
        (
            "client_id",
            "request_timeout_ms",
            "security_protocol",
            "ssl_context",
            "sasl_mechanism",
            "sasl_plain_username",
            "sasl_plain_password",
        ),
    ),
)

#: Instance attributes of Faust's consumer that Intake reads or writes (acks).
CONSUMER_ATTRIBUTES: tuple[str, ...] = (
    "_acked",
    "_acked_index",
    "_n_acked",
    "_committed_offset",
    "_read_offset",
    "_buffered_partitions",
    "_stopped",
    "_thread",
    "_commit_every",
)

#: (module, class, instance attributes its __init__ must assign): read or written on
#: objects that only exist once the consumer runs, so their constructor is checked.
INIT_ASSIGNED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("aiokafka.consumer.fetcher", "Fetcher", ("_fetch_min_bytes", "_fetch_max_wait_ms")),
    (
        "aiokafka.consumer.consumer",
        "AIOKafkaConsumer",
        ("_client", "_fetch_min_bytes", "_isolation_level", "_coordinator"),
    ),
    # Exactly-once: a member the group dropped has its generation reset (Intake), and
    # offsets are committed with the generation and member id (groupfencing).
    ("aiokafka.consumer.group_coordinator", "GroupCoordinator", ("generation", "member_id")),
    ("aiokafka.producer.sender", "TxnOffsetCommitHandler", ("_offsets", "_group_id")),
    ("aiokafka.producer.sender", "BaseHandler", ("_sender",)),
    (
        "aiokafka.producer.transaction_manager",
        "TransactionManager",
        ("transactional_id", "_txn_partitions", "_txn_consumer_group"),
    ),
    # Exactly-once recovery sets the offsets a recovery starts from.
    ("faust.tables.recovery", "Recovery", ("active_offsets",)),
    ("faust.stores.rocksdb", "Store", ("rocksdb_options",)),
    ("faust.web.drivers.aiohttp", "Web", ("web_app",)),
)


class CompatError(RuntimeError):
    """The installed faust, mode or aiokafka lacks something the adapter relies on."""


def check_installed() -> None:
    """Raise :class:`CompatError` unless versions and every private part match."""
    for dist, want in PINNED.items():
        have = metadata.version(dist)
        if not (have == want or (want.endswith(".") and have.startswith(want))):
            raise CompatError(
                f"{dist} {have} is installed; leadstream's Faust adapter relies on internals "
                f"of {want.rstrip('.')}{'x' if want.endswith('.') else ''} "
                "(streams/faust_adapter/compat.py lists them)"
            )
    for module, name, attributes in CLASS_ATTRIBUTES:
        cls = _class(module, name)
        _require(f"{module}.{name}", (a for a in attributes if not hasattr(cls, a)))
    for module, name, attributes in INIT_ASSIGNED:
        source = inspect.getsource(vars(_class(module, name))["__init__"])
        missing = [a for a in attributes if not re.search(rf"self\.{a}\s*(:[^=\n]*)?=", source)]
        _require(f"{module}.{name}", missing)
    for module, name, parameters in FUNCTIONS:
        accepted = inspect.signature(_function(module, name)).parameters
        _require(f"{module}.{name}()", (p for p in parameters if p not in accepted))


def check_consumer(consumer: Any) -> None:
    """Raise :class:`CompatError` unless Faust's consumer has what Intake uses."""
    missing = (a for a in CONSUMER_ATTRIBUTES if not hasattr(consumer, a))
    _require(f"{type(consumer).__module__}.{type(consumer).__name__} instance", missing)


def _class(module: str, name: str) -> type:
    try:
        cls = getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError) as exc:
        raise CompatError(f"{module}.{name} is gone ({exc}); see faust_adapter/compat.py") from None
    assert isinstance(cls, type)
    return cls


def _function(module: str, name: str) -> Any:
    try:
        function = getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError) as exc:
        raise CompatError(f"{module}.{name} is gone ({exc}); see faust_adapter/compat.py") from None
    if not callable(function):
        raise CompatError(f"{module}.{name} is no longer a function; see faust_adapter/compat.py")
    return function


def _require(owner: str, missing: Iterable[str]) -> None:
    gone = list(missing)
    if gone:
        raise CompatError(
            f"{owner} no longer has {', '.join(gone)}: the installed version changed an "
            "internal leadstream relies on (see streams/faust_adapter/compat.py)"
        )
