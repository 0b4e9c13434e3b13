"""The report as one self-contained HTML file: plotly figures beside plain tables.

plotly.js is inlined once, with the first figure, so the file opens offline and loads
nothing from anywhere (as the model preview's report, whose style it shares). Model
versions are drawn side by side; durations as boxes of their p10, p25, median, p75
and p90, so a million stays draw as a few numbers.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go  # type: ignore[import-untyped]

from streams.core.contract import format_time
from streams.modelpreview.report import Section, write_page
from streams.salesreport import rows
from streams.salesreport.kpis import FUNNEL, REASONED, Cohort, Rate, SalesReport, Spread

HEIGHT = 420
#: Shortest duration drawn on the log axes: a jump through a stage takes no time.
MIN_HOURS = 1 / 3600


def write_html(path: Path, report: SalesReport) -> None:
    """Write the report to ``path`` (replaced if it exists)."""
    write_page(path, "Sales report", _header(report), _sections(report))


def _sections(report: SalesReport) -> list[Section]:
    names = rows.names(report)
    sections: list[Section] = [
        ("Funnel", _funnel_table(report, names), _funnel(report)),
        ("Rates", _rates_table(report, names), None),
    ]
    for name, cohort in _drawn(report):
        grade_rows = rows.grade_rows(cohort)
        if grade_rows:
            title = f"Conversion by grade: {name}"
            sections.append((title, _grade_table(grade_rows), _grades(grade_rows)))
    stage_rows = rows.stage_rows(report)
    times = rows.time_rows(report)  # sorts every duration: once
    stages = len(report.stages)
    sections += [
        ("Leads entering each stage", _counts_table(stage_rows, names), _bars(report, stage_rows)),
        ("Leads with each outcome", _counts_table(rows.outcome_rows(report), names), None),
    ]
    breaches = rows.breach_rows(report)
    if breaches:
        title = "Follow-up SLA breaches, by stage"
        sections.append((title, _counts_table(breaches, names), None))
    sections += [
        ("Time in each stage", _times_table(times[:stages], names), _boxes(report, times[:stages])),
        (
            "Time between milestones",
            _times_table(times[stages:], names),
            _boxes(report, times[stages:]),
        ),
    ]
    for outcome in REASONED:
        reasons = rows.reason_rows(report, outcome)
        if reasons:
            title = f"Why {outcome}"
            sections.append((title, _counts_table(reasons, names), _bars(report, reasons)))
    return sections


def _drawn(report: SalesReport) -> list[tuple[str, Cohort]]:
    """The cohorts figures draw: each model version (side by side), else all."""
    return list(report.models.items()) or [("all models", report.overall)]


def _header(report: SalesReport) -> str:
    lines = [rows.headline(report), *rows.notes(report)]
    lines.append(f"report written {format_time(time.time())}")
    return "<p>" + "<br>".join(html.escape(line) for line in lines) + "</p>"


# ----------------------------------------------------------------------- figures


def _funnel(report: SalesReport) -> go.Figure:
    stages = [rows.STAGE_NAMES[s] for s in FUNNEL]
    figure = go.Figure(
        [
            go.Funnel(name=name, y=stages, x=cohort.funnel, textinfo="value+percent previous")
            for name, cohort in _drawn(report)
        ]
    )
    figure.update_layout(funnelmode="group", height=HEIGHT)
    return figure


def _grades(grade_rows: list[rows.GradeRow]) -> go.Figure:
    """Each step's conversion, and MQL precision, a bar per grade."""
    steps = [*rows.grade_steps(), "MQL → opportunity (precision)"]
    figure = go.Figure(
        [
            go.Bar(
                name=f"grade {row.grade} ({row.mqls:,} MQLs)",
                x=steps,
                y=[_percent(r) for r in (*row.steps, row.precision)],
            )
            for row in grade_rows
        ]
    )
    figure.update_layout(barmode="group", yaxis_title="conversion (%)", height=HEIGHT)
    return figure


def _bars(report: SalesReport, count_rows: list[tuple[str, list[int]]]) -> go.Figure:
    """Grouped bars: each name's count per model version drawn."""
    drawn = {name for name, _ in _drawn(report)}
    columns = [i for i, name in enumerate(rows.names(report)) if name in drawn]
    names = rows.names(report)
    figure = go.Figure(
        [
            go.Bar(name=names[i], x=[n for n, _ in count_rows], y=[c[i] for _, c in count_rows])
            for i in columns
        ]
    )
    figure.update_layout(barmode="group", yaxis_title="leads", height=HEIGHT)
    return figure


def _boxes(report: SalesReport, times: list[tuple[str, list[Spread]]]) -> go.Figure:
    """Per model version drawn, a box per row of ``times`` (``rows.time_rows``): p25 to
    p75, the median, whiskers at p10 and p90 (hours, log axis)."""
    columns = {name: i for i, name in enumerate(rows.names(report))}
    traces = []
    for name, _ in _drawn(report):
        spreads = [(w, s[columns[name]]) for w, s in times if s[columns[name]].n]
        traces.append(
            go.Box(
                name=name,
                x=[w for w, _ in spreads],
                q1=[_hours(s.p25) for _, s in spreads],
                median=[_hours(s.median) for _, s in spreads],
                q3=[_hours(s.p75) for _, s in spreads],
                lowerfence=[_hours(s.p10) for _, s in spreads],
                upperfence=[_hours(s.p90) for _, s in spreads],
            )
        )
    figure = go.Figure(traces)
    figure.update_layout(
        boxmode="group", yaxis_type="log", yaxis_title="hours (p10 to p90)", height=HEIGHT
    )
    return figure


def _hours(seconds: float) -> float:
    return max(seconds / 3600, MIN_HOURS)


def _percent(rate: Rate) -> float | None:
    return None if rate.value is None else round(rate.value * 100, 2)


# ------------------------------------------------------------------------ tables


def _table(headers: Sequence[str], body_rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in body_rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _funnel_table(report: SalesReport, names: list[str]) -> str:
    body = [
        [stage, *(f"{c.leads:,} ({rows.percent(c.conversion)})" for c in cells)]
        for stage, cells in rows.funnel_rows(report)
    ]
    return _table(["stage", *names], body)


def _rates_table(report: SalesReport, names: list[str]) -> str:
    body = [[name, *(rows.fraction(r) for r in rates)] for name, rates in rows.rate_rows(report)]
    return _table(["", *names], body)


def _grade_table(grade_rows: list[rows.GradeRow]) -> str:
    body = [
        [
            row.grade,
            f"{row.mqls:,}",
            *(rows.fraction(s) for s in row.steps),
            rows.fraction(row.precision),
        ]
        for row in grade_rows
    ]
    return _table(["grade", "MQLs", *rows.grade_steps(), "MQL precision"], body)


def _counts_table(count_rows: list[tuple[str, list[int]]], names: list[str]) -> str:
    return _table(["", *names], [[n, *(f"{c:,}" for c in counts)] for n, counts in count_rows])


def _times_table(times: list[tuple[str, list[Spread]]], names: list[str]) -> str:
    body = [[n, *(rows.median_p90(s) for s in spreads)] for n, spreads in times]
    return _table(["median / p90 (how many)", *names], body)
