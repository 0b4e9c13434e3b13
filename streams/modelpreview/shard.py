"""One shard of a preview: its records replayed under both models side by side, then
every lead of the shard evaluated at the preview's ``now`` and compared."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scoring import load_model_text
from streams.modelpreview.order import scan
from streams.modelpreview.replay import ModelReplay, RecordReplay
from streams.modelpreview.tally import ModelTally, Moves, PreviewResult
from streams.settings import Settings

#: Records replayed between two progress reports.
REPORT_EVERY = 2048


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A model as its TOML text (each shard's process loads it again)."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class ShardJob:
    export: Path
    shard: int
    shards: int
    current: ModelSource
    candidate: ModelSource
    settings: Settings


@dataclass(slots=True)
class Progress:
    """Where a shard reports: lines read (first pass), records replayed (second)."""

    lines: Callable[[int], None]
    records: Callable[[int], None]


def replay_shard(
    job: ShardJob, progress: Progress, decide_now: Callable[[float | None], float]
) -> PreviewResult:
    """Replay the shard's records under both models; ``decide_now`` gets the shard's
    newest event time and returns the time every lead is evaluated at."""
    # The replay keeps millions of objects (records, lead states) and allocates
    # millions more that reference counting frees; the cyclic collector's passes over
    # the kept ones took a fifth of the time, for a few hundred objects in 500k
    # events (bench/preview_speed.py). Off for the replay, as the worker tunes it.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _replay_shard(job, progress, decide_now)
    finally:
        if enabled:
            gc.enable()


def _replay_shard(
    job: ShardJob, progress: Progress, decide_now: Callable[[float | None], float]
) -> PreviewResult:
    result = PreviewResult()
    replays = (
        _model_replay(job.current, result.current),
        _model_replay(job.candidate, result.candidate),
    )
    settings = job.settings
    records = RecordReplay(replays, settings.partitions, settings.max_future_skew_s)
    entries = scan(job.export, job.shard, job.shards, progress.lines)
    handle = records.handle
    for n, entry in enumerate(entries, 1):
        handle(
            entry.kind, entry.topic, entry.partition, entry.offset, entry.value, entry.handled_at
        )
        if n % REPORT_EVERY == 0:
            progress.records(REPORT_EVERY)
    progress.records(len(entries) % REPORT_EVERY)
    result.records = len(entries)
    result.newest_event = records.newest_event
    result.now = decide_now(records.newest_event)
    _evaluate(replays, result)
    return result


def _model_replay(source: ModelSource, tally: ModelTally) -> ModelReplay:
    return ModelReplay(load_model_text(source.text, source.name), tally.count_change)


def _evaluate(replays: tuple[ModelReplay, ModelReplay], result: PreviewResult) -> None:
    """Every lead at ``result.now`` under both models, and how they compare."""
    current = {lead.lead_id: lead for lead in replays[0].finish(result.now)}
    candidate = {lead.lead_id: lead for lead in replays[1].finish(result.now)}
    for replay, tally, leads in (
        (replays[0], result.current, current),
        (replays[1], result.candidate, candidate),
    ):
        for lead in leads.values():
            tally.count_lead(lead)
        tally.outcomes.update(replay.outcomes)
        tally.dead_letters.update(replay.dead_letters)
        tally.bots.update(replay.bots)
    moves = Moves()
    renamed = replays[1].model.renamed_stages
    for lead_id in current.keys() | candidate.keys():
        moves.count(current.get(lead_id), candidate.get(lead_id), renamed)
    moves.trim()
    result.moves = moves
    result.leads = len(current.keys() | candidate.keys())
