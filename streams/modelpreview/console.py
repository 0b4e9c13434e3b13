"""What the preview prints: a progress bar while it replays, then the summary tables
(rich, from the ``preview`` extra)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table

from streams.modelpreview.shard import Progress
from streams.modelpreview.summary import (
    Labels,
    Row,
    day_rows,
    grade_rows,
    headline,
    input_rows,
    move_rows,
    quantile_rows,
    stage_rows,
)
from streams.modelpreview.tally import PreviewResult

#: Days of stage changes the console lists (the HTML report has them all).
CONSOLE_DAYS = 14
#: Sample lead ids the console lists per stage move (the report has more).
CONSOLE_SAMPLES = 3


@contextmanager
def replay_progress(console: Console, lines: int, shards: int) -> Iterator[Progress]:
    """Bars for both passes over the export: reading it (every shard reads all of it)
    and replaying its records."""
    columns = (
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with RichProgress(*columns, console=console, transient=True) as bars:
        reading = bars.add_task("reading", total=lines * shards)
        replaying = bars.add_task("replaying", total=lines)
        yield Progress(
            lines=lambda n: bars.advance(reading, n),
            records=lambda n: bars.advance(replaying, n),
        )


def print_summary(
    console: Console, result: PreviewResult, labels: Labels, order: Sequence[str]
) -> None:
    # Whole lines, not wrapped at the console's width: paths and counts are copied.
    console.print(f"[bold]current[/]   {escape(labels.current)}", soft_wrap=True)
    console.print(f"[bold]candidate[/] {escape(labels.candidate)}", soft_wrap=True)
    console.print(headline(result), soft_wrap=True, markup=False)
    console.print(_counts("Input", input_rows(result)))
    console.print(_counts("Leads per stage", stage_rows(result, order)))
    console.print(_counts("Leads per grade", grade_rows(result)))
    console.print(_moves(result, order))
    days = day_rows(result)
    title = "Stage changes per day (UTC)"
    if len(days) > CONSOLE_DAYS:
        title += f": the last {CONSOLE_DAYS} of {len(days)} (all in the report)"
    console.print(_counts(title, days[-CONSOLE_DAYS:]))
    console.print(_scores(result))


def _counts(title: str, rows: list[Row]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for name in ("current", "candidate", "change"):
        table.add_column(name, justify="right")
    for name, a, b in rows:
        table.add_row(name, f"{a:,}", f"{b:,}", f"{b - a:+,}" if b != a else "")
    return table


def _moves(result: PreviewResult, order: Sequence[str]) -> Table:
    table = Table(title="Leads that would change stage", title_justify="left")
    table.add_column("current")
    table.add_column("candidate")
    table.add_column("leads", justify="right")
    table.add_column("for example", overflow="fold")
    for old, new, n, sample in move_rows(result, order):
        table.add_row(old, new, f"{n:,}", ", ".join(sample[:CONSOLE_SAMPLES]))
    if not result.moves.stages:
        table.add_row("(none)", "", "0", "")
    return table


def _scores(result: PreviewResult) -> Table:
    table = Table(title="Scores at the end", title_justify="left")
    table.add_column("")
    table.add_column("current", justify="right")
    table.add_column("candidate", justify="right")
    for name, a, b in quantile_rows(result):
        table.add_row(name, f"{a:.2f}", f"{b:.2f}")
    return table
