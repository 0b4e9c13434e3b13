"""streams.modeltest: a model owner's example leads run against a model, with a
readable report of what differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring import load_default_model, load_model_text
from streams.modeltest import FixtureError, format_results, load_fixtures, run_file, run_fixtures

M = load_default_model()

#: The issue's journeys, as a model owner would write them.
FIXTURES = """
start = "2026-11-02T09:00:00Z"

[[leads]]
name = "an email scanner leaves a B-grade manager cold"
profile = { seniority = "manager", department = "Marketing", company_size = 800, industry = "SaaS" }
events = [
  { at = "60s", source = "email", action = "open", campaign_id = "n1" },
  { at = "60s", source = "email", action = "click", campaign_id = "n1", link = "/pricing" },
  { at = "60.4s", source = "email", action = "click", campaign_id = "n1", link = "/demo" },
  { at = "60.8s", source = "email", action = "click", campaign_id = "n1", link = "/blog" },
]
[leads.expect]
stage = "cold"
grade = "B"
stages = ["cold"]
score = { max = 19.99 }
bots_filtered = 3

[[leads]]
name = "a crawler's user agent counts nothing"
events = [
  { at = "0s", source = "web", url = "https://x/demo", user_agent = "Googlebot/2.1" },
]
expect = { score = 0, bots_filtered = 1 }

[[leads]]
name = "a real person reaches MQL"
profile = { job_title = "VP, Marketing", company_size = 1200, annual_revenue = 50000000 }
events = [
  { at = "1h", source = "web", url = "https://x/pricing", duration_seconds = 95 },
  { at = "1d", source = "webinar", action = "attended", webinar_id = "r", minutes_attended = 48 },
  { at = "2d", source = "web", url = "https://x/demo", duration_seconds = 40 },
]
[leads.expect]
stage = "mql"
grade = "B"
stages = ["cold", "warm", "mql"]
reasons = ["fit-vp", "web-demo"]

[[leads]]
name = "and cools down after 60 days without news"
profile = { job_title = "VP, Marketing", company_size = 1200 }
events = [{ at = "0s", source = "web", url = "https://x/demo", duration_seconds = 40 }]
check_at = "60d"
expect = { stage = "cold", stages = ["cold", "warm", "cold"], disqualifier = false }
"""


def test_the_issues_journeys_pass_under_the_default_model() -> None:
    results = run_fixtures(load_fixtures(FIXTURES), M)
    assert [(r.name, r.problems) for r in results if not r.passed] == []
    report = format_results(results)
    assert report.splitlines()[0] == "ok    an email scanner leaves a B-grade manager cold"
    assert report.splitlines()[-1] == "4 passed, 0 failed"


def test_a_failing_lead_says_what_differs_and_why() -> None:
    # The same journeys against a model that neither filters bots nor caps anything.
    text = (Path(__file__).parents[1] / "scoring" / "default_model.toml").read_text()
    lax = load_model_text(text.replace("enabled = true", "enabled = false"))
    results = run_fixtures(load_fixtures(FIXTURES), lax)
    scanner = results[0]
    assert not scanner.passed
    assert "stage: expected 'cold', got 'warm'" in scanner.problems
    assert "bots_filtered: expected 3, got 0" in scanner.problems
    assert "stages: expected cold, got cold -> warm" in scanner.problems
    assert "score: expected at most 19.99, got 30.00" in scanner.problems
    report = format_results(results)
    assert "FAIL  an email scanner leaves a B-grade manager cold" in report
    assert "    lead: warm, score " in report  # then why: the lead, its reasons...
    assert "Clicked a link in an email +8.00" in report  # ...and its history
    assert report.splitlines()[-1] == "2 passed, 2 failed"


def test_events_are_checked_by_their_topics_schema() -> None:
    bad = FIXTURES.replace('action = "open"', 'action = "forwarded"')
    [scanner, *_] = run_fixtures(load_fixtures(bad), M)
    assert any(
        p.startswith("refused by the schema: event 1: unknown_event_type") for p in scanner.problems
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x = ", "not valid TOML"),
        ("start = 0", "leads: missing"),
        (
            "[[leads]]\nexpect = { stage = 'cold' }\nevents = [{ at = '1x', source = 'web' }]",
            "leads[0].events[0].at:",
        ),
        (
            "[[leads]]\nevents = [{ source = 'sms' }]\nexpect = { stage = 'cold' }",
            "leads[0].events[0]: needs source",
        ),
        ("[[leads]]\nevents = []", "leads[0].expect: missing"),
        ("[[leads]]\nexpect = { stag = 'cold' }\nevents = []", "leads[0].expect.stag: unknown key"),
    ],
)
def test_an_invalid_file_lists_its_problems(text: str, problem: str) -> None:
    with pytest.raises(FixtureError) as exc:
        load_fixtures(text, "f.toml")
    assert any(problem in p for p in exc.value.problems), exc.value.problems


def test_run_file_gives_the_exit_status(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(FIXTURES)
    assert run_file(good, M)[1] == 0
    failing = tmp_path / "failing.toml"
    failing.write_text(
        FIXTURES.replace("expect = { score = 0, bots_filtered = 1 }", "expect = { score = 5 }")
    )
    report, status = run_file(failing, M)
    assert status == 1 and "score: expected 5, got 0.00" in report
    assert run_file(tmp_path / "missing.toml", M)[1] == 2
    broken = tmp_path / "broken.toml"
    broken.write_text("leads = 3")
    report, status = run_file(broken, M)
    assert status == 2
    assert report == f"{broken}: 1 problem(s) in the fixtures:\n  - leads: missing " + (
        "(an array of tables [[leads]])"
    )


def test_the_documented_example_passes_under_the_default_model() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "scoring-model.md").read_text()
    example = doc.split("## Testing a model: example leads")[1].split("```toml")[1]
    results = run_fixtures(load_fixtures(example.split("```")[0]), M)
    assert [r.problems for r in results] == [[], []]
