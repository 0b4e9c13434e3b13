"""Chaos: kill -9 the worker N times under live load, restart the broker once, and
count what went wrong against an uninterrupted worker fed the same events.

    python -m bench.chaos [--seconds S] [--rate R] [--leads N] [--kills K]
                          [--no-broker-restart]

Starts a private local broker (or uses ``KAFKA_BOOTSTRAP_SERVERS``, then without the
broker restart), two topic sets and two workers: a reference that is never killed,
and one killed ``--kills`` times at even intervals (static group membership, so each
restart takes its partitions back at once). A producer sends the same live events
(web visits: one topic, so both workers see each lead's events in one order) to
both at ``--rate`` for ``--seconds``; half-way the broker is stopped and started
again, for both. At the end both workers finish what was sent and stop gracefully,
and the report counts, per lead and per stage change:

- lost / double-counted: leads whose ``events_seen`` is below / above the
  reference's; differing: otherwise unequal states (floats to 1e-6);
- repeated ids: stage changes published more than once (at-least-once allows them),
  and of those, inconsistent: copies that differ in content;
- kept-view mismatches: leads whose stage changes, kept by the documented rule
  (highest ``sequence`` wins), differ from the reference's.

All but "repeated ids" must be zero. Not part of ``make test``: it takes minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from bench.common import Topics, kafka_security, say
from streams.local import verify
from streams.local.kafka import LocalKafka, free_ports
from streams.local.launcher import WorkerProcess
from streams.local.settings import LocalSettings
from streams.local.workload import generate_events
from streams.topics import ensure_topics_async

PARTITIONS = 2
#: Windows small enough that a kill always finds written-but-uncommitted states.
WORKER_ENV = {"LEADSTREAM_FLUSH_EVENTS": "1500", "LEADSTREAM_PARTITIONS": str(PARTITIONS)}


def app_id(topics: Topics) -> str:
    return f"{topics.prefix}-app"


def worker_env(topics: Topics, bootstrap: str, static: bool = False) -> dict[str, str]:
    env = {**WORKER_ENV, **topics.env(app_id(topics)), "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    if static:  # one stable member: a restart takes its partitions back at once
        env["LEADSTREAM_GROUP_INSTANCE_ID"] = f"{app_id(topics)}-0"
    return env


async def send_live(
    bootstrap: str, targets: list[Topics], rate: float, seconds: float, leads: int
) -> int:
    """The same live web visits to every topic set, paced at ``rate``."""
    events = list(
        generate_events(
            n_events=int(rate * seconds),
            n_leads=leads,
            seed=5,
            start=time.time(),
            span_s=seconds,
            mix=(1.0, 0.0, 0.0),
            profile_ratio=0.0,
        )
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        request_timeout_ms=60_000,
        **kafka_security().aiokafka_kwargs(),
    )
    await producer.start()
    started = time.monotonic()
    try:
        for n, (_, lead, value) in enumerate(events):
            for topics in targets:
                await producer.send(topics.names["web"], value, key=lead.encode())
            ahead = n / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)  # pacing the load, not synchronisation
        await producer.flush()
    finally:
        await producer.stop()
    return len(events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s")
    parser.add_argument("--leads", type=int, default=50)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--no-broker-restart", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leadstream-chaos-") as tmp:
        return asyncio.run(chaos(args, Path(tmp)))


async def chaos(args: argparse.Namespace, tmp: Path) -> int:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    broker: LocalKafka | None = None
    if not external:
        port, cport = free_ports(2)
        broker = LocalKafka(LocalSettings.from_env().cache_dir, tmp / "kafka", port, cport)
        say(f"starting a private broker on 127.0.0.1:{port}")
        broker.start()
    bootstrap = external or (broker.bootstrap if broker else "")
    run = uuid.uuid4().hex[:6]
    reference, chaotic = Topics(f"chaos-ref-{run}"), Topics(f"chaos-{run}")
    for topics in (reference, chaotic):
        await ensure_topics_async(
            bootstrap, {topics.names["web"]: PARTITIONS}, timeout=60, security=kafka_security()
        )
    ref_worker = WorkerProcess(tmp / "ref").start(worker_env(reference, bootstrap))
    # The same web address each time: Faust refuses a static member whose URL changed.
    victim = WorkerProcess(tmp / "victim", web_port=free_ports(1)[0])
    victim.start(worker_env(chaotic, bootstrap, static=True))
    try:
        ref_worker.wait_ready(120)
        victim.wait_ready(120)
        load = asyncio.ensure_future(
            send_live(bootstrap, [reference, chaotic], args.rate, args.seconds, args.leads)
        )
        sent = await disrupt(args, broker, victim, chaotic, bootstrap, load)
        for worker, topics in ((ref_worker, reference), (victim, chaotic)):
            await finish(worker, topics, bootstrap)
        report = await compare(reference, chaotic, bootstrap)
    finally:
        for worker in (ref_worker, victim):
            worker.kill()
        if broker is not None:
            broker.stop()
    print(
        f"chaos: {sent:,} events, {args.kills} kills, broker restart: "
        f"{'yes' if broker is not None and not args.no_broker_restart else 'no'}\n"
        f"  leads {report.leads}: lost {report.lost}, double-counted "
        f"{report.double_counted}, differing {report.differing}\n"
        f"  stage changes: repeated ids {report.repeated_ids} (allowed), inconsistent "
        f"repeats {report.inconsistent_repeats}, kept-view mismatches "
        f"{report.kept_view_mismatches}"
    )
    for example in report.examples[:5]:
        print(f"  e.g. {example}")
    return 0 if report.clean and report.consistent else 1


async def disrupt(
    args: argparse.Namespace,
    broker: LocalKafka | None,
    victim: WorkerProcess,
    topics: Topics,
    bootstrap: str,
    load: asyncio.Future[int],
) -> int:
    """Kill and restart the victim ``--kills`` times, restart the broker half-way."""
    step = args.seconds / (args.kills + 1)
    started = time.monotonic()
    restarted = args.no_broker_restart or broker is None
    for n in range(args.kills):
        await asyncio.sleep(max(0.0, started + (n + 1) * step - time.monotonic()))
        if not restarted and time.monotonic() - started >= args.seconds / 2:
            assert broker is not None
            say("restarting the broker")
            # In a thread, as below: the load goes on sending meanwhile.
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)
            restarted = True
        say(f"kill -9 {n + 1} of {args.kills}")
        victim.kill()
        victim.start(worker_env(topics, bootstrap, static=True))
        took = await asyncio.to_thread(victim.wait_ready, 120)
        say(f"  ready again in {took:.1f}s")
    return await load


async def finish(worker: WorkerProcess, topics: Topics, bootstrap: str) -> None:
    deadline = time.monotonic() + 300
    while True:
        done, end = await verify.group_progress(
            bootstrap, app_id(topics), [topics.names["web"]], PARTITIONS, security=kafka_security()
        )
        if done == end:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{app_id(topics)}: committed {done} of {end} after 300 s")
        await asyncio.sleep(0.5)  # polling the group's commits
    if not await asyncio.to_thread(worker.stop, 60):
        say(f"{app_id(topics)}: did not stop gracefully")


async def compare(reference: Topics, chaotic: Topics, bootstrap: str) -> verify.Comparison:
    states = [
        await verify.last_states(
            bootstrap, f"{app_id(t)}-leads-changelog", t.prefix, security=kafka_security()
        )
        for t in (reference, chaotic)
    ]
    changes = [
        [
            orjson.loads(r.value)
            for r in await verify.read_topic(
                bootstrap, t.names["qualified"], security=kafka_security()
            )
        ]
        for t in (reference, chaotic)
    ]
    return verify.compare(states[0], states[1], changes[0], changes[1])


if __name__ == "__main__":
    sys.exit(main())
