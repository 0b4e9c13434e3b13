"""The ``leadstream`` command: local broker, worker, demo traffic, tail, benchmarks.

Each subcommand imports what it needs lazily so ``leadstream kafka status`` does not
pay for importing Faust.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streams.settings import Settings, SettingsError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="run a local single-node Apache Kafka (KRaft)")
    kafka.add_argument("action", choices=("start", "stop", "status", "run"))

    sub.add_parser("worker", help="run a leadstream Faust worker (foreground)")

    demo = sub.add_parser("demo", help="produce realistic demo traffic")
    demo.add_argument("--rate", type=float, default=50.0, help="events per second")
    demo.add_argument("--leads", type=int, default=200, help="distinct leads")
    demo.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = forever")
    demo.add_argument(
        "--seed",
        type=int,
        help="of every random choice, event ids included (default: a new one each run, printed)",
    )

    tail = sub.add_parser("tail", help="print stage changes from lead.qualified")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--dlq", action="store_true", help="tail the dead-letter topic instead")

    sub.add_parser("up", help="local broker + worker + demo traffic + tail; Ctrl-C stops all")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"leadstream: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "kafka":
        from streams import localkafka

        return localkafka.cli(args.action, settings)
    if args.command == "worker":
        from streams.worker import run_worker

        return run_worker(settings)
    if args.command == "demo":
        from streams.demo import run_demo_cli

        return run_demo_cli(
            settings, rate=args.rate, leads=args.leads, duration=args.duration, seed=args.seed
        )
    if args.command == "tail":
        from streams.tail import run_tail

        return run_tail(settings, from_beginning=args.from_beginning, dlq=args.dlq)
    if args.command == "up":
        from streams.up import run_up

        return run_up(settings)
    raise AssertionError(args.command)  # argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
