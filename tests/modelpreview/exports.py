"""Export files for the preview tests: the bench's workload as recorded input, with
the records a worker meets besides (invalid, misrouted, stamped ahead, late)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from streams.core.contract import parse_time
from streams.core.partitioning import Partitioner
from streams.local.workload import generate_events
from streams.modelpreview.exportfile import ExportRecord, encode_record

PARTITIONS = 4
TOPICS = {
    "web": "web.visits",
    "email": "email.events",
    "webinar": "webinar.events",
    "profile": "lead.profiles",
}
#: Between an event and its record: what a live producer takes.
LATENCY_S = 0.05
#: Records of each kind of trouble mixed into a workload.
TROUBLE = (
    "invalid_json",
    "not_an_object",
    "unknown_action",
    "ahead",
    "misrouted",
    "late",
    "repeated",
    "crawler",
)
#: A known crawler's user agent (the crawler-user-agents list has it).
CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


class Recorder:
    """Lays records out as Kafka would hold them: offsets per topic-partition."""

    def __init__(self, partitions: int = PARTITIONS) -> None:
        self.partition_of = Partitioner(partitions).partition_of
        self.partitions = partitions
        self.offsets: dict[tuple[str, int], int] = {}

    def record(
        self, kind: str, value: bytes, at: float, lead: str, *, partition: int | None = None
    ) -> ExportRecord:
        topic = TOPICS[kind]
        p = self.partition_of(lead) if partition is None else partition
        offset = self.offsets.get((topic, p), 0)
        self.offsets[topic, p] = offset + 1
        return ExportRecord(topic, kind, p, offset, round(at * 1000), lead.encode(), value)


def write(path: Path, records: Iterable[ExportRecord]) -> Path:
    with path.open("wb") as f:
        for record in records:
            f.write(encode_record(record))
    return path


def event(lead: str, eid: str, at: float, **fields: Any) -> dict[str, Any]:
    return {"event_id": eid, "lead_id": lead, "occurred_at": round(at * 1000), **fields}


def workload(
    *, n_events: int, n_leads: int, seed: int, start: float, span_s: float, trouble_every: int = 0
) -> Iterator[ExportRecord]:
    """The workload's events, each recorded when it arrived (the newest event time so
    far, plus a producer's latency); every ``trouble_every`` records one of
    :data:`TROUBLE` besides (0: none)."""
    recorder = Recorder()
    rng = random.Random(seed)
    arrived = start
    events = generate_events(
        n_events=n_events, n_leads=n_leads, seed=seed, start=start, span_s=span_s
    )
    for i, (kind, lead, value) in enumerate(events):
        arrived = max(arrived, parse_time(orjson.loads(value)["occurred_at"]) + LATENCY_S)
        record = recorder.record(kind, value, arrived, lead)
        yield record
        if trouble_every and i % trouble_every == trouble_every - 1:
            what = TROUBLE[i // trouble_every % len(TROUBLE)]
            if what == "repeated":  # read twice at one offset: the worker skips it
                yield record
            else:
                yield _trouble(recorder, rng, what, lead, arrived)


def _trouble(
    recorder: Recorder, rng: random.Random, what: str, lead: str, at: float
) -> ExportRecord:
    eid = f"trouble-{rng.getrandbits(64):016x}"
    click = event(lead, eid, at - LATENCY_S, action="click", campaign_id="c1")
    if what == "invalid_json":
        return recorder.record("web", b'{"lead_id": "' + lead.encode(), at, lead)
    if what == "not_an_object":
        return recorder.record("web", b"[1, 2]", at, lead)
    if what == "unknown_action":
        return recorder.record("email", orjson.dumps({**click, "action": "forwarded"}), at, lead)
    if what == "ahead":  # stamped an hour ahead of its own record: bad_timestamp
        ahead = event(lead, eid, at + 3600, action="click", campaign_id="c1")
        return recorder.record("email", orjson.dumps(ahead), at, lead)
    if what == "misrouted":  # rerouted by the worker, then scored
        wrong = (recorder.partition_of(lead) + 1) % recorder.partitions
        return recorder.record("email", orjson.dumps(click), at, lead, partition=wrong)
    if what == "crawler":  # filtered when the model asks for known user agents
        visit = event(
            lead, eid, at - LATENCY_S, url="https://x.example/pricing", user_agent=CRAWLER
        )
        return recorder.record("web", orjson.dumps(visit), at, lead)
    old = event(lead, eid, at - 45 * 86400, action="click", campaign_id="c1")
    return recorder.record("email", orjson.dumps(old), at, lead)  # late under both models
