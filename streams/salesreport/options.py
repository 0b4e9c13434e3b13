"""The options of ``leadstream report``, apart from the command: building the
``leadstream`` parser imports this and nothing heavier."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``leadstream report``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--from-topics",
        action="store_true",
        help="lead.qualified and lead.outcomes, as retained now",
    )
    source.add_argument(
        "--from-export",
        type=Path,
        nargs="+",
        metavar="FILE.jsonl",
        help="export files (from --save-export, or made otherwise in the same format)",
    )
    parser.add_argument("--html", type=Path, metavar="report.html", help="write an HTML report")
    parser.add_argument(
        "--save-export",
        type=Path,
        metavar="FILE.jsonl",
        help="with --from-topics: keep the snapshot read, for a later --from-export",
    )
    parser.add_argument("--mql-stage", default="mql", help="the model's MQL stage (default: mql)")
    parser.add_argument("--sql-stage", default="sql", help="the model's SQL stage (default: sql)")
