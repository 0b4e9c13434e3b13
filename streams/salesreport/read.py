"""Reading a sales history: from export files, or from the topics as retained now.

Both go through the model export's JSON-lines format (``streams.modelpreview
.exportfile``; docs/model-preview.md), with kinds of their own: ``qualified`` for
``lead.qualified`` and ``outcome`` for ``lead.outcomes``. Reading the topics is the
model export's bounded snapshot (``streams.modelpreview.export``: earliest offsets to
the end offsets when it starts, no consumer group, nothing committed) written to a
file, then read like any export. Lines of the input topics' kinds are skipped, so a
model export and a report export can be read together.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from streams.core.contract import SOURCE_KINDS
from streams.modelpreview.export import MissingTopicError, OnProgress, export_snapshot
from streams.modelpreview.exportfile import ExportFormatError, parse_line, value_of
from streams.modelpreview.order import located
from streams.salesreport.history import KINDS, OUTCOME_KIND, QUALIFIED_KIND, History
from streams.settings import Settings

#: Lines between progress reports.
REPORT_EVERY = 10_000
#: Every kind a line may have: the report's, and the input topics' (skipped).
KNOWN_KINDS = frozenset((*KINDS, *SOURCE_KINDS))

#: Called with the bytes read since the last call.
OnBytes = Callable[[int], None]


def read_exports(paths: Sequence[Path], on_bytes: OnBytes | None = None) -> History:
    """The history in the export files ``paths`` (their lines in any order).

    Raises ``ExportFormatError`` (with the file and line) for a line that is not an
    export record, and ``OSError`` for a file that cannot be read.
    """
    history = History()
    with _no_cyclic_gc():
        for path in paths:
            _read_file(path, history, on_bytes)
    return history


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Python's cyclic collector off: every record read is kept, and it went over them
    again and again for nothing (3 of 10 s reading 1M stage changes)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_file(path: Path, history: History, on_bytes: OnBytes | None) -> None:
    pending = 0
    with path.open("rb") as f:
        for line_no, line in enumerate(f, 1):
            pending += len(line)
            if on_bytes is not None and line_no % REPORT_EVERY == 0:
                on_bytes(pending)
                pending = 0
            if line.isspace():
                continue
            try:
                obj = parse_line(line, KNOWN_KINDS)
                kind = obj["kind"]
                if kind in KINDS:
                    history.add(kind, _value(obj))
            except ExportFormatError as exc:
                raise located(exc, path, line_no) from None
    if on_bytes is not None:
        on_bytes(pending)


def _value(obj: dict[str, Any]) -> Any:
    """The record's value as parsed JSON; None when it is not JSON (left out, counted)."""
    if "value" in obj:
        return obj["value"]
    try:
        return orjson.loads(value_of(obj))
    except orjson.JSONDecodeError:
        return None


def report_topics(settings: Settings) -> dict[str, str]:
    """The topics a report reads -> the kind of their lines."""
    return {settings.topic_qualified: QUALIFIED_KIND, settings.topic_outcomes: OUTCOME_KIND}


def export_report_topics(settings: Settings, out: Path, on_progress: OnProgress) -> list[str]:
    """Write the snapshot of ``lead.qualified`` and ``lead.outcomes`` to ``out``;
    the topics it went without (``lead.outcomes`` when no CRM sync has created it).

    Raises ``streams.modelpreview.export.ExportError`` when it cannot be made.
    """
    topics = report_topics(settings)
    try:
        export_snapshot(settings, out, topics, on_progress)
        return []
    except MissingTopicError as exc:
        if exc.topic != settings.topic_outcomes:
            raise
    # No outcomes yet: the stage changes alone still make the funnel up to SQL.
    del topics[settings.topic_outcomes]
    export_snapshot(settings, out, topics, on_progress)
    return [settings.topic_outcomes]
