"""``leadstream model export`` and ``model preview`` on a real broker: the export holds
what was produced, a preview from it and one from the topics agree, and neither
writes anything to Kafka."""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from importlib import resources
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.cli import main
from streams.local.workload import great_fit_persona
from streams.topics import ensure_topics
from tests.integration.harness import Topics, event, produce_sync, to_record

DEFAULT = resources.files("scoring").joinpath("default_model.toml").read_text("utf-8")
PARTITIONS = 2


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def summary(out: str) -> str:
    """The printed tables, from the headline on (the model lines name the files)."""
    return out[out.index(" records, ") :]


def test_export_then_preview_from_the_file_and_from_the_topics(
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = Topics(f"preview-{uuid.uuid4().hex[:8]}")
    inputs = [topics.web, topics.email, topics.webinar, topics.profiles, topics.outcomes]
    ensure_topics(kafka_bootstrap, dict.fromkeys(inputs, PARTITIONS), 60)
    for name, value in topics.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("LEADSTREAM_PARTITIONS", str(PARTITIONS))

    # 20 + 20 + 4 + 5 = 49 points for a good fit: warm now, MQL if MQL took 45.
    lead, other, at = f"lead-{uuid.uuid4().hex[:8]}", f"lead-{uuid.uuid4().hex[:8]}", time.time()
    persona = great_fit_persona(random.Random(3))
    pages = ["/demo", "/demo/book", "/product", "/customers/acme"]
    sent = [to_record(topics.profiles, event("profile", lead, "p", at - 60, attributes=persona))]
    sent += [
        to_record(topics.web, event("web", lead, f"w{i}", at - 59 + i, url=f"https://x.example{p}"))
        for i, p in enumerate(pages)
    ]
    sent.append(
        to_record(topics.email, event("email", other, "e", at - 50, action="open", campaign_id="c"))
    )
    sent.append((topics.web, lead.encode(), b'{"lead_id": "' + lead.encode()))  # not JSON
    produce_sync(kafka_bootstrap, sent)

    export = tmp_path / "input.jsonl"
    assert main(["model", "export", "--out", str(export)]) == 0
    assert f"{len(sent):,} records exported" in capsys.readouterr().out
    lines = [orjson.loads(line) for line in export.read_bytes().splitlines()]
    by_value = {
        (line["topic"], orjson.dumps(line["value"]) if "value" in line else line["value_b64"])
        for line in lines
    }
    assert len(lines) == len(sent) and len(by_value) == len(sent)
    assert {line["kind"] for line in lines} == {"web", "email", "profile"}
    assert all(line["key"] in (lead, other) for line in lines)
    assert all(abs(line["timestamp"] / 1000 - time.time()) < 300 for line in lines)
    assert sum("value_b64" in line for line in lines) == 1

    edited = tmp_path / "edited.toml"
    edited.write_text(DEFAULT.replace("entry = { score = 50,", "entry = { score = 45,"))
    before = asyncio.run(end_offsets(kafka_bootstrap, inputs))

    report = tmp_path / "report.html"
    args = ["model", "preview", str(edited), "--report", str(report)]
    assert main([*args, "--from-export", str(export)]) == 0
    from_file = capsys.readouterr().out
    assert re.search(rf"│ warm +│ mql +│ +1 │ {lead} ", from_file)
    assert "dead letter: invalid_json │       1 │" in from_file
    assert main([*args, "--from-topics"]) == 0
    from_topics = capsys.readouterr().out
    assert summary(from_topics) == summary(from_file)
    assert 'id="fig-leads-that-would-change-stage"' in report.read_text()

    # Nothing was written: no record on the inputs, no topic of the app's.
    assert asyncio.run(end_offsets(kafka_bootstrap, inputs)) == before
    assert not any(
        name.startswith(topics.prefix + "-app") for name in _topic_names(kafka_bootstrap)
    )


def _topic_names(bootstrap: str) -> set[str]:
    async def names() -> set[str]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            return set(await consumer.topics())
        finally:
            await consumer.stop()

    return asyncio.run(names())
