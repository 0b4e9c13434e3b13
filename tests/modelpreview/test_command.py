"""``leadstream model preview`` and ``model export`` as a model owner runs them: the
table, the HTML report, and one clear line for each mistake."""

from __future__ import annotations

import importlib.util
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from streams.cli import main
from tests.modelpreview.exports import workload, write

DEFAULT = resources.files("scoring").joinpath("default_model.toml").read_text("utf-8")
START = 1_764_547_200.0


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write(
        tmp_path / "input.jsonl",
        workload(
            n_events=1500, n_leads=150, seed=8, start=START, span_s=20 * 86400.0, trouble_every=30
        ),
    )


@pytest.fixture
def edited(tmp_path: Path) -> Path:
    path = tmp_path / "edited.toml"
    path.write_text(DEFAULT.replace("entry = { score = 20 }", "entry = { score = 15 }"))
    return path


def test_a_preview_prints_the_tables_and_writes_a_self_contained_report(
    tmp_path: Path, export: Path, edited: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.html"
    args = ["--from-export", str(export), "--report", str(report), "--jobs", "1"]
    assert main(["model", "preview", str(edited), *args]) == 0
    out = capsys.readouterr().out
    for title in ("Input", "Leads per stage", "Leads per grade", "Leads that would change"):
        assert title in out
    assert re.search(r"│ cold +│ +[\d,]+ │ +[\d,]+ │ +-[\d,]+ │", out)  # fewer cold leads
    assert re.search(r"│ cold +│ warm +│ +[\d,]+ │ lead-\d+", out)
    assert "dead letter: invalid_json" in out

    html = report.read_text()
    for div in ("leads-per-stage", "leads-per-grade", "leads-that-would-change-stage"):
        assert f'id="fig-{div}"' in html
    assert 'id="fig-scores-at-the-end"' in html
    assert 'id="fig-stage-changes-per-day--utc-"' in html
    assert html.count("Plotly.newPlot(") == 5
    assert_self_contained(html)
    assert str(edited) in html
    # The counts under the bars, as the console has them: a few MQLs beside thousands
    # of cold leads are no bar at all.
    stages = html[html.index("<h2>Leads per stage</h2>") :]
    assert re.match(
        r"<h2>Leads per stage</h2>\s*<table><thead><tr><th></th><th>current</th>", stages
    )
    assert re.search(
        r"<tr><td>cold</td><td>[\d,]+</td><td>[\d,]+</td><td>-[\d,]+</td></tr>", stages
    )
    assert '<td class="sub">caused by event</td>' in html  # under "stage changes published"


def assert_self_contained(html: str) -> None:
    """plotly.js inlined once, and nothing fetched: the report opens offline (a page
    that loads plotly from a CDN draws nothing where the network is closed)."""
    assert html.count("plotly.js v") == 1
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"<link[^>]*\bhref=", html)
    assert not re.search(r"<(img|iframe)[^>]*\bsrc=[\"']?https?:", html)


def test_the_model_in_use_previewed_against_itself_moves_no_lead(
    export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = export.parent / "in-use.toml"
    model.write_text(DEFAULT)
    monkeypatch.setenv("LEADSTREAM_MODEL", str(model))  # the default --current
    report = export.parent / "report.html"
    argv = ["model", "preview", str(model), "--from-export", str(export), "--report", str(report)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "; 0 would change stage" in out
    assert f"current   leadstream-default v2.0.0 ({model})" in out
    html = report.read_text()
    assert "<p>No lead would change stage.</p>" in html
    assert 'id="fig-leads-that-would-change-stage"' not in html  # no empty axes under it


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_an_invalid_model_exits_1_in_one_line(
    tmp_path: Path, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT.replace("entry = { score = 50,", "entry = { score = 30,"))
    assert main(["model", "preview", str(bad), "--from-export", str(export)]) == 1
    err = one_line_error(capsys)
    assert err.startswith(f"leadstream model preview: {bad}: invalid scoring model: stages")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from-export", "missing.jsonl"], "missing.jsonl: no such export file"),
        (["--from-export", "{export}", "--now", "yesterday"], "--now 'yesterday': use an RFC"),
        (["--from-export", "{export}", "--current", "nope.toml"], "nope.toml: cannot read"),
        (["--from-export", "{bad_line}"], "bad.jsonl:2: not a JSON line"),
        (
            ["--from-export", "{export}", "--now", "2025-12-02T00:00:00Z"],
            "--now 2025-12-02T00:00:00.000Z is before the newest event in the input (2025-12-2",
        ),
    ],
)
def test_other_mistakes_exit_2_in_one_line(
    tmp_path: Path,
    export: Path,
    edited: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    says: str,
) -> None:
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_bytes(export.read_bytes().split(b"\n")[0] + b"\nnot json\n")
    paths = {"export": export, "bad_line": bad_line}
    argv = [a.format(**paths) for a in args]
    assert main(["model", "preview", str(edited), *argv]) == 2
    assert says in one_line_error(capsys)


def test_without_the_preview_extra_it_says_how_to_install_it(
    export: Path, edited: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "plotly" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["model", "preview", str(edited), "--from-export", str(export)]) == 2
    assert "pip install 'leadstream[preview]'" in one_line_error(capsys)
    assert main(["model", "export", "--out", str(export)]) == 2
    assert "pip install 'leadstream[preview]'" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--topics", "web.visits", "orders"], "not an input topic: orders"),
        (["--out", "/nonexistent-dir/x.jsonl"], "/nonexistent-dir: no such directory"),
    ],
)
def test_an_export_that_cannot_be_made_says_why_before_reaching_kafka(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    out = ["--out", str(tmp_path / "x.jsonl")] if "--out" not in args else []
    assert main(["model", "export", *out, *args]) == 2
    assert says in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []  # no file left behind
