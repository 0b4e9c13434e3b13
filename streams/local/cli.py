"""The developer commands of ``leadstream``: local broker, demo traffic, tail, up.

Registered by ``streams.cli`` when this package is installed (a source checkout or
an editable install); the wheel and the Docker image leave it out.
"""

from __future__ import annotations

import argparse
from typing import Any

from streams.settings import Settings

#: The subcommands this package adds.
COMMANDS = ("kafka", "demo", "tail", "up")


def add_commands(sub: Any) -> None:
    """Add the developer subcommands to ``leadstream``'s subparsers ``sub``."""
    kafka = sub.add_parser("kafka", help="run a local single-node Apache Kafka (KRaft)")
    kafka.add_argument("action", choices=("start", "stop", "status", "run"))

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


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run developer subcommand ``args.command``; imports only what it needs."""
    from streams.local.settings import LocalSettings

    if args.command == "kafka":
        from streams.local import kafka

        return kafka.cli(args.action, LocalSettings.from_env())
    if args.command == "demo":
        from streams.local.demo import run_demo_cli

        return run_demo_cli(
            settings, rate=args.rate, leads=args.leads, duration=args.duration, seed=args.seed
        )
    if args.command == "tail":
        from streams.local.tail import run_tail

        return run_tail(settings, from_beginning=args.from_beginning, dlq=args.dlq)
    if args.command == "up":
        from streams.local.up import run_up

        return run_up(settings, LocalSettings.from_env())
    raise AssertionError(args.command)  # argparse enforces the choices
