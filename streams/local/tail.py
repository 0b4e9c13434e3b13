"""``leadstream tail``: print stage changes (or dead letters) as they are published.

A plain aiokafka consumer with no group: it reads every partition and commits
nothing, so tailing never disturbs downstream consumers. It connects as the worker
does (``KAFKA_SECURITY_PROTOCOL`` and the rest, ``streams.kafkasecurity``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.faust_adapter.kafka_meta import BrokerAccessError, check_access, partitions_for
from streams.kafkasecurity import security_of
from streams.settings import Settings

#: How long stopping may take with the broker gone.
STOP_GRACE_S = 5.0
#: How long to wait for a broker that does not answer yet.
CONNECT_TIMEOUT_S = 30.0


def format_qualified(value: bytes) -> str:
    try:
        msg: dict[str, Any] = orjson.loads(value)
        reasons = ", ".join(f"{r['rule_id']} {r['points']:+.1f}" for r in msg["reasons"][:3])
        return (
            f"{msg['changed_at']}  {msg['lead_id']:<14} {msg['from_stage']:>12} -> "
            f"{msg['to_stage']:<12} {msg['direction']:<4} cause={msg['cause']:<12} "
            f"score={msg['score']:.1f} grade={msg['grade']}  [{reasons}]"
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"(unreadable message of {len(value)} bytes)"


def format_dead_letter(headers: list[tuple[str, bytes]]) -> str:
    h = {k: v.decode(errors="replace") for k, v in headers}
    return (
        f"{h.get('leadstream.dlq.failed_at', '?')}  {h.get('leadstream.dlq.reason', '?'):<20} "
        f"{h.get('leadstream.dlq.topic', '?')}[{h.get('leadstream.dlq.partition', '?')}]"
        f"@{h.get('leadstream.dlq.offset', '?')}  {h.get('leadstream.dlq.error', '')}"
    )


async def tail(settings: Settings, *, from_beginning: bool, dlq: bool) -> None:
    topic = settings.topic_dlq if dlq else settings.topic_qualified
    security = security_of(settings)
    # One clear line for refused credentials or an untrusted certificate (raises).
    await check_access(settings.bootstrap_servers, security, timeout=CONNECT_TIMEOUT_S)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        **security.aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        parts: set[int] = set()
        for _ in range(100):  # the topic may not exist yet on a fresh broker
            parts = await partitions_for(consumer, topic)
            if parts:
                break
            await asyncio.sleep(0.1)
        if not parts:
            print(f"leadstream tail: topic {topic} does not exist", file=sys.stderr)
            return
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        print(f"leadstream tail: {topic} ({len(tps)} partitions); Ctrl-C to stop", flush=True)
        async for record in consumer:
            if dlq:
                print(format_dead_letter(list(record.headers)), flush=True)
            else:
                print(format_qualified(record.value or b""), flush=True)
    finally:
        # Bounded: a stop with the broker gone must not hang the command.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), STOP_GRACE_S)


def run_tail(settings: Settings, *, from_beginning: bool, dlq: bool) -> int:
    async def main() -> None:
        task = asyncio.ensure_future(tail(settings, from_beginning=from_beginning, dlq=dlq))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    except BrokerAccessError as exc:
        print(f"leadstream tail: {exc}", file=sys.stderr)
        return 1
    return 0
