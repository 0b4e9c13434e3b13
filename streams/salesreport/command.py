"""``leadstream report``: the sales funnel after the fact, per scoring model version.

``streams.cli`` wires it: ``add_arguments`` fills the subcommand's parser and
``run(args)`` runs it. Exit codes, as ``leadstream model preview``'s: 0 done; 2
anything that stops it (no such export, a malformed line, Kafka out of reach, a bad
setting, the ``preview`` extra missing), said in one line on stderr; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from streams.modelpreview.command import CommandError, run_guarded
from streams.settings import Settings, SettingsError

if TYPE_CHECKING:
    from streams.modelpreview.export import OnProgress
    from streams.salesreport.history import History
    from streams.salesreport.read import OnBytes

PROG = "leadstream report"


def run(args: argparse.Namespace, err: TextIO | None = None) -> int:
    """Run ``leadstream report`` with the parsed ``args``; the exit code."""
    stream = err or sys.stderr
    return run_guarded(PROG, lambda: _report(args, stream), stream)


def _report(args: argparse.Namespace, err: TextIO) -> None:
    from rich.console import Console

    from streams.salesreport.htmlreport import write_html
    from streams.salesreport.kpis import FunnelStages, compute
    from streams.salesreport.table import print_report, read_progress

    _check_paths(args)
    console = Console()
    with (
        tempfile.TemporaryDirectory(prefix="leadstream-report-") as tmp,
        read_progress(Console(stderr=True)) as bars,
    ):
        paths: list[Path] = args.from_export or []
        if args.from_topics:
            out = args.save_export or Path(tmp) / "topics.jsonl"
            _snapshot(out, bars.records, err)
            paths = [out]
        bars.start_file(sum(p.stat().st_size for p in paths))
        history = _read(paths, bars.file_bytes)
    report = compute(history, FunnelStages(args.mql_stage, args.sql_stage))
    print_report(console, report)
    if args.save_export is not None:
        console.print(f"snapshot: {args.save_export}", soft_wrap=True, markup=False)
    if args.html is not None:
        try:
            write_html(args.html, report)
        except OSError as exc:
            raise CommandError(f"{args.html}: cannot write the report: {exc.strerror}") from None
        console.print(f"report: {args.html}", soft_wrap=True, markup=False)


def _check_paths(args: argparse.Namespace) -> None:
    """Every path mistake before a long read, not after."""
    for path in args.from_export or ():
        if not path.is_file():
            raise CommandError(f"{path}: no such export file")
    if args.save_export is not None and not args.from_topics:
        raise CommandError("--save-export needs --from-topics")
    for path in (args.save_export, args.html):
        if path is not None and not path.parent.is_dir():
            raise CommandError(f"{path.parent}: no such directory")


def _snapshot(out: Path, on_progress: OnProgress, err: TextIO) -> None:
    from streams.modelpreview.export import ExportError
    from streams.salesreport.read import export_report_topics

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise CommandError(f"configuration error: {exc}") from None
    try:
        missing = export_report_topics(settings, out, on_progress)
    except ExportError as exc:
        raise CommandError(str(exc)) from None
    for topic in missing:
        print(f"{PROG}: topic {topic} does not exist: no outcomes to count", file=err)


def _read(paths: list[Path], on_bytes: OnBytes) -> History:
    from streams.modelpreview.exportfile import ExportFormatError
    from streams.salesreport.read import read_exports

    try:
        return read_exports(paths, on_bytes)
    except ExportFormatError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"{exc.filename}: cannot read: {exc.strerror}") from None
