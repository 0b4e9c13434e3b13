"""The two subcommands: ``leadstream model export`` and ``leadstream model preview``.

Exit codes: 0 done; 1 an invalid model (as ``model check``); 2 anything else that
stops it (a missing export, a bad line, Kafka out of reach, the ``preview`` extra not
installed), said in one line on stderr.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

from scoring import ModelError, ScoringModel, load_model_text
from streams.core.contract import format_time, parse_time
from streams.modelpreview.parallel import PreviewError
from streams.modelpreview.shard import ModelSource, ShardJob
from streams.settings import Settings

#: Records per process when ``--jobs`` is not given: below this a process costs more
#: to start than it saves.
RECORDS_PER_JOB = 100_000
EXTRA_HINT = "pip install 'leadstream[preview]'"


@dataclass(frozen=True, slots=True)
class PreviewArgs:
    candidate: Path
    current: Path | None  # None: LEADSTREAM_MODEL, else the bundled default
    export: Path | None  # None: from the topics
    report: Path | None = None
    now: str | None = None
    jobs: int | None = None


class CommandError(Exception):
    """Stops the command: the one-line message and the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def export_command(
    settings: Settings, out: Path, topics: Sequence[str] | None, err: TextIO | None = None
) -> int:
    def export() -> None:
        n = _export_with_progress(settings, out, topics or settings.input_topics)
        print(f"{out}: {n:,} records exported")

    return run_guarded("leadstream model export", export, err, "interrupted; no file written")


def preview_command(settings: Settings, args: PreviewArgs, err: TextIO | None = None) -> int:
    return run_guarded("leadstream model preview", lambda: _preview(settings, args), err)


def run_guarded(
    prog: str, action: Callable[[], None], err: TextIO | None, interrupted: str = "interrupted"
) -> int:
    """Run a model owner's command: the ``preview`` extra checked first, a
    :class:`CommandError` as one line and its code, Ctrl-C as one line and 130."""
    err = err or sys.stderr
    try:
        _need_extra()
        action()
    except CommandError as exc:
        print(f"{prog}: {exc}", file=err)
        return exc.code
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=err)
        return 130
    return 0


def _need_extra() -> None:
    missing = [m for m in ("rich", "plotly") if importlib.util.find_spec(m) is None]
    if missing:
        raise CommandError(f"needs {' and '.join(missing)}: {EXTRA_HINT}")


def _export_with_progress(settings: Settings, out: Path, topics: Sequence[str]) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from streams.modelpreview.export import ExportError, export_topics

    if not out.parent.is_dir():
        raise CommandError(f"{out.parent}: no such directory")
    with Progress(console=Console(stderr=True), transient=True) as bars:
        task = bars.add_task("exporting", total=None)
        try:
            return export_topics(
                settings, out, topics, lambda n, total: bars.update(task, completed=n, total=total)
            )
        except ExportError as exc:
            raise CommandError(str(exc)) from None


def _preview(settings: Settings, args: PreviewArgs) -> None:
    from rich.console import Console

    from streams.modelpreview.console import print_summary, replay_progress
    from streams.modelpreview.parallel import run_shards
    from streams.modelpreview.report import write_report
    from streams.modelpreview.summary import Labels, stage_order

    current_source = _model_source(args.current or _in_use(settings))
    candidate_source = _model_source(args.candidate)
    current, candidate = _load(current_source), _load(candidate_source)
    now = _parse_now(args.now)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="leadstream-preview-") as tmp:
        export = args.export or Path(tmp) / "topics.jsonl"
        if args.export is None:
            _export_with_progress(settings, export, settings.input_topics)
        elif not export.is_file():
            raise CommandError(f"{export}: no such export file")
        lines = _count_lines(export)
        shards = args.jobs or min(os.cpu_count() or 1, 1 + lines // RECORDS_PER_JOB)
        job = ShardJob(export, 0, shards, current_source, candidate_source, settings)
        with replay_progress(Console(stderr=True), lines, shards) as progress:
            try:
                result = run_shards(job, shards, _decider(now), progress)
            except PreviewError as exc:
                raise CommandError(str(exc)) from None
    labels, order = Labels.of(current, candidate), stage_order(current, candidate)
    print_summary(console, result, labels, order)
    if args.report is not None:
        try:
            write_report(args.report, result, labels, order)
        except OSError as exc:
            raise CommandError(f"{args.report}: cannot write the report: {exc.strerror}") from None
        console.print(f"report: {args.report}")


def _in_use(settings: Settings) -> Path | None:
    return Path(settings.model_path) if settings.model_path else None


def _model_source(path: Path | None) -> ModelSource:
    if path is None:
        text = resources.files("scoring").joinpath("default_model.toml").read_text("utf-8")
        return ModelSource("the bundled default model", text)
    try:
        return ModelSource(str(path), path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"{path}: cannot read the model: {exc.strerror}") from None


def _load(source: ModelSource) -> ScoringModel:
    try:
        return load_model_text(source.text, source.name)
    except ModelError as exc:
        more = len(exc.problems) - 1
        also = f" (and {more} more: `leadstream model check` lists them)" if more else ""
        raise CommandError(
            f"{source.name}: invalid scoring model: {exc.problems[0]}{also}", code=1
        ) from None


def _parse_now(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise CommandError(
            f"--now {text!r}: use an RFC 3339 time with an offset (2026-12-01T00:00:00Z)"
        ) from None


def _decider(now: float | None) -> Callable[[float | None], float]:
    """When the leads are read: ``--now``, else the newest event time in the input
    (else, with no event at all, the current time). Not before the newest event: the
    replay has scored it already."""

    def decide(newest: float | None) -> float:
        if now is None:
            return newest if newest is not None else time.time()
        if newest is not None and now < newest:
            raise PreviewError(
                f"--now {format_time(now)} is before the newest event in the input "
                f"({format_time(newest)})"
            )
        return now

    return decide


def _count_lines(path: Path) -> int:
    n = 0
    last = b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")
