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
from typing import Final

import plotly.graph_objects as go  # type: ignore[import-untyped]

from streams.core.contract import format_time
from streams.modelpreview.report import Section, write_page
from streams.salesreport import rows
from streams.salesreport.kpis import FUNNEL, REASONED, Cohort, Rate, SalesReport, Spread

HEIGHT = 420
#: Shortest duration drawn on the log axes: a jump through a stage takes no time.
MIN_HOURS = 1 / 3600
#: The time axes' ticks, in hours, with the unit a reader would say: a log axis's own
#: labels are 1, 2, 3 ... 9, 10, 2, 3, where "2" above "10" means 20 hours.
TIME_TICKS: Final = (
    (MIN_HOURS, "≤ 1 s"),  # a jump through a stage: 0 s, drawn here
    (10 / 3600, "10 s"),
    (1 / 60, "1 min"),
    (10 / 60, "10 min"),
    (1.0, "1 h"),
    (3.0, "3 h"),
    (8.0, "8 h"),
    (24.0, "1 d"),
    (72.0, "3 d"),
    (168.0, "1 week"),
    (720.0, "30 d"),
    (2160.0, "90 d"),
    (8760.0, "1 year"),
)
#: Each model version's colour, the same in every figure (plotly's first colours).
MODEL_COLORS: Final = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3")
#: Grades from green (A, the best fit) to red (D): not the model versions' colours,
#: which are the other figures' blue and red.
GRADE_COLORS: Final = {"A": "#1a9850", "B": "#91cf60", "C": "#fdae61", "D": "#d73027"}
#: How to read the time figures.
BOXES = (
    "In the figure, per model version: the box spans the middle half of the leads (p25 "
    "to p75), its line is the median, the whiskers reach p10 and p90. Hover a box for "
    "its numbers."
)
#: What a "-" in a time table means.
NO_TIME = (
    "-: nothing measured. A stay is measured from entering the stage to the lead's next "
    "stage change, so a stage no lead has left yet (disqualified, say) has none; a "
    "milestone needs a lead that made both steps in order."
)


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
    if not any(rows.grade_rows(c) for _, c in _drawn(report)):
        sections.append(("Conversion by grade", _note("No lead became an MQL."), None))
    stage_rows = rows.stage_rows(report)
    times = rows.time_rows(report)  # sorts every duration: once
    stages = len(report.stages)
    entering = _counts_table(stage_rows, names) + _note(
        "The model's stages as it published them: a lead that jumped a stage (warm to "
        "sql at once) did not enter the stage between, unlike in the funnel, where it "
        "passed it."
    )
    sections += [
        ("Leads entering each stage", entering, _bars(report, stage_rows, "leads", "stage")),
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
            _times_table(times[stages:], names, rows.skip_note(report)),
            _boxes(report, times[stages:]),
        ),
    ]
    for outcome in REASONED:
        reasons = rows.reason_rows(report, outcome)
        title = f"Why {outcome}"
        if reasons:
            unit = f"{outcome} outcomes"
            table = _counts_table(reasons, names) + _note(
                f"The top {rows.TOP_N} reasons given, counted in {unit}."
            )
            sections.append((title, table, _bars(report, reasons, unit, "reason")))
        else:
            sections.append((title, _note(f"No {outcome} outcome in the input."), None))
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
    """Each model version's funnel, side by side, each bar with its leads and the
    conversion from the stage before written beside it (inside, plotly shrinks them
    to fit: unreadable on the narrow bars)."""
    stages = [rows.STAGE_NAMES[s] for s in FUNNEL]
    drawn = _drawn(report)
    widest = max((max(c.funnel) for _, c in drawn), default=0) or 1
    figure = go.Figure(
        [
            go.Funnel(
                name=name,
                marker_color=_color(k),
                y=stages,
                x=cohort.funnel,
                text=[
                    f"{n:,}" if i == 0 else f"{n:,} ({rows.percent(cohort.conversion(stage))})"
                    for i, (stage, n) in enumerate(zip(FUNNEL, cohort.funnel, strict=True))
                ],
                texttemplate="%{text}",
                textposition="outside",
                cliponaxis=False,
                connector={"visible": False},  # between two versions' bars: a tangle
                hovertemplate=(
                    "%{y}: %{value:,} leads<br>%{percentPrevious:.1%} of the stage before"
                    "<br>%{percentInitial:.1%} of the leads<extra>%{fullData.name}</extra>"
                ),
            )
            for k, (name, cohort) in enumerate(drawn)
        ]
    )
    figure.update_layout(
        funnelmode="group",
        showlegend=True,
        height=max(HEIGHT, 80 + 26 * len(FUNNEL) * len(drawn)),
        # Bars are centred on 0: room on the right for the widest one's numbers.
        xaxis={"range": [-widest / 2 * 1.02, widest / 2 * 1.4], "visible": False},
        margin={"l": 120, "b": 20},
    )
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
                marker_color=GRADE_COLORS.get(row.grade),
                # 0% is a bar of no height, as is no rate at all: the label tells them apart.
                texttemplate="%{y:.0f}%",
                textposition="outside",
                cliponaxis=False,
                customdata=[rows.fraction(r) for r in (*row.steps, row.precision)],
                hovertemplate="grade " + row.grade + ", %{x}: %{customdata}<extra></extra>",
            )
            for row in grade_rows
        ]
    )
    # The same scale in every version's figure: side by side, the same bar means the
    # same rate.
    figure.update_layout(
        barmode="group",
        # Room above 100 for a full bar's label.
        yaxis={"title": "conversion (%)", "range": [0, 110], "tickvals": [0, 25, 50, 75, 100]},
        showlegend=True,  # one grade alone: still say which
        uniformtext={"minsize": 9, "mode": "show"},
        height=HEIGHT,
    )
    return figure


def _bars(
    report: SalesReport, count_rows: list[tuple[str, list[int]]], unit: str, axis: str
) -> go.Figure:
    """Grouped bars: each name's count per model version drawn."""
    drawn = {name for name, _ in _drawn(report)}
    columns = [i for i, name in enumerate(rows.names(report)) if name in drawn]
    names = rows.names(report)
    figure = go.Figure(
        [
            go.Bar(
                name=names[i],
                x=[n for n, _ in count_rows],
                y=[c[i] for _, c in count_rows],
                marker_color=_color(k),
                hovertemplate=f"%{{x}}: %{{y:,}} {unit}<extra>{html.escape(names[i])}</extra>",
            )
            for k, i in enumerate(columns)
        ]
    )
    figure.update_layout(
        barmode="group", xaxis_title=axis, yaxis_title=unit, height=HEIGHT, showlegend=True
    )
    return figure


def _boxes(report: SalesReport, times: list[tuple[str, list[Spread]]]) -> go.Figure | None:
    """Per model version drawn, a box per row of ``times`` (``rows.time_rows``): p25 to
    p75, the median, whiskers at p10 and p90, on a log axis labelled in seconds to
    weeks. None when nothing was measured. The boxes' own hover would name p10 and p90
    "fences" and give bare hours: an unseen marker at each median says it in words."""
    columns = {name: i for i, name in enumerate(rows.names(report))}
    traces = []
    for k, (name, _) in enumerate(_drawn(report)):
        spreads = [(w, s[columns[name]]) for w, s in times if s[columns[name]].n]
        if not spreads:
            continue
        x = [w for w, _ in spreads]
        traces.append(
            go.Box(
                name=name,
                legendgroup=name,
                offsetgroup=name,
                x=x,
                q1=[_hours(s.p25) for _, s in spreads],
                median=[_hours(s.median) for _, s in spreads],
                q3=[_hours(s.p75) for _, s in spreads],
                lowerfence=[_hours(s.p10) for _, s in spreads],
                upperfence=[_hours(s.p90) for _, s in spreads],
                marker_color=_color(k),
                hoverinfo="skip",
            )
        )
        traces.append(
            go.Scatter(
                name=name,
                legendgroup=name,
                offsetgroup=name,
                showlegend=False,
                x=x,
                y=[_hours(s.median) for _, s in spreads],
                mode="markers",
                marker={"size": 24, "opacity": 0, "color": _color(k)},
                customdata=[_spread_text(s) for _, s in spreads],
                hovertemplate="%{x}<br>%{customdata}<extra>" + html.escape(name) + "</extra>",
            )
        )
    if not traces:
        return None
    figure = go.Figure(traces)
    ticks = TIME_TICKS
    figure.update_layout(
        boxmode="group",
        scattermode="group",
        showlegend=True,
        # Every row's place, measured or not (the table says "-" for the empty ones).
        xaxis={
            "categoryorder": "array",
            "categoryarray": [w for w, _ in times],
            "range": [-0.5, len(times) - 0.5],
        },
        yaxis={
            "type": "log",
            "title": "time (log scale)",
            "tickvals": [hours for hours, _ in ticks],
            "ticktext": [label for _, label in ticks],
        },
        height=HEIGHT,
    )
    drawn = [columns[name] for name, _ in _drawn(report)]
    for what, row in times:
        if not any(row[i].n for i in drawn):
            figure.add_annotation(
                x=what,
                y=0.5,
                yref="paper",
                text="nothing<br>measured",
                showarrow=False,
                font={"color": "#777"},
            )
    return figure


def _color(k: int) -> str:
    """The colour of the ``k``-th model version drawn."""
    return MODEL_COLORS[k % len(MODEL_COLORS)]


def _spread_text(s: Spread) -> str:
    d = rows.duration
    return (
        f"median {d(s.median)} (n={s.n:,})<br>p25 to p75: {d(s.p25)} to {d(s.p75)}"
        f"<br>p10 to p90: {d(s.p10)} to {d(s.p90)}"
    )


def _note(text: str) -> str:
    """A note under a table (``modelpreview.report``'s style)."""
    return f'<p class="note">{html.escape(text)}</p>'


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
        [
            stage,
            *(
                f"{c.leads:,}" + (f" ({rows.percent(c.conversion)})" if c.conversion else "")
                for c in cells
            ),
        ]
        for stage, cells in rows.funnel_rows(report)
    ]
    return _table(["stage", *names], body) + _note(
        "Leads that reached each stage and every stage before it; in brackets, the "
        "share of the stage before that went on to it."
    )


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


def _times_table(
    times: list[tuple[str, list[Spread]]], names: list[str], note: str | None = None
) -> str:
    body = [[n, *(rows.median_p90(s) for s in spreads)] for n, spreads in times]
    table = _table(["median / p90 (how many)", *names], body)
    notes = [note] if note else []
    notes.append(BOXES)
    if any(not s.n for _, spreads in times for s in spreads):
        notes.append(NO_TIME)
    return table + "".join(_note(n) for n in notes)
