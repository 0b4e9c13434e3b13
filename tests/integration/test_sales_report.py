"""``leadstream report`` on a real broker: stage changes and outcomes produced to the
topics are read back as a snapshot and counted; the snapshot kept reads the same."""

from __future__ import annotations

import argparse
import io
import re
import uuid
from pathlib import Path

import orjson
import pytest

from streams.salesreport import command, options
from streams.topics import ensure_topics
from tests.integration.harness import Topics, produce_sync
from tests.salesreport.histories import HOUR, T0, Record, change, outcome

PARTITIONS = 2


def report(*argv: str, err: io.StringIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leadstream report")
    options.add_arguments(parser)
    return command.run(parser.parse_args(argv), err)


def history() -> list[Record]:
    """4 leads: 3 MQLs (2 grade A, 1 C), 2 SQLs, 1 accepted and won, 1 rejected."""
    records = [change(f"lead-{i}", 1, "warm", T0 + i) for i in range(4)]
    records += [change("lead-0", 2, "mql", T0 + HOUR), change("lead-0", 3, "sql", T0 + 3 * HOUR)]
    records += [change("lead-1", 2, "mql", T0 + HOUR), change("lead-1", 3, "sql", T0 + 5 * HOUR)]
    records.append(change("lead-2", 2, "mql", T0 + HOUR, grade="C"))
    records.append(change("lead-0", 3, "sql", T0 + 3 * HOUR))  # a repeat: counted once
    records += [
        outcome("lead-0", "accepted", T0 + 4 * HOUR),
        outcome("lead-0", "opportunity_created", T0 + 6 * HOUR),
        outcome("lead-0", "won", T0 + 30 * HOUR),
        outcome("lead-1", "rejected", T0 + 6 * HOUR, "no budget"),
    ]
    return records


def cells(out: str, row: str) -> list[str]:
    found = re.search(rf"^│ {re.escape(row)} +│(.*)│$", out, re.M)
    assert found is not None, (row, out)
    return [c.strip() for c in found.group(1).split("│")]


def test_a_report_from_the_topics_counts_what_was_produced(
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = Topics(f"report-{uuid.uuid4().hex[:8]}")
    ensure_topics(kafka_bootstrap, {topics.qualified: PARTITIONS}, 60)
    for name, value in topics.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("COLUMNS", "160")
    to_topic = {"qualified": topics.qualified, "outcome": topics.outcomes}
    records = [(to_topic[k], v["lead_id"].encode(), orjson.dumps(v)) for k, v in history()]

    # No CRM sync yet: no lead.outcomes topic, and the funnel up to SQL still shows.
    produce_sync(kafka_bootstrap, [r for r in records if r[0] == topics.qualified])
    err = io.StringIO()
    assert report("--from-topics", err=err) == 0
    assert err.getvalue() == (
        f"leadstream report: topic {topics.outcomes} does not exist: no outcomes to count\n"
    )
    assert cells(capsys.readouterr().out, "SQL") == ["2  66.7%"]

    ensure_topics(kafka_bootstrap, {topics.outcomes: PARTITIONS}, 60)
    produce_sync(kafka_bootstrap, [r for r in records if r[0] == topics.outcomes])
    snapshot, html = tmp_path / "snapshot.jsonl", tmp_path / "report.html"
    assert report("--from-topics", "--save-export", str(snapshot), "--html", str(html)) == 0
    out = capsys.readouterr().out
    assert "9 stage changes of 4 leads, 4 outcomes; 1 model version" in out
    assert "repeats dropped: 1 stage changes" in out
    assert [cells(out, stage)[0] for stage in ("lead", "MQL", "SQL", "accepted (SAL)")] == [
        "4",
        "3  75.0%",
        "2  66.7%",
        "1  50.0%",
    ]
    assert [cells(out, stage)[0] for stage in ("opportunity", "won")] == ["1  100.0%", "1  100.0%"]
    assert cells(out, "MQL precision") == ["33.3% (1/3)"]
    assert cells(out, "win rate (of closed deals)") == ["100.0% (1/1)"]
    assert cells(out, "MQL → SQL") == ["3.0 h / 3.8 h (n=2)"]
    assert cells(out, "no budget") == ["1"]
    assert 'id="fig-funnel"' in html.read_text()

    assert report("--from-export", str(snapshot)) == 0
    again = capsys.readouterr().out
    assert again[again.index("Funnel") :] == out[out.index("Funnel") : out.index("snapshot: ")]
