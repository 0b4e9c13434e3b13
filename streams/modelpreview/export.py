"""``leadstream model export``: the input topics, as retained now, to an export file.

A bounded snapshot: every partition from its earliest retained offset up to its end
offset when the export starts, so it ends even while producers go on. No consumer
group, nothing committed: the worker's group and offsets are not touched. Lines are
written as records arrive (the preview orders them itself) to a temporary file,
renamed to the one asked for only when the whole snapshot is in it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from streams.kafkasecurity import security_of
from streams.modelpreview.exportfile import ExportRecord, encode_record
from streams.settings import Settings

#: Records one fetch may return.
FETCH_RECORDS = 10_000
#: Longest wait for a fetch, in ms (records up to the end offsets are there already).
FETCH_WAIT_MS = 1000
#: Longest wait for a broker to answer at all, in seconds.
CONNECT_TIMEOUT_S = 10.0

#: Called with (records written so far, records in the snapshot).
OnProgress = Callable[[int, int], None]


class ExportError(RuntimeError):
    """The export cannot be made; the message says why, in one line."""


class MissingTopicError(ExportError):
    """A topic to export does not exist (a reader may do without it)."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic} does not exist")
        self.topic = topic


def _consumer_kwargs(settings: Settings) -> dict[str, Any]:
    """How this command's Kafka consumer connects: as every leadstream client does
    (``streams.kafkasecurity``: TLS, SASL)."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.app_id}-model-export",
        **security_of(settings).aiokafka_kwargs(),
    }


def topic_kinds(settings: Settings) -> dict[str, str]:
    """Input topic -> the kind of input it carries."""
    return settings.input_kinds


def export_topics(
    settings: Settings, out: Path, topics: Sequence[str], on_progress: OnProgress
) -> int:
    """Write the snapshot of ``topics`` (input topics) to ``out``; the records written."""
    kinds = topic_kinds(settings)
    unknown = [t for t in topics if t not in kinds]
    if unknown:
        raise ExportError(
            f"not an input topic: {', '.join(unknown)} (the input topics: {', '.join(kinds)})"
        )
    return export_snapshot(settings, out, {t: kinds[t] for t in topics}, on_progress)


def export_snapshot(
    settings: Settings, out: Path, kinds: Mapping[str, str], on_progress: OnProgress
) -> int:
    """Write the snapshot of the topics ``kinds`` names (topic -> the ``kind`` its lines
    get; any topics, so other tools export theirs in this format) to ``out``; the
    records written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            n = asyncio.run(_export(settings, f, dict(kinds), on_progress))
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return n


async def _export(
    settings: Settings, out: BinaryIO, kinds: dict[str, str], on_progress: OnProgress
) -> int:
    from aiokafka import AIOKafkaConsumer

    from streams.faust_adapter.kafka_meta import BrokerAccessError, check_access

    try:  # one clear line for no broker, refused credentials, an untrusted certificate
        await check_access(settings.bootstrap_servers, security_of(settings), CONNECT_TIMEOUT_S)
    except BrokerAccessError as exc:
        raise ExportError(str(exc)) from None
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, auto_offset_reset="earliest", **_consumer_kwargs(settings)
    )
    await consumer.start()
    try:
        return await _read_snapshot(consumer, out, kinds, on_progress)
    finally:
        await consumer.stop()


async def _read_snapshot(
    consumer: Any, out: BinaryIO, kinds: dict[str, str], on_progress: OnProgress
) -> int:
    from aiokafka import TopicPartition

    from streams.faust_adapter.kafka_meta import partitions_for

    tps = []
    for topic in kinds:
        partitions = await partitions_for(consumer, topic)
        if not partitions:
            raise MissingTopicError(topic)
        tps += [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    starts = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    total = sum(ends[tp] - starts[tp] for tp in tps)
    on_progress(0, total)
    pending = {tp for tp in tps if ends[tp] > starts[tp]}
    for tp in pending:
        consumer.seek(tp, starts[tp])
    written = 0
    while pending:
        fetched = await consumer.getmany(
            *pending, timeout_ms=FETCH_WAIT_MS, max_records=FETCH_RECORDS
        )
        for tp, records in fetched.items():
            written += _write(out, kinds[tp.topic], [r for r in records if r.offset < ends[tp]])
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
        on_progress(written, total)
    return written


def _write(out: BinaryIO, kind: str, records: list[Any]) -> int:
    for r in records:
        value = r.value if r.value is not None else b""  # no value: invalid, as JSON
        record = ExportRecord(r.topic, kind, r.partition, r.offset, r.timestamp, r.key, value)
        out.write(encode_record(record))
    return len(records)
