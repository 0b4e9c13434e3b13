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
    if local is not None:
        local.add_commands(sub)
    return parser


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
        from streams.modelcheck import check_model

        current = args.against or (Path(settings.model_path) if settings.model_path else None)
        return check_model(args.path, current)
    assert local is not None  # argparse offers the other commands only with it
    try:
        return int(local.run(args, settings))
    except SettingsError as exc:
        print(f"leadstream: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
