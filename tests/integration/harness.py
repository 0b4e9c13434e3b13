"""Run real ``leadstream worker`` processes against the real broker, and talk to them.

Every worker gets its own app id, topic names and data dir, so test modules never
see each other's messages. Waiting is always polling with a deadline.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.kafkasecurity import PLAINTEXT, KafkaSecurity
from streams.local.kafka import free_ports
from streams.local.launcher import WorkerError, WorkerProcess
from streams.local.verify import read_topic
from streams.settings import topic_env, topic_roles


def free_port() -> int:
    return free_ports(1)[0]


def poll(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Topics:
    """Every topic renamed ``<prefix>.<default name>``; attributes by role (``.web``)."""

    prefix: str

    @property
    def env(self) -> dict[str, str]:
        names = {role: getattr(self, role) for role in topic_roles()}
        return {"LEADSTREAM_APP_ID": f"{self.prefix}-app", **topic_env(names)}

    def __getattr__(self, role: str) -> str:
        roles = topic_roles()
        if role in roles:
            return f"{self.prefix}.{roles[role]}"
        raise AttributeError(role)


@dataclass
class Worker:
    """One ``leadstream worker`` child process (``streams.local.launcher``), with the
    tests' settings: fast timer ticks, 2 partitions, failures as ``AssertionError``."""

    bootstrap: str
    topics: Topics
    data_dir: Path
    model_path: Path | None = None
    store: str = "rocksdb://"
    partitions: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    web_port: int = field(default_factory=free_port)
    process: WorkerProcess = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # One log per port: a test may start two workers over one data dir.
        log_path = self.data_dir / f"worker-{self.web_port}.log"
        self.process = WorkerProcess(self.data_dir, web_port=self.web_port, log_path=log_path)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The child process; None until :meth:`start`."""
        return self.process.proc

    @property
    def log_path(self) -> Path | None:
        """The worker's log file; None until :meth:`start`."""
        return self.process.log_path if self.process.proc is not None else None

    def settings(self) -> dict[str, str]:
        """The worker's settings as environment variables (the launcher adds its data
        dir and web address)."""
        env = {
            **self.topics.env,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "LEADSTREAM_STORE": self.store,
            "LEADSTREAM_PARTITIONS": str(self.partitions),
            # Timers are due within a tenth of a second, not the default quarter.
            "LEADSTREAM_TICK_INTERVAL_SECONDS": "0.1",
        }
        if self.model_path is not None:
            env["LEADSTREAM_MODEL"] = str(self.model_path)
        return {**env, **self.extra_env}

    def start(self) -> Worker:
        self.process.start(self.settings())
        return self

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)

    def get(self, path: str) -> tuple[int, bytes]:
        return self.process.get(path)

    def get_json(self, path: str) -> tuple[int, Any]:
        return self.process.get_json(path)

    def wait_ready(self, timeout: float = 90.0) -> None:
        try:
            self.process.wait_ready(timeout, interval=0.2)
        except WorkerError as err:  # a test failure, not an error in the test
            raise AssertionError(str(err)) from None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait: a graceful stop must finish within ``timeout``."""
        if not self.process.stop(timeout):
            raise AssertionError(f"worker did not stop within {timeout}s:\n{self.log_tail()}")
        assert self.proc is not None
        return self.proc.returncode

    def kill(self) -> None:
        self.process.kill()


def event(kind: str, lead_id: str, event_id: str, at: float, **fields: Any) -> dict[str, Any]:
    """A valid input message of ``kind`` with RFC 3339 time."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
    return {"event_id": event_id, "lead_id": lead_id, "occurred_at": stamp, **fields}


async def produce(
    bootstrap: str,
    records: Iterable[tuple[str, bytes | None, bytes]],
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Send (topic, key, value) records in order and wait for all acks."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=0, **security.aiokafka_kwargs()
    )
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def produce_sync(
    bootstrap: str,
    records: Iterable[tuple[str, bytes | None, bytes]],
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    asyncio.run(produce(bootstrap, list(records), security=security))


def to_record(
    topic: str, message: dict[str, Any], *, key: str | None = "lead"
) -> tuple[str, bytes | None, bytes]:
    k = message["lead_id"] if key == "lead" else key
    return topic, (k.encode() if k is not None else None), orjson.dumps(message)


class TopicReader:
    """Reads a whole topic (all partitions, no group) from the beginning, in the background
    of the test thread: each ``records()`` call fetches what arrived since the last."""

    def __init__(self, bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.security = security
        self.seen: list[Any] = []

    def records(self) -> list[Any]:
        self.seen = asyncio.run(read_topic(self.bootstrap, self.topic, security=self.security))
        return self.seen

    def values(self) -> list[Any]:
        return [orjson.loads(r.value) for r in self.records()]

    def wait_for(
        self, predicate: Callable[[list[Any]], bool], *, timeout: float, what: str
    ) -> list[Any]:
        return poll(
            lambda: (v := self.values()) and predicate(v) and v,
            timeout=timeout,
            interval=0.2,
            what=what,
        )


async def read_committed(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of ``topic``, as a ``read_committed`` consumer sees it:
    no aborted record, nothing of a transaction still open (up to the stable end)."""
    return await read_topic(bootstrap, topic, isolation_level="read_committed")


def committed_states(bootstrap: str, changelog: str, run_prefix: str) -> dict[str, Any]:
    """Each lead's last committed state on ``changelog`` (as
    ``streams.local.verify.last_states``, read ``read_committed``)."""
    out: dict[str, Any] = {}
    for record in asyncio.run(read_committed(bootstrap, changelog)):
        state = orjson.loads(record.value)
        state["applied"] = {
            k.replace(run_prefix, "<run>"): v for k, v in state.get("applied", {}).items()
        }
        out[record.key.decode()] = state
    return out
