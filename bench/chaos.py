"""Chaos: kill -9 the worker N times under live load, restart the broker once, and
count what went wrong against an uninterrupted worker fed the same events.

    python -m bench.chaos [--seconds S] [--rate R] [--leads N] [--kills K]
                          [--no-broker-restart] [--exactly-once [--pauses P]]

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

``--exactly-once`` runs the chaotic side with ``LEADSTREAM_PROCESSING_GUARANTEE=
exactly_once`` (the reference stays an uninterrupted at-least-once worker) and reads
it as a ``read_committed`` consumer does: there, repeated ids must be zero too, and
the stage changes must be the reference's, no more and no fewer. Once the load runs
a second chaotic worker joins (another instance id), and ``--pauses`` times (1 by
default), spread among the kills, it becomes a *zombie*: SIGSTOP, held until the
group has moved its partitions to the other worker (past the session timeout, well
inside the transaction timeout: see ``EXACTLY_ONCE_ENV``), then SIGCONT. The report
adds, per pause, the windows the group refused the resumed zombie (its log's "a
window was not committed", ``leadstream_events_discarded_total``) and whether it
kept running: no stop (a "; stopping" log line, an exit) until ``FENCE_WINDOW_S``
after the SIGSTOP, when no transaction the pause left open can be fenced any more;
and no worker exited at the end, all stopped with 0. A worker that exits meanwhile
(a failed transaction stops one, as at the broker restart) is started again and
named. ``--logs DIR`` keeps the workers' logs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

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
#: --exactly-once, the chaotic workers. The session timeout is the broker's least
#: (group.min.session.timeout.ms, 6 s by default; streams/local/kafka.py leaves it),
#: so a paused worker is dropped soon; 5 s windows (1,500 events come first at the
#: default rate) make the transaction timeout max(10 s, 5 x 5 s) = 25 s. A pause
#: between the two is fenced by the group, not by the broker.
EXACTLY_ONCE_ENV = {
    "LEADSTREAM_PROCESSING_GUARANTEE": "exactly_once",
    "LEADSTREAM_SESSION_TIMEOUT_SECONDS": "6",
    "LEADSTREAM_FLUSH_INTERVAL_SECONDS": "5",
}
#: A pause ends once the group has moved the zombie's partitions, at the latest this
#: long after its SIGSTOP: inside the 25 s transaction timeout with room to spare.
MAX_PAUSE_S = 18.0
#: How long the chaotic group may take to settle (members joined, holding
#: partitions, ready) before and after a pause.
SETTLE_TIMEOUT_S = 120.0
#: Past this long after a SIGSTOP, no transaction the pause left open can fence the
#: zombie any more: the broker aborts one older than its timeout (25 s) at its next
#: check (every 10 s by default); 5 s to spare.
FENCE_WINDOW_S = 40.0
#: The resumed zombie's log line when the group refused its window's offsets.
REFUSED = "a window was not committed"
#: A worker's log line when a failure stops it (a fenced producer, say).
STOPPING = "; stopping"
DISCARDED = "leadstream_events_discarded_total"


def app_id(topics: Topics) -> str:
    return f"{topics.prefix}-app"


def worker_env(topics: Topics, bootstrap: str, static: bool = False) -> dict[str, str]:
    env = {**WORKER_ENV, **topics.env(app_id(topics)), "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    if static:  # one stable member: a restart takes its partitions back at once
        env["LEADSTREAM_GROUP_INSTANCE_ID"] = f"{app_id(topics)}-0"
    return env


@dataclass
class Chaotic:
    """The chaotic side: its topics and workers. Member 0 is the victim (killed);
    under --exactly-once member 1 is the zombie (paused)."""

    topics: Topics
    bootstrap: str
    exactly_once: bool
    workers: list[WorkerProcess] = field(default_factory=list)
    #: (member, exit code) of each worker found exited and started again
    revived: list[tuple[int, int]] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)
    #: each pause's watch of the zombie, until FENCE_WINDOW_S after its SIGSTOP
    watches: list[asyncio.Future[None]] = field(default_factory=list)

    def env(self, member: int) -> dict[str, str]:
        env = worker_env(self.topics, self.bootstrap, static=True)
        if self.exactly_once:
            env.update(EXACTLY_ONCE_ENV)
            env["LEADSTREAM_GROUP_INSTANCE_ID"] = f"{app_id(self.topics)}-{member}"
        return env

    def add(self, tmp: Path) -> WorkerProcess:
        """Start the next member. The same web address on every restart: Faust
        refuses a static member whose URL changed."""
        member = len(self.workers)
        worker = WorkerProcess(tmp / f"chaotic-{member}", web_port=free_ports(1)[0])
        self.workers.append(worker.start(self.env(member)))
        return worker

    @property
    def victim(self) -> WorkerProcess:
        return self.workers[0]

    @property
    def zombie(self) -> WorkerProcess:
        return self.workers[1]


@dataclass
class Pause:
    """One zombie pause, as the report gives it."""

    held: list[int]  # the input partitions the zombie held when stopped
    moved_s: float  # SIGSTOP to the group's move of them to the other worker
    paused_s: float  # SIGSTOP to SIGCONT
    other_ready: bool  # the other worker answered /ready 200 before the SIGCONT
    refused: int = -1  # the zombie's "a window was not committed" lines since the SIGSTOP
    discarded: float = -1.0  # its leadstream_events_discarded_total since the SIGSTOP
    back_s: float = 0.0  # SIGCONT to the group settled with both again
    #: SIGCONT to the zombie's first step to a stop (a "; stopping" line, an exit);
    #: None while it runs, and after FENCE_WINDOW_S for good
    stopped_s: float | None = None

    @property
    def alive(self) -> bool:
        return self.stopped_s is None


@dataclass
class End:
    """The chaotic workers once every input offset is committed, before their stop."""

    discarded: float  # the zombie's leadstream_events_discarded_total
    exited: list[tuple[int, int]]  # (member, exit code) of those no longer running
    #: (member, exit code) of the final stop that were not 0
    stop_codes: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Committed:
    """What ``read_committed`` readers of the chaotic side saw, against the reference."""

    comparison: verify.Comparison
    expected: int  # the reference's stage changes
    missing: int  # the reference's stage changes (ids) never committed
    extra: int  # committed stage changes (ids) the reference has not
    uncommitted_repeats: int  # ids a read_uncommitted reader sees more than once


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
    parser.add_argument("--exactly-once", action="store_true")
    parser.add_argument("--pauses", type=int, default=None, help="zombie pauses (1)")
    parser.add_argument("--logs", type=Path, help="copy the workers' logs to this directory")
    args = parser.parse_args(argv)
    if args.pauses is not None and not args.exactly_once:
        parser.error("--pauses needs --exactly-once")
    args.pauses = 0 if not args.exactly_once else 1 if args.pauses is None else args.pauses
    with tempfile.TemporaryDirectory(prefix="leadstream-chaos-") as tmp:
        return asyncio.run(chaos(args, Path(tmp)))


def start_broker(tmp: Path) -> LocalKafka:
    port, cport = free_ports(2)
    broker = LocalKafka(LocalSettings.from_env().cache_dir, tmp / "kafka", port, cport)
    say(f"starting a private broker on 127.0.0.1:{port}")
    broker.start()
    return broker


async def chaos(args: argparse.Namespace, tmp: Path) -> int:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    broker = None if external else start_broker(tmp)
    bootstrap = external or (broker.bootstrap if broker else "")
    run = uuid.uuid4().hex[:6]
    reference, topics = Topics(f"chaos-ref-{run}"), Topics(f"chaos-{run}")
    for t in (reference, topics):
        await ensure_topics_async(
            bootstrap, {t.names["web"]: PARTITIONS}, timeout=60, security=kafka_security()
        )
    ref_worker = WorkerProcess(tmp / "ref").start(worker_env(reference, bootstrap))
    side = Chaotic(topics, bootstrap, args.exactly_once)
    side.add(tmp)
    try:
        ref_worker.wait_ready(120)
        side.victim.wait_ready(120)
        load = asyncio.ensure_future(
            send_live(bootstrap, [reference, topics], args.rate, args.seconds, args.leads)
        )
        if args.pauses:
            await join_zombie(side, tmp)
        sent = await disrupt(args, broker, side, load)
        await finish([ref_worker], reference, bootstrap)
        if not args.exactly_once:
            await finish(side.workers, topics, bootstrap)
            report = await compare(reference, topics, bootstrap)
            return at_least_once_report(args, broker, sent, report)
        end = await before_stop(side)
        await finish(side.workers, topics, bootstrap)
        end.stop_codes = [(m, c) for m, w in enumerate(side.workers) if (c := exit_code(w))]
        committed = await compare_committed(reference, topics, bootstrap)
        return exactly_once_report(args, broker, sent, side, committed, end)
    finally:
        for worker in (ref_worker, *side.workers):
            worker.kill()
        if broker is not None:
            broker.stop()
        if args.logs:
            keep_logs(args.logs, [ref_worker, *side.workers])


def keep_logs(to: Path, workers: list[WorkerProcess]) -> None:
    """Each worker's log as ``<its data dir's name>.log`` (a restarted one's last)."""
    to.mkdir(parents=True, exist_ok=True)
    for worker in workers:
        if worker.log_path.exists():
            shutil.copyfile(worker.log_path, to / f"{worker.data_dir.name}.log")


def exit_code(worker: WorkerProcess) -> int | None:
    return worker.proc.returncode if worker.proc is not None else None


def broker_restarted(args: argparse.Namespace, broker: LocalKafka | None) -> str:
    return "yes" if broker is not None and not args.no_broker_restart else "no"


def at_least_once_report(
    args: argparse.Namespace, broker: LocalKafka | None, sent: int, report: verify.Comparison
) -> int:
    print(
        f"chaos: {sent:,} events, {args.kills} kills, broker restart: "
        f"{broker_restarted(args, broker)}\n"
        f"  leads {report.leads}: lost {report.lost}, double-counted "
        f"{report.double_counted}, differing {report.differing}\n"
        f"  stage changes: repeated ids {report.repeated_ids} (allowed), inconsistent "
        f"repeats {report.inconsistent_repeats}, kept-view mismatches "
        f"{report.kept_view_mismatches}"
    )
    for example in report.examples[:5]:
        print(f"  e.g. {example}")
    return 0 if report.clean and report.consistent else 1


def plan(kills: int, pauses: int) -> list[str]:
    """The disruptions in order: "kill" and "pause", the pauses spread among the kills."""
    steps = kills + pauses
    at = {int((n + 0.5) * steps / pauses) for n in range(pauses)} if pauses else set()
    return ["pause" if n in at else "kill" for n in range(steps)]


async def disrupt(
    args: argparse.Namespace, broker: LocalKafka | None, side: Chaotic, load: asyncio.Future[int]
) -> int:
    """Kill and restart the victim ``--kills`` times and pause the zombie ``--pauses``
    times, at even intervals; restart the broker half-way."""
    steps = plan(args.kills, args.pauses)
    step = args.seconds / (len(steps) + 1)
    started = time.monotonic()
    restarted = args.no_broker_restart or broker is None
    for n, kind in enumerate(steps):
        await asyncio.sleep(max(0.0, started + (n + 1) * step - time.monotonic()))
        if not restarted and time.monotonic() - started >= args.seconds / 2:
            assert broker is not None
            await restart_broker(broker)
            restarted = True
        if kind == "kill":
            await kill_victim(side, steps[: n + 1].count("kill"), args.kills)
        else:
            say(f"zombie pause {len(side.pauses) + 1} of {args.pauses}")
            side.pauses.append(await pause_zombie(side))
    return await load


async def restart_broker(broker: LocalKafka) -> None:
    say("restarting the broker")
    # In a thread, as below: the load goes on sending meanwhile.
    await asyncio.to_thread(broker.stop)
    await asyncio.to_thread(broker.start)


async def kill_victim(side: Chaotic, n: int, kills: int) -> None:
    say(f"kill -9 {n} of {kills}")
    side.victim.kill()
    side.victim.start(side.env(0))
    took = await asyncio.to_thread(side.victim.wait_ready, 120)
    say(f"  ready again in {took:.1f}s")


async def finish(workers: list[WorkerProcess], topics: Topics, bootstrap: str) -> None:
    await drained(topics, bootstrap)
    for worker in workers:
        if not await asyncio.to_thread(worker.stop, 60):
            say(f"{app_id(topics)}: did not stop gracefully")


async def drained(topics: Topics, bootstrap: str) -> None:
    """Wait until the group has committed every input offset."""
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


# ------------------------------------------------------------------ exactly-once


async def join_zombie(side: Chaotic, tmp: Path) -> None:
    """A second chaotic worker, under the load: a group of two, one to pause."""
    say("a second chaotic worker joins (another instance id)")
    side.add(tmp)
    took = await settle(side)
    say(f"  two members, each holding a partition, ready in {took:.1f}s")


async def group_holdings(bootstrap: str, group: str, topic: str) -> dict[int, set[int]] | None:
    """Per member of ``group``, by the web port in its Faust URL, the partitions of
    ``topic`` it holds; None while the group is not Stable (a rebalance under way)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_security().aiokafka_kwargs())
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    _, _, state, _, _, members, *_ = response.groups[0]
    if state != "Stable":
        return None
    return {web_port(m[3]): held_partitions(m[4], topic) for m in members}


def web_port(metadata: bytes) -> int:
    """The member's web port: Faust's assignor sends its URL in the subscription."""
    url = orjson.loads(ConsumerProtocolMemberMetadata.decode(metadata).user_data)["url"]
    return urlsplit(url).port or 0


def held_partitions(assignment: bytes, topic: str) -> set[int]:
    if not assignment:
        return set()
    decoded = ConsumerProtocolMemberAssignment.decode(assignment)
    return {tp.partition for tp in decoded.partitions() if tp.topic == topic}


async def holdings(side: Chaotic) -> dict[int, set[int]] | None:
    return await group_holdings(side.bootstrap, app_id(side.topics), side.topics.names["web"])


async def ready(worker: WorkerProcess) -> bool:
    return (await asyncio.to_thread(worker.get, "/ready"))[0] == 200


async def settle(side: Chaotic) -> float:
    """Wait until every chaotic worker runs, holds partitions of its own in the
    Stable group and is ready; a worker found exited is started again (a failed
    transaction stops a worker, e.g. around the broker restart). Seconds taken."""
    started = time.monotonic()
    while True:
        revive_exited(side)
        if await settled(side):
            return time.monotonic() - started
        if time.monotonic() - started > SETTLE_TIMEOUT_S:
            raise RuntimeError(await unsettled(side))
        await asyncio.sleep(0.2)  # polling the group and the workers


async def unsettled(side: Chaotic) -> str:
    """Why the group did not settle: its members' partitions, and who is not ready."""
    waiting = [m for m, w in enumerate(side.workers) if not await ready(w)]
    return (
        f"the chaotic group did not settle in {SETTLE_TIMEOUT_S:.0f}s: partitions by web "
        f"port {await holdings(side)}, members not ready {waiting}; {stopping(side)}"
    )


def stopping(side: Chaotic) -> str:
    """The members whose log says a failure stops them, though they still run."""
    members = [
        m for m, w in enumerate(side.workers) if STOPPING in w.log_path.read_text(errors="replace")
    ]
    return f"members stopping {members} (0: victim, 1: zombie; --logs keeps their logs)"


async def settled(side: Chaotic) -> bool:
    held = await holdings(side)
    if held is None or held.keys() != {w.web_port for w in side.workers}:
        return False
    return all(held.values()) and all([await ready(w) for w in side.workers])


def revive_exited(side: Chaotic) -> None:
    for member, worker in enumerate(side.workers):
        code = worker.proc.poll() if worker.proc is not None else None
        if code is not None:
            say(f"chaotic member {member} exited with {code}; starting it again")
            print(worker.log_tail(15), flush=True)
            side.revived.append((member, code))
            worker.start(side.env(member))


def refused_lines(worker: WorkerProcess) -> int:
    return worker.log_path.read_text(errors="replace").count(REFUSED)


async def metric(worker: WorkerProcess, name: str) -> float:
    status, body = await asyncio.to_thread(worker.get, "/metrics")
    found = re.search(rb"^" + re.escape(name.encode()) + rb" (\S+)$", body, re.M)
    return float(found.group(1)) if status == 200 and found else 0.0


async def pause_zombie(side: Chaotic) -> Pause:
    """SIGSTOP the zombie until the group has moved its partitions to the other
    worker, SIGCONT, and wait until the two have settled again; then, meanwhile,
    watch the zombie until no transaction the pause left open can fence it."""
    await settle(side)
    zombie = side.zombie
    pid, refused, discarded = zombie.pid, refused_lines(zombie), await metric(zombie, DISCARDED)
    stops = zombie.log_path.read_text(errors="replace").count(STOPPING)
    pause, stopped = await stop_until_moved(side)
    resumed = time.monotonic()
    pause.back_s = await settle(side)
    if zombie.pid == pid:  # not found exited and started again (its log starts over)
        pause.refused = refused_lines(zombie) - refused
        pause.discarded = await metric(zombie, DISCARDED) - discarded
    say(
        f"  settled {pause.back_s:.1f}s after the SIGCONT; {pause.refused} windows refused, "
        f"{pause.discarded:.0f} events discarded; watching the zombie to "
        f"{FENCE_WINDOW_S:.0f}s after its SIGSTOP"
    )
    watch = watch_zombie(side, pause, pid, stops, resumed, stopped + FENCE_WINDOW_S)
    side.watches.append(asyncio.ensure_future(watch))
    return pause


async def stop_until_moved(side: Chaotic) -> tuple[Pause, float]:
    """SIGSTOP the zombie, SIGCONT once its partitions moved; (the pause, SIGSTOP time)."""
    zombie = side.zombie
    held = (await holdings(side) or {}).get(zombie.web_port, set())
    stopped = time.monotonic()
    os.kill(zombie.pid, signal.SIGSTOP)
    try:
        moved_s = await wait_moved(side, stopped)
        other_ready = await ready(side.victim)
    finally:
        os.kill(zombie.pid, signal.SIGCONT)
    paused_s = time.monotonic() - stopped
    say(f"  moved after {moved_s:.1f}s; SIGCONT after {paused_s:.1f}s")
    return Pause(sorted(held), moved_s, paused_s, other_ready), stopped


async def watch_zombie(
    side: Chaotic, pause: Pause, pid: int, stops: int, resumed: float, until: float
) -> None:
    """Set ``pause.stopped_s`` if the zombie begins to stop before ``until``."""
    zombie = side.zombie
    while time.monotonic() < until:
        gone = zombie.pid != pid or zombie.proc is None or zombie.proc.poll() is not None
        if gone or zombie.log_path.read_text(errors="replace").count(STOPPING) > stops:
            pause.stopped_s = time.monotonic() - resumed
            say(f"  the zombie began to stop {pause.stopped_s:.1f}s after its SIGCONT")
            return
        await asyncio.sleep(0.5)  # watching for a stop, up to the broker's last fence


async def wait_moved(side: Chaotic, stopped: float) -> float:
    """Seconds from the SIGSTOP until the Stable group has one member holding every
    partition (the zombie dropped, its partitions moved)."""
    while True:
        held = await holdings(side)
        if held == {side.victim.web_port: set(range(PARTITIONS))}:
            return time.monotonic() - stopped
        if time.monotonic() - stopped > MAX_PAUSE_S:
            raise RuntimeError(
                f"the group did not move the zombie's partitions in {MAX_PAUSE_S:.0f}s: "
                f"{held} (None: not Stable); {stopping(side)}"
            )
        await asyncio.sleep(0.1)  # polling the group's description


async def before_stop(side: Chaotic) -> End:
    """Once the pauses' watches are over and everything is committed: the zombie's
    discarded events, and the workers that exited since they were last started."""
    await asyncio.gather(*side.watches)
    await drained(side.topics, side.bootstrap)
    exited = [
        (member, code)
        for member, worker in enumerate(side.workers)
        if worker.proc is not None and (code := worker.proc.poll()) is not None
    ]
    return End(await metric(side.zombie, DISCARDED) if side.workers[1:] else 0.0, exited)


async def committed_states(bootstrap: str, topics: Topics) -> dict[str, Any]:
    """``verify.last_states``, read ``read_committed``."""
    out: dict[str, Any] = {}
    changelog = f"{app_id(topics)}-leads-changelog"
    for record in await read(bootstrap, changelog, "read_committed"):
        state = orjson.loads(record.value)
        state["applied"] = {
            k.replace(topics.prefix, "<run>"): v for k, v in state.get("applied", {}).items()
        }
        out[record.key.decode()] = state
    return out


async def read(bootstrap: str, topic: str, isolation: str) -> list[Any]:
    return await verify.read_topic(
        bootstrap, topic, security=kafka_security(), isolation_level=isolation
    )


async def stage_changes(bootstrap: str, topics: Topics, isolation: str) -> list[dict[str, Any]]:
    return [
        orjson.loads(r.value) for r in await read(bootstrap, topics.names["qualified"], isolation)
    ]


async def compare_committed(reference: Topics, chaotic: Topics, bootstrap: str) -> Committed:
    """The reference (at-least-once, never interrupted, so nothing repeated) against
    the chaotic side as read_committed readers see it."""
    expected = await stage_changes(bootstrap, reference, "read_uncommitted")
    got = await stage_changes(bootstrap, chaotic, "read_committed")
    states = [await committed_states(bootstrap, t) for t in (reference, chaotic)]
    uncommitted = await stage_changes(bootstrap, chaotic, "read_uncommitted")
    ids, got_ids = {c["event_id"] for c in expected}, {c["event_id"] for c in got}
    return Committed(
        comparison=verify.compare(states[0], states[1], expected, got),
        expected=len(expected),
        missing=len(ids - got_ids),
        extra=len(got_ids - ids),
        uncommitted_repeats=len(uncommitted) - len({c["event_id"] for c in uncommitted}),
    )


def exactly_once_report(
    args: argparse.Namespace,
    broker: LocalKafka | None,
    sent: int,
    side: Chaotic,
    committed: Committed,
    end: End,
) -> int:
    report = committed.comparison
    print(
        f"chaos --exactly-once: {sent:,} events, {args.kills} kills, {len(side.pauses)} "
        f"zombie pauses, broker restart: {broker_restarted(args, broker)}\n"
        f"  leads {report.leads}: lost {report.lost}, double-counted "
        f"{report.double_counted}, differing {report.differing}\n"
        f"  stage changes ({committed.expected} in the reference), read_committed: "
        f"repeated ids {report.repeated_ids} (must be 0), inconsistent repeats "
        f"{report.inconsistent_repeats}, kept-view mismatches "
        f"{report.kept_view_mismatches}, missing {committed.missing}, extra "
        f"{committed.extra}\n"
        f"  read_uncommitted (aborted copies visible): repeated {committed.uncommitted_repeats}"
    )
    for n, pause in enumerate(side.pauses, 1):
        print(f"  zombie pause {n}: {describe(pause)}")
    print_workers(side, end)
    for example in report.examples[:5]:
        print(f"  e.g. {example}")
    ok = report.clean and report.consistent and report.repeated_ids == 0
    ok = ok and committed.missing == committed.extra == 0
    ok = ok and all(p.alive for p in side.pauses) and not end.exited and not end.stop_codes
    return 0 if ok else 1


def print_workers(side: Chaotic, end: End) -> None:
    if side.workers[1:]:
        print(
            f"  zombie at the end: {refused_lines(side.zombie)} windows refused in its "
            f"log, {end.discarded:.0f} events discarded (its process's count)"
        )
    print(
        f"  chaotic workers (0: victim, 1: zombie) found exited and started again: "
        f"{side.revived or 'none'}; exited before the final stop: {end.exited or 'none'}; "
        f"final stop's exit codes not 0: {end.stop_codes or 'none'}"
    )


def describe(pause: Pause) -> str:
    if pause.stopped_s is None:
        fate = f"ran on to {FENCE_WINDOW_S:.0f}s after the SIGSTOP (kept running)"
    else:
        fate = f"began to STOP {pause.stopped_s:.1f}s after the SIGCONT (did not keep running)"
    return (
        f"held partitions {pause.held}; moved after {pause.moved_s:.1f}s, SIGCONT after "
        f"{pause.paused_s:.1f}s (the other worker ready by the move: "
        f"{'yes' if pause.other_ready else 'no'}); {pause.refused} windows refused, "
        f"{pause.discarded:.0f} events discarded; both settled {pause.back_s:.1f}s after "
        f"the SIGCONT; {fate}"
    )


if __name__ == "__main__":
    sys.exit(main())
