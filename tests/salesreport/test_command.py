"""``leadstream report`` as a marketer runs it: the tables, the HTML report, and one
clear line for each mistake."""

from __future__ import annotations

import argparse
import importlib.util
import io
import re
from pathlib import Path

import pytest

from streams.salesreport import command, options
from tests.modelpreview.test_command import assert_self_contained
from tests.salesreport.histories import HOUR, T0, change, known, write_export
from tests.salesreport.test_kpis import small


def report(*argv: str, err: io.StringIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leadstream report")
    options.add_arguments(parser)
    return command.run(parser.parse_args(argv), err)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "history.jsonl", known() + small())


def cells(out: str, row: str) -> list[str]:
    """The cells of the table row that starts with ``row``."""
    found = re.search(rf"^│ {re.escape(row)} +│(.*)│$", out, re.M)
    assert found is not None, (row, out)
    return [c.strip() for c in found.group(1).split("│")]


def test_the_tables_show_each_model_version_beside_all(
    export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # rows on one line each, to read them back
    assert report("--from-export", str(export)) == 0
    out = capsys.readouterr().out
    assert "409 stage changes of 260 leads, 86 outcomes; 2 model versions" in out
    assert cells(out, "lead") == ["260", "250", "10"]
    assert cells(out, "MQL") == ["105  40.4%", "100  40.0%", "5  50.0%"]
    assert cells(out, "won") == ["5  45.5%", "4  40.0%", "1  100.0%"]
    assert cells(out, "MQL precision") == ["10.5% (11/105)", "10.0% (10/100)", "20.0% (1/5)"]
    assert cells(out, "win rate (of closed deals)")[1] == "44.4% (4/9)"
    assert cells(out, "MQL → SQL")[1] == "20.5 h / 1.5 d (n=40)"
    assert cells(out, "bad timing") == ["10", "10", "0"]
    by_grade = out.index("Conversion by grade at MQL entry: leadstream-default v1.0.0")
    assert cells(out[by_grade:], "A")[:3] == ["30", "66.7% (20/30)", "100.0% (20/20)"]
    assert cells(out[by_grade:], "B")[3] == "-"  # none accepted: no rate


def test_the_html_report_is_self_contained_and_draws_each_figure(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html_path = tmp_path / "report.html"
    assert report("--from-export", str(export), "--html", str(html_path)) == 0
    assert f"report: {html_path}" in capsys.readouterr().out
    html = html_path.read_text()
    divs = re.findall(r'<div id="(fig-[^"]+)"', html)
    assert divs == [
        "fig-funnel",
        "fig-conversion-by-grade--leadstream-default-v1-0-0",
        "fig-conversion-by-grade--leadstream-default-v2-0-0",
        "fig-leads-entering-each-stage",
        "fig-time-in-each-stage",
        "fig-time-between-milestones",
        "fig-why-rejected",
        "fig-why-lost",
    ]
    assert html.count("Plotly.newPlot(") == len(divs)
    assert_self_contained(html)
    assert "<td>44.4% (4/9)</td>" in html
    assert "<td>260</td>" in html  # the first stage: no conversion from one before it
    # Time axes in the units a reader says, not a log axis's bare 1, 2, ... 10, 2, 3.
    assert '"10 s","1 min","10 min","1 h","3 h","8 h","1 d"' in html
    assert '"title":{"text":"rejected outcomes"}' in html  # reasons count outcomes


def test_the_report_says_when_sqls_jumped_past_mql_and_when_there_are_no_outcomes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    jumps = [
        record
        for i in range(3)
        for record in (
            change(f"j-{i}", 1, "warm", T0),
            change(f"j-{i}", 2, "sql", T0 + HOUR, from_stage="warm"),
        )
    ]
    path = write_export(tmp_path / "h.jsonl", [c for c in known() if c[0] == "qualified"] + jumps)
    html_path = tmp_path / "r.html"
    assert report("--from-export", str(path), "--html", str(html_path)) == 0
    out = capsys.readouterr().out
    html = html_path.read_text()
    skips = "MQL → SQL counts 3 leads that jumped straight into SQL (warm to sql at once) as 0 s"
    no_outcomes = "no outcomes in the input (no lead.outcomes, or nothing published to it yet)"
    for text in (skips, no_outcomes):
        assert text in out and text in html
    assert cells(out, "MQL → SQL") == ["19.0 h / 1.5 d (n=43)"]  # 1 to 40 h, and three 0 s
    # No stay in sql has ended, and no milestone after SQL without outcomes: each an empty
    # place on its axis, said so.
    assert html.count('"text":"nothing') == 1 + 5
    assert '<p class="note">No rejected outcome in the input.</p>' in html


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from-export", "nowhere.jsonl"], "nowhere.jsonl: no such export file"),
        (["--from-export", "{export}", "--save-export", "x.jsonl"], "--save-export needs"),
        (["--from-export", "{export}", "--html", "/no/such/dir/r.html"], "/no/such/dir: no such"),
    ],
)
def test_a_mistake_is_one_line_and_exit_2(
    argv: list[str], message: str, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = io.StringIO()
    assert report(*(a.format(export=export) for a in argv), err=err) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("leadstream report: ") and message in lines[0]
    assert capsys.readouterr().out == ""


def test_a_malformed_line_stops_it_with_its_place(export: Path) -> None:
    with export.open("ab") as f:
        f.write(b"not json\n")
    err = io.StringIO()
    assert report("--from-export", str(export), err=err) == 2
    assert err.getvalue() == f"leadstream report: {export}:496: not a JSON line\n"


def test_a_bad_setting_stops_reading_the_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSTREAM_PARTITIONS", "many")
    err = io.StringIO()
    assert report("--from-topics", err=err) == 2
    assert err.getvalue().startswith("leadstream report: configuration error: ")


def test_the_extra_missing_is_said_with_how_to_install_it(
    export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "plotly" else real(name)
    )
    err = io.StringIO()
    assert report("--from-export", str(export), err=err) == 2
    assert err.getvalue() == "leadstream report: needs plotly: pip install 'leadstream[preview]'\n"


def test_sla_breaches_get_a_table_of_their_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    breach = change("a-000", 4, "sql", T0 + 30 * HOUR, from_stage="sql", cause="sla_breach")
    path = write_export(tmp_path / "h.jsonl", [*known(), breach])
    html_path = tmp_path / "r.html"
    assert report("--from-export", str(path), "--html", str(html_path)) == 0
    out = capsys.readouterr().out
    assert "390 stage changes of 250 leads, 80 outcomes; 1 model version; 1 SLA breach; " in out
    tables = out.index("Follow-up SLA breaches, by stage")
    assert cells(out[tables:], "sql") == ["1"]
    assert "<h2>Follow-up SLA breaches, by stage</h2>" in html_path.read_text()
