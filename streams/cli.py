"""The ``leadstream`` command: the worker, plus developer tooling in a source checkout.

``leadstream worker`` is the runtime. ``kafka``, ``demo``, ``tail`` and ``up`` come
from ``streams.local`` (local broker, demo traffic), which the wheel and the Docker
image do not ship. Each subcommand imports what it needs lazily so ``leadstream
kafka status`` does not pay for importing Faust.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from streams.settings import Settings, SettingsError


def _local_tooling() -> ModuleType | None:
    try:
        from streams.local import cli as local_cli
    except ImportError:  # an installed wheel: runtime only
        return None
    return local_cli


def _build_parser(local: ModuleType | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a leadstream worker (foreground)")
    model = sub.add_parser("model", help="scoring model tools")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    check = model_sub.add_parser(
        "check", help="validate a model file and print what it changes against the one in use"
    )
    check.add_argument("path", type=Path, help="the edited model (TOML)")
    check.add_argument(
        "--against",
        type=Path,
        help="the model in use (default: LEADSTREAM_MODEL, else the bundled default)",
    )
    test = model_sub.add_parser(
        "test", help="run example leads (events and expected outcomes) against a model"
    )
    test.add_argument("fixtures", type=Path, help="the example leads (TOML)")
    test.add_argument(
        "--model",
        type=Path,
        help="the model to test (default: LEADSTREAM_MODEL, else the bundled default)",
    )
    _add_preview_commands(model_sub)
    lead = sub.add_parser("lead", help="why a lead's score is what it is: its recent history")
    lead.add_argument("lead_id", help="the lead's id")
    lead.add_argument(
        "--url",
        help="a worker's HTTP API (default: http://LEADSTREAM_WEB_HOST:LEADSTREAM_WEB_PORT)",
    )
    report = sub.add_parser(
        "report", help="the sales funnel after the fact, per scoring model version (docs/kpis.md)"
    )
    from streams.salesreport.options import add_arguments as add_report_arguments

    add_report_arguments(report)
    if local is not None:
        local.add_commands(sub)
    return parser


def _add_preview_commands(model_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = model_sub.add_parser(
        "export", help="write the input topics, as retained now, to a JSON-lines file"
    )
    export.add_argument("--out", type=Path, required=True, metavar="FILE.jsonl")
    export.add_argument(
        "--topics", nargs="+", metavar="TOPIC", help="input topics to export (default: all four)"
    )
    preview = model_sub.add_parser(
        "preview",
        help="replay recorded input through the model in use and an edited one, side by side",
    )
    preview.add_argument("path", type=Path, help="the edited model (TOML)")
    preview.add_argument(
        "--current",
        type=Path,
        help="the model in use (default: LEADSTREAM_MODEL, else the bundled default)",
    )
    source = preview.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-export", type=Path, metavar="FILE.jsonl", help="an export file")
    source.add_argument(
        "--from-topics", action="store_true", help="the input topics, as retained now"
    )
    preview.add_argument("--report", type=Path, metavar="report.html", help="write an HTML report")
    preview.add_argument(
        "--now", metavar="ISO", help="read the leads at this time (default: the newest event's)"
    )
    preview.add_argument(
        "--jobs", type=_positive, help="processes (default: one per 100k records, up to the CPUs)"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    local = _local_tooling()
    args = _build_parser(local).parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"leadstream: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "worker":
        from streams.worker import run_worker

        return run_worker(settings)
    if args.command == "model":
        return _model_command(args, settings)
    if args.command == "lead":
        return _lead_command(args, settings)
    if args.command == "report":
        from streams.salesreport import command as report_command

        return report_command.run(args)
    assert local is not None  # argparse offers the other commands only with it
    try:
        return int(local.run(args, settings))
    except SettingsError as exc:
        print(f"leadstream: configuration error: {exc}", file=sys.stderr)
        return 2


def _model_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.model_command == "check":
        from streams.modelcheck import check_model

        current = args.against or (Path(settings.model_path) if settings.model_path else None)
        return check_model(args.path, current)
    if args.model_command == "test":
        return _model_test_command(args, settings)
    from streams.modelpreview import command

    if args.model_command == "export":
        return command.export_command(settings, args.out, args.topics)
    preview = command.PreviewArgs(
        candidate=args.path,
        current=args.current,
        export=args.from_export,
        report=args.report,
        now=args.now,
        jobs=args.jobs,
    )
    return command.preview_command(settings, preview)


def _model_test_command(args: argparse.Namespace, settings: Settings) -> int:
    from scoring import ModelError, load_default_model, load_model
    from streams.modeltest import run_file

    path = args.model or (Path(settings.model_path) if settings.model_path else None)
    try:
        model = load_model(path) if path is not None else load_default_model()
    except (ModelError, OSError) as exc:
        print(f"{path}: invalid scoring model: {exc}", file=sys.stderr)
        return 2
    report, status = run_file(args.fixtures, model)
    print(report, file=sys.stdout if status != 2 else sys.stderr)
    return status


def _lead_command(args: argparse.Namespace, settings: Settings) -> int:
    import urllib.error

    from streams.leadhistory import fetch_history, render

    url = args.url or f"http://{settings.web_host}:{settings.web_port}"
    try:
        body = fetch_history(url, args.lead_id, settings.http_token)
    except urllib.error.HTTPError as exc:
        reason = {404: "no such lead", 401: "the API token is missing or wrong"}
        print(f"leadstream lead: {reason.get(exc.code, f'HTTP {exc.code}')}", file=sys.stderr)
        return 1 if exc.code == 404 else 2
    except (urllib.error.URLError, OSError) as exc:
        print(f"leadstream lead: cannot reach {url}: {exc}", file=sys.stderr)
        return 2
    print(render(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
