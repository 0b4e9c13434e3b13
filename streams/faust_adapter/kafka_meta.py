"""Topic metadata from an aiokafka consumer, refreshed when a topic is not known yet."""

from __future__ import annotations

from typing import Any


async def partitions_for(consumer: Any, topic: str) -> set[int]:
    """Partition numbers of ``topic`` (empty if it does not exist).

    Asks for the metadata of all topics, never for ``topic`` by name: on brokers that
    auto-create topics, naming it would create it, uncompacted and with the broker's
    partition count. aiokafka has no public refresh of a consumer's metadata
    (``topics()`` fetches a copy the consumer does not keep).
    """
    parts = consumer.partitions_for_topic(topic)
    if parts is None:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
    return set(parts or ())
