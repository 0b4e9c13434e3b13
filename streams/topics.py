"""The worker's topics: their names, and creating and checking them at start.

A lead's events, its state and its decay timers must share a partition number, so
every topic the worker reads or writes has ``LEADSTREAM_PARTITIONS`` partitions
(Faust creates the table's changelog itself, with the same count).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from streams.kafkasecurity import PLAINTEXT, KafkaSecurity, security_of
from streams.settings import Settings


class TopicError(RuntimeError):
    """Topics could not be created, or their layout does not fit the settings."""


def internal_topics(settings: Settings) -> tuple[str, str]:
    """Names of the repartition and tick topics."""
    return (f"{settings.app_id}-events-repartition", f"{settings.app_id}-decay-ticks")


def all_topics(settings: Settings) -> dict[str, int]:
    """Every topic the worker reads or writes (Faust creates its changelog itself)."""
    names = [*settings.input_topics, *internal_topics(settings)]
    names += [settings.topic_qualified, settings.topic_dlq]
    return dict.fromkeys(names, settings.partitions)


async def ensure_topics_async(
    bootstrap: str,
    topics: Mapping[str, int],
    # A retry deadline (the broker may still be starting), not a cancel-after timeout.
    timeout: float = 60.0,  # noqa: ASYNC109
    *,
    replication_factor: int | None = None,
    configs: Mapping[str, str] | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> list[str]:
    """Create the missing ``topics`` (name -> partitions); return the names created.

    Idempotent: existing topics are left as they are (partition counts and configs are
    not changed) and TopicAlreadyExists from a concurrent creator is fine. Retries until
    ``timeout`` while the broker is still starting. ``replication_factor`` defaults to
    ``min(3, brokers)``; ``configs`` (topic configs) apply to the topics created;
    ``security`` is how to connect (``streams.kafkasecurity``).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

    deadline = time.monotonic() + timeout
    created: list[str] = []
    last_error: Exception | None = None
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=max(1000, int(timeout * 1000)),
            **security.aiokafka_kwargs(),
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = {name: n for name, n in topics.items() if name not in existing}
            if not missing:
                return created
            if replication_factor is None:
                brokers = (await admin.describe_cluster())["brokers"]
                replication_factor = min(3, max(1, len(brokers)))
            response = await admin.create_topics(
                [
                    NewTopic(name, n, replication_factor, topic_configs=dict(configs or {}))
                    for name, n in missing.items()
                ]
            )
            for name, code, *_ in response.topic_errors:
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(code)(f"creating topic {name!r}")
                if code == 0:
                    created.append(name)
            # Loop once more: returns when metadata lists every topic.
        except KafkaError as exc:
            last_error = exc
        finally:
            await admin.close()
        if time.monotonic() > deadline:
            raise TopicError(
                f"could not create topics {sorted(topics)} on {bootstrap} within "
                f"{timeout:.0f}s: {last_error!r}"
            )
        await asyncio.sleep(0.2)  # retry backoff while the broker starts up


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    timeout: float = 60.0,
    *,
    replication_factor: int | None = None,
    configs: Mapping[str, str] | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> list[str]:
    """Blocking :func:`ensure_topics_async`; call it outside any running event loop."""
    return asyncio.run(
        ensure_topics_async(
            bootstrap,
            topics,
            timeout,
            replication_factor=replication_factor,
            configs=configs,
            security=security,
        )
    )


async def check_partitions(settings: Settings, wait_s: float = 30.0) -> None:
    """Raise TopicError unless every topic has ``settings.partitions`` partitions."""
    from aiokafka import AIOKafkaConsumer

    from streams.faust_adapter.kafka_meta import partitions_for

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(wait_s * 1000),
        **security_of(settings).aiokafka_kwargs(),
    )
    await asyncio.wait_for(consumer.start(), wait_s)
    try:
        wrong = []
        for topic in all_topics(settings):
            parts = await partitions_for(consumer, topic)
            if parts and len(parts) != settings.partitions:
                wrong.append(f"{topic} has {len(parts)}")
        if wrong:
            raise TopicError(
                f"partition counts differ from LEADSTREAM_PARTITIONS={settings.partitions}: "
                + ", ".join(wrong)
                + ". Set LEADSTREAM_PARTITIONS to match, or repartition the topics."
            )
    finally:
        await consumer.stop()


def prepare_topics(settings: Settings, *, timeout: float = 60.0) -> None:
    """Connect once, create missing topics, then check every partition count (blocking).

    The first connection fails fast, with ``kafka_meta.BrokerAccessError`` naming the
    setting to fix, when the broker refuses the credentials or the certificate is not
    trusted; it waits up to ``timeout`` for a broker that is not up yet.
    """
    from streams.faust_adapter.kafka_meta import check_access

    security = security_of(settings)
    asyncio.run(check_access(settings.bootstrap_servers, security, timeout=timeout))
    ensure_topics(settings.bootstrap_servers, all_topics(settings), timeout, security=security)
    asyncio.run(check_partitions(settings))
