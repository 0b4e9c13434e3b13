"""The latency floor: raw aiokafka passing events straight through, no scoring.

    python -m bench.relay --bootstrap HOST:PORT --inputs T1,T2,... --partitions N --output T

Its own process, like the worker: consumes every partition of ``inputs`` from the
end with the worker's fetch request under load (``FETCH_MIN_BYTES`` or the fetch wait)
and, for one event in ``SAMPLE``, produces ``{"trigger_event_id": ...}`` to
``output`` with the worker's producer linger and acks. The bench offers it the same
load as the worker's latency point and times it the same way, so the two p99s
differ by what the worker adds; the rest is the broker, the load generator and
two shared cores. Runs on the worker's event loop (``LEADSTREAM_EVENT_LOOP``), as
the ceiling does. Prints ``ready`` once positioned; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import zlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import kafka_security
from streams.faust_adapter.app import FETCH_MIN_BYTES, PRODUCER_LINGER_S
from streams.settings import Settings
from streams.worker import event_loop_policy

T = TypeVar("T")

#: One event in this many is relayed (by a hash of its id): a few times as many
#: records as the worker's stage changes at the same load.
SAMPLE = 16
#: Faust's producer default that the worker keeps (acks from all in-sync replicas).
PRODUCER_ACKS = "all"


def relayed(event_id: str) -> bool:
    return zlib.crc32(event_id.encode()) % SAMPLE == 0


async def relay(bootstrap: str, inputs: list[str], partitions: int, output: str) -> None:
    security = kafka_security().aiokafka_kwargs()  # as the worker it stands in for
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_min_bytes=FETCH_MIN_BYTES,
        fetch_max_wait_ms=Settings.from_env().fetch_max_wait_ms,
        **security,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=round(PRODUCER_LINGER_S * 1000),
        acks=PRODUCER_ACKS,
        **security,
    )
    await consumer.start()
    await producer.start()
    # The first send to a topic waits for its metadata: fetch it before the timing
    # starts (it held the first relayed records back 100-170 ms).
    await producer.partitions_for(output)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        tps = [TopicPartition(topic, p) for topic in inputs for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        print("ready", flush=True)
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=100)
            for records in fetched.values():
                for record in records:
                    event_id = orjson.loads(record.value)["event_id"]
                    if relayed(event_id):
                        body = orjson.dumps({"trigger_event_id": event_id})
                        await producer.send(output, body, key=record.key)
    finally:
        await producer.stop()
        await consumer.stop()


def run_on_worker_loop(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the worker's kind of event loop: the bench's baselines
    measure aiokafka as the worker runs it, and leave the process's policy alone."""
    policy = event_loop_policy(Settings.from_env().event_loop)
    with asyncio.Runner(loop_factory=policy.new_event_loop) as runner:
        return runner.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--inputs", required=True, help="comma-separated topics")
    parser.add_argument("--partitions", type=int, required=True, help="of each input topic")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    run_on_worker_loop(relay(args.bootstrap, args.inputs.split(","), args.partitions, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
