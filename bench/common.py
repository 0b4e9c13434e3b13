"""What every measure of ``python -m bench.run`` shares: the run's topics, producing
in bulk, and the progress line."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.kafkasecurity import KafkaSecurity, security_of
from streams.settings import Settings, topic_env, topic_roles
from streams.topics import ensure_topics

REPO = Path(__file__).resolve().parent.parent
#: Partitions of every topic the bench creates (the worker's default).
PARTITIONS = 4
#: Workload event kind -> the topic role it is sent to.
KIND_TOPIC = {"web": "web", "email": "email", "webinar": "webinar", "profile": "profiles"}
QUALIFIED_CONFIGS = {"message.timestamp.type": "LogAppendTime"}


@functools.cache
def kafka_security() -> KafkaSecurity:
    """How the bench's own clients connect: the worker's settings from the environment
    (``KAFKA_SECURITY_PROTOCOL`` and the rest), which its worker processes inherit."""
    return security_of(Settings.from_env())


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Topics:
    """Every topic of a run renamed ``<prefix>.<default name>``: each run (and the
    latency floor, and recovery) reads topics no other has written."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names = {role: f"{prefix}.{name}" for role, name in topic_roles().items()}

    @property
    def inputs(self) -> list[str]:
        return [self.names[k] for k in ("web", "email", "webinar", "profiles")]

    def env(self, app_id: str) -> dict[str, str]:
        return {"LEADSTREAM_APP_ID": app_id, **topic_env(self.names)}


def create_topics(bootstrap: str, topics: Topics) -> None:
    """Create the run's topics. lead.qualified keeps the time the broker appended each
    record (LogAppendTime): the latency points time a stage change by it."""
    qualified = topics.names["qualified"]
    security = kafka_security()
    ensure_topics(
        bootstrap, {qualified: PARTITIONS}, 60, configs=QUALIFIED_CONFIGS, security=security
    )
    ensure_topics(
        bootstrap, dict.fromkeys(topics.names.values(), PARTITIONS), 60, security=security
    )


async def produce_all(
    bootstrap: str, records: Iterator[tuple[str, bytes, bytes, int | None]], chunk: int = 20000
) -> int:
    """Send (topic, key, value, partition) records with large batches; wait for all acks."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=1 << 20,
        max_request_size=8 << 20,
        acks=1,
        **kafka_security().aiokafka_kwargs(),
    )
    await producer.start()
    n = 0
    try:
        pending: list[Any] = []
        for topic, key, value, partition in records:
            pending.append(await producer.send(topic, value, key=key, partition=partition))
            n += 1
            if len(pending) >= chunk:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n
