"""The preview's HTML report: one self-contained file with interactive plotly figures.

plotly.js is inlined once, with the first figure, so the file opens offline and
loads nothing from anywhere; the tables beside the figures are plain HTML.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go  # type: ignore[import-untyped]
import plotly.io as pio  # type: ignore[import-untyped]

from streams.core.contract import format_time
from streams.modelpreview.summary import (
    Labels,
    Row,
    day_rows,
    grade_rows,
    headline,
    histogram,
    input_rows,
    move_rows,
    quantile_rows,
    stage_rows,
)
from streams.modelpreview.tally import PreviewResult

#: A row of :func:`move_rows`: stage under the current model, under the candidate,
#: leads, sample lead ids.
Move = tuple[str, str, int, list[str]]

CURRENT_COLOR = "#7f8c9a"
CANDIDATE_COLOR = "#1f77b4"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, th.text, td.text { text-align: left; }
td.ids { text-align: left; font-family: monospace; font-size: 0.9em; }
td.sub { padding-left: 2em; }
p.note { color: #555; font-size: 0.9em; max-width: 60em; }
.figure { margin-bottom: 2em; }
"""
#: What every figure shares: room for its axis titles but no empty band above it, and
#: the legend in a row above the plot, where long names (a model's path) take no
#: width from it. A figure's own layout wins over these.
TEMPLATE = go.layout.Template(pio.templates["plotly"])
TEMPLATE.layout.update(
    font={"size": 13},
    margin={"t": 40, "r": 20, "b": 60, "l": 70},
    legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
)
#: The figures' tool bar, without the plotly logo.
CONFIG = {"displaylogo": False}


def write_report(path: Path, result: PreviewResult, labels: Labels, order: Sequence[str]) -> None:
    """Write the report to ``path`` (replaced if it exists)."""
    stages, grades, moves = stage_rows(result, order), grade_rows(result), move_rows(result, order)
    sections = [
        ("Input", _counts_table(input_rows(result)), None),
        # The tables too: a few MQLs beside two thousand cold leads are a bar too low
        # to read, and they are the ones that matter.
        ("Leads per stage", _counts_table(stages), _paired(stages, "stage")),
        ("Leads per grade", _counts_table(grades), _paired(grades, "grade")),
        ("Leads that would change stage", _moves_table(moves), _moves(moves) if moves else None),
        ("Stage changes per day (UTC)", None, _paired(day_rows(result), "day")),
        ("Scores at the end", _scores_table(result), _histogram(result)),
    ]
    write_page(path, "Model preview", _header(result, labels), sections)


#: A report section: its title, an HTML table or None, a figure or None.
Section = tuple[str, str | None, go.Figure | None]


def write_page(path: Path, title: str, header: str, sections: Sequence[Section]) -> None:
    """One self-contained HTML file: ``header`` (HTML), then each section's table
    and figure. Shared by the model preview and ``leadstream report``."""
    body = [f"<h1>{html.escape(title)}</h1>{header}"]
    inline_js = True  # plotly.js once, with the first figure
    for name, table, figure in sections:
        body.append(f"<h2>{html.escape(name)}</h2>")
        if table:
            body.append(table)
        if figure is not None:
            body.append(_div(figure, name, inline_js))
            inline_js = False
    path.write_text(_page(title, "\n".join(body)), encoding="utf-8")


def _div(figure: go.Figure, title: str, inline_js: bool) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in title.lower())
    figure.update_layout(template=TEMPLATE)
    html_div: str = pio.to_html(
        figure, full_html=False, include_plotlyjs=inline_js, div_id=f"fig-{slug}", config=CONFIG
    )
    return f'<div class="figure">{html_div}</div>'


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>leadstream: {html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def _header(result: PreviewResult, labels: Labels) -> str:
    return (
        f"<p><b>current</b>: {html.escape(labels.current)}<br>"
        f"<b>candidate</b>: {html.escape(labels.candidate)}<br>"
        f"{html.escape(headline(result))}<br>"
        f"report written {html.escape(format_time(time.time()))}</p>"
    )


def _paired(rows: list[Row], axis: str) -> go.Figure:
    """Grouped bars: each name's count under the current model and the candidate."""
    names = [r[0] for r in rows]
    figure = go.Figure(
        [
            go.Bar(name="current", x=names, y=[r[1] for r in rows], marker_color=CURRENT_COLOR),
            go.Bar(name="candidate", x=names, y=[r[2] for r in rows], marker_color=CANDIDATE_COLOR),
        ]
    )
    figure.update_layout(barmode="group", xaxis_title=axis, yaxis_title="leads", height=380)
    if axis == "day":
        figure.update_layout(yaxis_title="stage changes", xaxis_type="category")
    return figure


def _moves(rows: list[Move]) -> go.Figure:
    figure = go.Figure(
        go.Bar(
            x=[f"{old} → {new}" for old, new, _, _ in rows],
            y=[n for _, _, n, _ in rows],
            marker_color=CANDIDATE_COLOR,
            # The count on each bar: a move of 1 lead beside one of 200 is no bar at all.
            text=[f"{n:,}" for _, _, n, _ in rows],
            textposition="outside",
            cliponaxis=False,
        )
    )
    figure.update_layout(xaxis_title="stage: current → candidate", yaxis_title="leads", height=380)
    return figure


def _histogram(result: PreviewResult) -> go.Figure:
    """Both models' score distributions over the same bins: the current model's as
    bars, the candidate's as a line over them (two overlaid bars of the same height
    blend into a third colour that neither legend entry shows)."""
    hist = histogram(result.current, result.candidate)
    centres = [(a + b) / 2 for a, b in zip(hist.edges, hist.edges[1:], strict=False)]
    width = hist.edges[1] - hist.edges[0]
    figure = go.Figure(
        [
            go.Bar(
                name="current",
                x=centres,
                y=hist.current,
                width=width,
                marker_color=CURRENT_COLOR,
                opacity=0.6,
            ),
            go.Scatter(
                name="candidate",
                x=hist.edges,
                y=[*hist.candidate, hist.candidate[-1]],  # the last step drawn to its edge
                mode="lines",
                line={"shape": "hv", "color": CANDIDATE_COLOR, "width": 2},
                hovertemplate="%{y:,} leads<extra>candidate</extra>",
            ),
        ]
    )
    axis = "score at the end (bins of the same width)"
    if hist.clipped_at is not None:
        axis += f"; the last bar: {hist.clipped_at:,.2f} and above"
    figure.update_layout(xaxis_title=axis, yaxis_title="leads", height=380)
    return figure


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: object) -> str:
    if isinstance(value, str) and value.startswith(" "):  # a row under the one above
        return f'<td class="sub">{html.escape(value.strip())}</td>'
    return f"<td>{_cell(value)}</td>"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _counts_table(rows: Sequence[Row]) -> str:
    """Counts under each model, and the change (blank where there is none), as the
    console prints them."""
    return _table(
        ("", "current", "candidate", "change"),
        [(name, a, b, f"{b - a:+,}" if b != a else "") for name, a, b in rows],
    )


def _moves_table(rows: list[Move]) -> str:
    if not rows:
        return "<p>No lead would change stage.</p>"
    lines = "".join(
        f'<tr><td>{html.escape(old)}</td><td class="text">{html.escape(new)}</td><td>{n:,}</td>'
        f'<td class="ids">{html.escape(", ".join(sample))}</td></tr>'
        for old, new, n, sample in rows
    )
    head = (
        '<tr><th>current</th><th class="text">candidate</th><th>leads</th>'
        '<th class="text">for example</th></tr>'
    )
    return f"<table><thead>{head}</thead><tbody>{lines}</tbody></table>"


def _scores_table(result: PreviewResult) -> str:
    return _table(("", "current", "candidate"), quantile_rows(result))
