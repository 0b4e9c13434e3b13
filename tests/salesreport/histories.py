"""Sales histories whose every KPI is known by construction, as the records
``lead.qualified`` and ``lead.outcomes`` carry them."""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from streams.core.contract import format_time
from streams.modelpreview.exportfile import ExportRecord, encode_record
from streams.salesreport.history import OUTCOME_KIND, QUALIFIED_KIND, History

T0 = 1_764_547_200.0  # 2025-12-01T00:00:00Z
HOUR = 3600.0
MODEL = ("leadstream-default", "1.0.0")
#: (kind, value) as read from an export line.
Record = tuple[str, dict[str, Any]]


def change(
    lead: str,
    sequence: int,
    to_stage: str,
    at: float,
    *,
    grade: str = "A",
    model: tuple[str, str] = MODEL,
    from_stage: str = "cold",
    cause: str = "event",
) -> Record:
    """A ``lead.qualified`` message (only the fields the report reads, and a few more)."""
    return QUALIFIED_KIND, {
        "event_id": f"q-{lead}-{sequence}",
        "lead_id": lead,
        "sequence": sequence,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "direction": "none" if cause == "sla_breach" else "up",
        "cause": cause,
        "grade": grade,
        "model_id": model[0],
        "model_version": model[1],
        "changed_at": format_time(at),
    }


def outcome(lead: str, name: str, at: float, reason: str | None = None, n: int = 0) -> Record:
    value: dict[str, Any] = {
        "event_id": f"o-{lead}-{name}-{n}",
        "lead_id": lead,
        "occurred_at": round(at * 1000),  # epoch ms: the other time format
        "outcome": name,
    }
    if reason is not None:
        value["reason"] = reason
    return OUTCOME_KIND, value


def grade_of(i: int) -> str:
    """MQLs 0-19 and 40-49 are A, 20-39 and 50-69 B, 70-99 C."""
    if i < 20 or 40 <= i < 50:
        return "A"
    return "B" if i < 70 else "C"


def known(prefix: str = "a", model: tuple[str, str] = MODEL, start: float = T0) -> list[Record]:
    """250 leads: 100 MQLs, 40 of them SQLs, 20 accepted (the other 20 rejected),
    10 opportunities, 4 won, 5 lost, 1 open.

    MQL ``i`` (0-99) reaches SQL if ``i < 40``, is accepted if ``i < 20``, has an
    opportunity if ``i < 10``, is won if ``i < 4`` and lost if 4 <= i < 9. Times: warm
    at its start, MQL 1 h later, SQL ``i + 1`` hours after that (MQL -> SQL: 1..40 h),
    accepted or rejected 2 h after SQL, contacted (i < 16) 1 h after that, the
    opportunity 24 h after SQL (lead -> opportunity: ``i + 26`` h), won or lost
    ``10 * (i + 1)`` h after it. Rejected: "no budget" for even ``i``, "bad timing"
    for odd; lost: "competitor" for i < 7, else "price"; 5 rejected leads recycled.
    """
    records: list[Record] = []
    for i in range(250):
        lead = f"{prefix}-{i:03d}"
        base = start + i * 60
        records.append(change(lead, 1, "warm", base, model=model))
        if i >= 100:
            continue  # never an MQL: warm to the end
        grade = grade_of(i)
        mql = base + HOUR
        records.append(change(lead, 2, "mql", mql, grade=grade, model=model, from_stage="warm"))
        if i < 40:
            sql = mql + (i + 1) * HOUR
            records.append(change(lead, 3, "sql", sql, grade=grade, model=model, from_stage="mql"))
            records += _sales(lead, i, sql)
    return records


def _sales(lead: str, i: int, sql: float) -> list[Record]:
    if i >= 20:
        reason = "no budget" if i % 2 == 0 else "bad timing"
        out = [outcome(lead, "rejected", sql + 2 * HOUR, reason)]
        if i < 25:
            out.append(outcome(lead, "recycled", sql + 3 * HOUR, "nurture"))
        return out
    out = [outcome(lead, "accepted", sql + 2 * HOUR)]
    if i < 16:
        out.append(outcome(lead, "contacted", sql + 3 * HOUR))
    if i < 10:
        opportunity = sql + 24 * HOUR
        out.append(outcome(lead, "opportunity_created", opportunity))
        closed = opportunity + 10 * (i + 1) * HOUR
        if i < 4:
            out.append(outcome(lead, "won", closed))
        elif i < 9:
            out.append(outcome(lead, "lost", closed, "competitor" if i < 7 else "price"))
    return out


def history_of(records: Iterable[Record]) -> History:
    history = History()
    for kind, value in records:
        history.add(kind, value)
    return history


def shuffled(records: list[Record], seed: int = 1) -> list[Record]:
    out = list(records)
    random.Random(seed).shuffle(out)
    return out


def write_export(path: Path, records: Iterable[Record]) -> Path:
    """``records`` as an export file, each on the topic of its kind."""
    topics = {QUALIFIED_KIND: "lead.qualified", OUTCOME_KIND: "lead.outcomes"}
    with path.open("wb") as f:
        for offset, (kind, value) in enumerate(records):
            key = value["lead_id"].encode()
            record = ExportRecord(topics[kind], kind, 0, offset, -1, key, orjson.dumps(value))
            f.write(encode_record(record))
    return path
