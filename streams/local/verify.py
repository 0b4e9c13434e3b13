"""Reading back what a worker left, to compare two runs of the same input.

Used by the crash tests and ``bench/chaos.py``: each lead's last stored state (the
table's changelog), the stage changes a consumer keeps by the documented rule (the
highest ``sequence`` per lead wins), and how far a consumer group has committed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.faust_adapter.kafka_meta import partitions_for
from streams.kafkasecurity import PLAINTEXT, KafkaSecurity


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    security: KafkaSecurity = PLAINTEXT,
    isolation_level: str = "read_uncommitted",
) -> list[Any]:
    """Every record of ``topic`` (all partitions, from the beginning to the end now).

    Read to each partition's end by position, not by the last record's offset: with
    ``read_committed`` the last offsets are transaction markers, never delivered, and
    the end is the stable one (nothing of a transaction still open)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        **security.aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await partitions_for(consumer, topic))]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(*tps, timeout_ms=500)).values():
                out.extend(records)
        return out
    finally:
        await consumer.stop()


async def group_progress(
    bootstrap: str,
    group: str,
    topics: Iterable[str],
    partitions: int,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> tuple[int, int]:
    """(offsets committed, end offsets), summed over ``topics``' partitions."""
    names = set(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security.aiokafka_kwargs())
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    done = sum(m.offset for tp, m in committed.items() if tp.topic in names and m.offset > 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **security.aiokafka_kwargs())
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in names for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return done, sum(ends.values())


async def last_states(
    bootstrap: str, changelog: str, run_prefix: str, *, security: KafkaSecurity = PLAINTEXT
) -> dict[str, Any]:
    """Each lead's last state on ``changelog``; topic names in its positions have
    ``run_prefix`` replaced by ``<run>``, so two runs on different topics compare."""
    out: dict[str, Any] = {}
    for record in await read_topic(bootstrap, changelog, security=security):
        state = orjson.loads(record.value)
        state["applied"] = {
            k.replace(run_prefix, "<run>"): v for k, v in state.get("applied", {}).items()
        }
        out[record.key.decode()] = state
    return out


def kept_changes(changes: Iterable[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """Per lead, the stage changes a consumer keeps: a sequence not above the last
    one kept is a repeat and ignored."""
    kept: dict[str, list[tuple[Any, ...]]] = {}
    for change in changes:
        mine = kept.setdefault(change["lead_id"], [])
        if not mine or change["sequence"] > mine[-1][0]:
            mine.append(
                (change["sequence"], change["event_id"], change["to_stage"], change["changed_at"])
            )
    return kept


def differences(got: Any, expected: Any, where: str = "") -> list[str]:
    """Where ``got`` differs from ``expected`` (floats to 1e-6); empty when equal."""
    if isinstance(expected, float) and isinstance(got, float):
        ok = math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-6)
        return [] if ok else [f"{where}: {got!r} != {expected!r}"]
    if isinstance(expected, dict) and isinstance(got, dict):
        if got.keys() != expected.keys():
            return [f"{where}: keys {sorted(got.keys() ^ expected.keys())}"]
        return [d for k in expected for d in differences(got[k], expected[k], f"{where}.{k}")]
    if isinstance(expected, list) and isinstance(got, list):
        if len(got) != len(expected):
            return [f"{where}: {len(got)} items != {len(expected)}"]
        pairs = zip(got, expected, strict=True)
        return [d for i, (g, e) in enumerate(pairs) for d in differences(g, e, f"{where}[{i}]")]
    return [] if got == expected else [f"{where}: {got!r} != {expected!r}"]


@dataclass
class Comparison:
    """Two runs' leads, as the chaos script reports them."""

    leads: int = 0
    #: leads whose events_seen is below / above the reference's
    lost: int = 0
    double_counted: int = 0
    #: leads that differ otherwise (or are missing)
    differing: int = 0
    #: stage-change ids seen more than once, and those whose copies differ
    repeated_ids: int = 0
    inconsistent_repeats: int = 0
    #: leads whose kept stage changes differ from the reference's
    kept_view_mismatches: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.double_counted or self.differing)

    @property
    def consistent(self) -> bool:
        return not (self.inconsistent_repeats or self.kept_view_mismatches)


#: A cache of the next decay change in a stored state, solved or not as a window
#: happens to be written (streams.core.loop): when a state was written, not what it
#: holds. Runs that write at other moments (kills, exactly-once) differ there only.
WRITE_TIME_KEYS = ("next_change", "next_change_up", "next_change_valid")


def _held(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k not in WRITE_TIME_KEYS}


def compare(
    expected: dict[str, Any],
    got: dict[str, Any],
    expected_changes: list[dict[str, Any]],
    got_changes: list[dict[str, Any]],
) -> Comparison:
    out = Comparison(leads=len(expected))
    for lead, state in expected.items():
        mine = got.get(lead)
        if mine is None:
            out.lost += 1
            continue
        if mine["events_seen"] < state["events_seen"]:
            out.lost += 1
        elif mine["events_seen"] > state["events_seen"]:
            out.double_counted += 1
        elif found := differences(_held(mine), _held(state), lead):
            out.differing += 1
            out.examples.extend(found[:2])
    by_id: dict[str, list[dict[str, Any]]] = {}
    for change in got_changes:
        by_id.setdefault(change["event_id"], []).append(change)
    for copies in by_id.values():
        if len(copies) > 1:
            out.repeated_ids += 1
            bodies = {
                orjson.dumps({k: v for k, v in c.items() if k != "emitted_at"}) for c in copies
            }
            out.inconsistent_repeats += len(bodies) > 1
    ref_kept, got_kept = kept_changes(expected_changes), kept_changes(got_changes)
    out.kept_view_mismatches = sum(
        1 for lead in ref_kept.keys() | got_kept.keys() if ref_kept.get(lead) != got_kept.get(lead)
    )
    return out
