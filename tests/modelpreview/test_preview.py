"""A whole preview (``run_shards``) against what the models say of the same input."""

from __future__ import annotations

import random
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from scoring import LeadState, ScoringModel, Transition, advance, apply, load_model_text, snapshot
from streams.core.contract import decode_event, format_time
from streams.local.workload import great_fit_persona
from streams.modelpreview.parallel import run_shards
from streams.modelpreview.shard import ModelSource, Progress, ShardJob
from streams.modelpreview.tally import PreviewResult
from streams.settings import Settings
from tests.modelpreview.exports import CRAWLER, LATENCY_S, Recorder, event, workload, write

DEFAULT = resources.files("scoring").joinpath("default_model.toml").read_text("utf-8")
#: The edit: MQL from 45 points instead of 50.
LOWER_MQL = DEFAULT.replace("entry = { score = 50,", "entry = { score = 45,")
#: Another: warm from 15 points instead of 20 (many leads move).
LOWER_WARM = DEFAULT.replace("entry = { score = 20 }", "entry = { score = 15 }")
T0 = 1_764_547_200.0  # 2025-12-01T00:00:00Z
DAY = 86400.0
LEAD = "lead-known"
#: 20 + 20 + 4 + 5 = 49 points within seconds: warm under the bundled model (MQL from
#: 50), MQL under LOWER_MQL; after 10 days, 49 * 2**(-1/3) = 38.9 < 40, MQL's exit.
KNOWN: tuple[tuple[str, dict[str, Any]], ...] = (
    ("profile", {"attributes": great_fit_persona(random.Random(7))}),
    ("web", {"url": "https://example.com/demo"}),
    ("web", {"url": "https://example.com/demo/book"}),
    ("web", {"url": "https://example.com/product"}),
    ("web", {"url": "https://example.com/customers/acme"}),
)


def known_lead_export(path: Path) -> tuple[Path, list[tuple[str, bytes, float]]]:
    """The known lead's events, one a second, as recorded."""
    recorder = Recorder()
    sent = []
    for i, (kind, body) in enumerate(KNOWN):
        at = T0 + i
        value = orjson.dumps(event(LEAD, f"k{i}", at, **body))
        sent.append((kind, value, at + LATENCY_S))
    write(path, (recorder.record(kind, value, at, LEAD) for kind, value, at in sent))
    return path, sent


def preview(
    export: Path, current: str, candidate: str, *, now: float | None = None, jobs: int = 1
) -> PreviewResult:
    job = ShardJob(
        export,
        0,
        jobs,
        ModelSource("current", current),
        ModelSource("candidate", candidate),
        Settings.from_env({}),
    )
    decide = (lambda newest: now) if now is not None else (lambda newest: newest)
    return run_shards(job, jobs, decide, Progress(lambda n: None, lambda n: None))


def fresh(
    model: ScoringModel, sent: list[tuple[str, bytes, float]], now: float
) -> tuple[list[tuple[str, str, str, str]], dict[str, Any]]:
    """The lead scored from nothing under ``model``: its changes and its view at ``now``."""
    state, changes = LeadState(LEAD), list[Transition]()
    for kind, value, at in sent:
        state, out = apply(state, decode_event(kind, value, now=at, max_future_skew_s=300), model)
        changes += out
    state, out = advance(state, now, model)
    changes += out
    view = snapshot(state, model, now)
    seen = [(c["from_stage"], c["to_stage"], str(c["cause"])) for c in changes]
    return [(*s, format_time(c["changed_at"])) for s, c in zip(seen, changes, strict=True)], view


def test_a_threshold_edit_moves_a_lead_as_scoring_it_fresh_under_the_edit_does(
    tmp_path: Path,
) -> None:
    export, sent = known_lead_export(tmp_path / "known.jsonl")
    result = preview(export, DEFAULT, LOWER_MQL)

    newest = T0 + len(KNOWN) - 1
    assert result.now == newest  # the default: the newest event's time
    old_changes, old = fresh(load_model_text(DEFAULT), sent, newest)
    new_changes, new = fresh(load_model_text(LOWER_MQL), sent, newest)
    assert (old["stage"], new["stage"]) == ("warm", "mql")
    assert result.moves.stages == {("warm", "mql"): 1}
    assert result.moves.samples == {("warm", "mql"): [LEAD]}
    assert list(result.current.scores) == [old["score"]]
    assert list(result.candidate.scores) == [new["score"]]
    assert result.candidate.grades == {new["grade"]: 1}
    assert sorted(result.current.changes_by_pair.elements()) == sorted(
        (a, b) for a, b, *_ in old_changes
    )
    assert sorted(result.candidate.changes_by_pair.elements()) == sorted(
        (a, b) for a, b, *_ in new_changes
    )


def test_decay_until_a_later_now_is_replayed_as_advancing_the_lead_does(tmp_path: Path) -> None:
    export, sent = known_lead_export(tmp_path / "known.jsonl")
    later = T0 + 10 * DAY
    result = preview(export, DEFAULT, LOWER_MQL, now=later)

    new_changes, new = fresh(load_model_text(LOWER_MQL), sent, later)
    # 49 * 2**(-x/30d) = 40, MQL's exit: x = 8.8 days.
    assert [c[:3] for c in new_changes][-1] == ("mql", "warm", "decay")
    assert new_changes[-1][3].startswith("2025-12-09")
    assert result.moves.stages == {}  # warm either way at the end
    assert result.candidate.changes_by_cause == {"event": 2, "decay": 1}
    assert result.candidate.changes_by_day == Counter(c[3][:10] for c in new_changes)
    assert list(result.candidate.scores) == [new["score"]]


def test_a_model_previewed_against_itself_changes_nothing(tmp_path: Path) -> None:
    export = write(
        tmp_path / "w.jsonl",
        workload(n_events=3000, n_leads=300, seed=5, start=T0, span_s=30 * DAY, trouble_every=40),
    )
    result = preview(export, DEFAULT, DEFAULT)
    a, b = result.current, result.candidate
    assert result.moves.stages == {} and result.moves.grades == {}
    assert a.stages == b.stages and a.grades == b.grades
    assert a.changes_by_day == b.changes_by_day and a.changes > 0
    assert list(a.scores) == list(b.scores)
    assert a.outcomes == b.outcomes and a.dead_letters == b.dead_letters


def test_invalid_records_are_counted_as_the_worker_dead_letters_them(tmp_path: Path) -> None:
    export = write(
        tmp_path / "w.jsonl",
        workload(n_events=800, n_leads=50, seed=3, start=T0, span_s=DAY, trouble_every=10),
    )
    result = preview(export, DEFAULT, LOWER_MQL)
    # 80 troubled records, 10 of each of exports.TROUBLE: four kinds are dead letters.
    expected = {"invalid_json": 10, "not_an_object": 10, "unknown_event_type": 10}
    assert result.current.dead_letters == {**expected, "bad_timestamp": 10}
    assert result.candidate.dead_letters == result.current.dead_letters
    assert result.current.outcomes["rerouted"] == 10
    assert result.current.outcomes["replayed"] == 10
    assert result.current.outcomes["bot"] == 10  # the bundled model filters crawlers
    assert result.records == 880


def test_shards_in_processes_add_up_to_the_same_preview(tmp_path: Path) -> None:
    export = write(
        tmp_path / "w.jsonl",
        workload(n_events=2000, n_leads=200, seed=9, start=T0, span_s=20 * DAY, trouble_every=25),
    )
    one = preview(export, DEFAULT, LOWER_WARM)
    two = preview(export, DEFAULT, LOWER_WARM, jobs=2)
    assert one.moves.leads > 0  # the edit shows
    assert (two.records, two.leads, two.now) == (one.records, one.leads, one.now)
    assert two.moves == one.moves
    for mine, theirs in ((two.current, one.current), (two.candidate, one.candidate)):
        assert sorted(mine.scores) == sorted(theirs.scores)
        mine.scores = theirs.scores  # order of the shards' leads aside, all else equal
        assert mine == theirs


def test_a_renamed_stage_moves_no_lead(tmp_path: Path) -> None:
    export, _ = known_lead_export(tmp_path / "known.jsonl")
    hot = LOWER_MQL.replace('name = "mql"', 'name = "hot"\nrenamed_from = ["mql"]')
    result = preview(export, LOWER_MQL, hot)
    assert (result.current.stages, result.candidate.stages) == ({"mql": 1}, {"hot": 1})
    assert result.moves.stages == {}


def test_a_crawler_filtered_under_one_model_is_scored_under_one_that_does_not_ask(
    tmp_path: Path,
) -> None:
    no_list = DEFAULT.replace("known_user_agents = true", "known_user_agents = false")
    assert no_list != DEFAULT
    recorder = Recorder()
    visits = [
        event(LEAD, f"v{i}", T0 + i, url="https://x.example/pricing", user_agent=CRAWLER)
        for i in range(3)
    ]
    export = write(
        tmp_path / "bots.jsonl",
        (recorder.record("web", orjson.dumps(v), T0 + i + 1, LEAD) for i, v in enumerate(visits)),
    )
    for current, candidate in ((DEFAULT, no_list), (no_list, DEFAULT)):  # either order
        result = preview(export, current, candidate)
        filtering, scoring = (
            (result.current, result.candidate)
            if current == DEFAULT
            else (result.candidate, result.current)
        )
        assert filtering.outcomes == {"bot": 3} and filtering.bots == {"user_agent": 3}
        assert scoring.outcomes == {"scored": 3} and not scoring.bots
