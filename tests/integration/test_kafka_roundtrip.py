"""The broker the fixture provides works with the clients leadstream uses."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.topics import ensure_topics_async


async def test_produce_then_consume_round_trip(kafka_bootstrap: str, unique: str) -> None:
    topic = f"roundtrip-{unique}"
    assert await ensure_topics_async(kafka_bootstrap, {topic: 4}, timeout=30) == [topic]
    # Idempotent: a second call creates nothing and does not fail.
    assert await ensure_topics_async(kafka_bootstrap, {topic: 4}, timeout=30) == []

    sent = {f"lead-{i}".encode(): f"event-{i}".encode() for i in range(20)}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in sent.items():
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"roundtrip-{unique}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: dict[bytes, bytes] = {}
    partitions: dict[bytes, int] = {}
    try:
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    assert record.key is not None and record.value is not None
                    received[record.key] = record.value
                    partitions[record.key] = record.partition
    finally:
        await consumer.stop()

    assert received == sent
    # Keyed records spread over the topic's partitions (all 20 on one would mean 1 partition).
    assert len(set(partitions.values())) > 1


async def test_topic_configs_apply_to_created_topics(kafka_bootstrap: str, unique: str) -> None:
    # The bench times stage changes by their append on lead.qualified: LogAppendTime.
    topic = f"appendtime-{unique}"
    configs = {"message.timestamp.type": "LogAppendTime"}
    await ensure_topics_async(kafka_bootstrap, {topic: 1}, timeout=30, configs=configs)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        sent_ms = int(time.time() * 1000)
        await producer.send_and_wait(topic, b"x", timestamp_ms=1_000)  # 1970: overwritten
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert record.timestamp_type == 1  # LogAppendTime
    assert record.timestamp >= sent_ms - 1_000
