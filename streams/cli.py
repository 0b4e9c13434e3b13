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
    assert local is not None  # argparse offers the other commands only with it
    try:
        return int(local.run(args, settings))
    except SettingsError as exc:
        print(f"leadstream: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
