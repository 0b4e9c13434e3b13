"""What ``leadstream report`` prints: progress bars while it reads, then the tables
(rich, from the ``preview`` extra). A column per model version, after all of them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from streams.salesreport import rows
from streams.salesreport.kpis import REASONED, SalesReport


class ReadBars:
    """Progress of both reads: the topics' records (when a snapshot is taken), then the
    file's bytes. Each bar shows from its first report."""

    def __init__(self, bars: Progress) -> None:
        self._bars = bars
        self._topics = bars.add_task("topics", total=None, visible=False)
        self._file = bars.add_task("reading", total=None, visible=False)

    def records(self, done: int, total: int) -> None:
        self._bars.update(self._topics, completed=done, total=total, visible=True)

    def start_file(self, size: int) -> None:
        self._bars.update(self._file, total=size or None, visible=True)

    def file_bytes(self, n: int) -> None:
        self._bars.advance(self._file, n)


@contextmanager
def read_progress(console: Console) -> Iterator[ReadBars]:
    """Bars on ``console`` (stderr, so the tables can be piped) while reading; gone when
    done."""
    columns = (
        TextColumn("{task.description:>8}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bars:
        yield ReadBars(bars)


def print_report(console: Console, report: SalesReport) -> None:
    names = rows.names(report)
    console.print(rows.headline(report), soft_wrap=True, markup=False)
    for line in rows.notes(report):
        console.print(line, soft_wrap=True, markup=False)
    console.print(_funnel(report, names))
    console.print(_rates(report, names))
    for name, cohort in report.cohorts():
        grade_rows = rows.grade_rows(cohort)
        if grade_rows:
            console.print(_grades(name, grade_rows))
    console.print(_counts("Leads entering each stage", rows.stage_rows(report), names))
    console.print(_counts("Leads with each outcome", rows.outcome_rows(report), names))
    breaches = rows.breach_rows(report)
    if breaches:
        console.print(_counts("Follow-up SLA breaches, by stage", breaches, names))
    console.print(_times(report, names))
    skips = rows.skip_note(report)
    if skips is not None:
        console.print(skips, soft_wrap=True, markup=False)
    for outcome in REASONED:
        reasons = rows.reason_rows(report, outcome)
        if reasons:
            title = f"Why {outcome}: the top {rows.TOP_N} reasons ({outcome} outcomes)"
            console.print(_counts(title, reasons, names))


def _table(title: str, first: str, names: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    for name in names:
        table.add_column(escape(name), justify="right")
    return table


def _funnel(report: SalesReport, names: Sequence[str]) -> Table:
    table = _table("Funnel: leads, and conversion from the stage before", "stage", names)
    for stage, cells in rows.funnel_rows(report):
        table.add_row(
            stage,
            *(
                f"{c.leads:,}" + (f"  {rows.percent(c.conversion)}" if c.conversion else "")
                for c in cells
            ),
        )
    return table


def _rates(report: SalesReport, names: Sequence[str]) -> Table:
    table = _table("Rates", "", names)
    for name, rates in rows.rate_rows(report):
        table.add_row(name, *(rows.fraction(r) for r in rates))
    return table


def _grades(name: str, grade_rows: list[rows.GradeRow]) -> Table:
    table = Table(title=f"Conversion by grade at MQL entry: {escape(name)}", title_justify="left")
    for column in ("grade", "MQLs", *rows.grade_steps(), "MQL precision"):
        table.add_column(column, justify="left" if column == "grade" else "right")
    for row in grade_rows:
        table.add_row(
            row.grade,
            f"{row.mqls:,}",
            *(rows.fraction(s) for s in row.steps),
            rows.fraction(row.precision),
        )
    return table


def _counts(title: str, count_rows: list[tuple[str, list[int]]], names: Sequence[str]) -> Table:
    table = _table(title, "", names)
    for name, counts in count_rows:
        table.add_row(escape(name), *(f"{n:,}" for n in counts))
    return table


def _times(report: SalesReport, names: Sequence[str]) -> Table:
    table = _table("Time: median / p90 (how many)", "", names)
    for name, spreads in rows.time_rows(report):
        table.add_row(escape(name), *(rows.median_p90(s) for s in spreads))
    return table
