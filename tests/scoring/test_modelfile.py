"""Loading a model file: the TOML format read, validated and compiled (scoring.modelfile)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring import ModelError, load_default_model, load_model, load_model_text
from scoring.model import GRADES

from .models import TEST_MODEL


def test_default_model_loads_with_the_documented_shape() -> None:
    m = load_default_model()
    assert (m.id, m.version) == ("leadstream-default", "2.0.0")
    assert [s.name for s in m.stages] == ["cold", "warm", "mql", "sql"]
    assert [(s.entry_score, s.exit_score) for s in m.stages[1:]] == [(20, 10), (50, 40), (80, 65)]
    assert m.half_lives == {
        "web": 30 * 86400,
        "email": 14 * 86400,
        "webinar": 60 * 86400,
        "negative": 30 * 86400,
        "profile": None,
        "sales": 90 * 86400,
    }
    assert [s.name for s in m.stages if s.sales] == ["sql"]
    assert m.stages[3].sla == 4 * 3600
    assert m.sales_stages == {"sql", "accepted", "opportunity", "customer"}
    assert {o: (mv.stage, mv.reset) for o, mv in m.outcome_moves.items()} == {
        "accepted": ("accepted", 1.0),
        "opportunity_created": ("opportunity", 1.0),
        "won": ("customer", 1.0),
        "rejected": ("warm", 0.4),
        "recycled": ("warm", 0.4),
        "lost": ("warm", 0.25),
    }
    assert {d.id: d.stage for d in m.disqualifiers} == {
        "spam-report": "disqualified",
        "competitor": "disqualified",
        "student": "disqualified",
    }
    assert m.max_lateness == 30 * 86400 and m.dedup_max_ids == 256 and m.reasons_top_n == 5
    assert m.history_size == 50
    assert m.category_caps == {"web": 60, "email": 30, "webinar": 50, "negative": 50}
    assert m.total_cap == 100 and m.bots.enabled and m.bots.known_user_agents
    assert m.rule_by_id["web-careers"].points < 0
    assert m.rule_by_id["email-unsubscribe"].sets == {"unsubscribed": True}  # type: ignore[union-attr]
    assert "ScoringModel('leadstream-default'" in repr(m)


def test_load_model_from_a_path(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text(TEST_MODEL)
    assert load_model(p).id == "test"
    assert load_model(str(p)).source_name == str(p)


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read the file"):
        load_model(tmp_path / "nope.toml")


def test_invalid_toml_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="not valid TOML") as exc:
        load_model_text("id = ", "bad.toml")
    assert str(exc.value).startswith("bad.toml: 1 problem in the scoring model")


def _broken(old: str, new: str) -> str:
    assert old in TEST_MODEL, old
    return TEST_MODEL.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'cap = { count = 2, per = "10s" }',
            'cap = { count = 2, per = "1x" }',
            'rules[0].cap.per: "1x" is not a duration (use 30d, 12h, 15m, 90s)',
        ),
        (
            'cap = { count = 2, per = "10s" }',
            'cap = { count = 0, per = "10s" }',
            "rules[0].cap.count: 0 is not an integer >= 1",
        ),
        ('cap = { count = 2, per = "10s" }', "cap = { count = 2 }", "rules[0].cap.per: missing"),
        (
            'cap = { count = 2, per = "10s" }',
            'cap = { count = 2, per = "10s", every = 1 }',
            "rules[0].cap.every: unknown key",
        ),
        ('id = "w-pricing"', 'id = "w-pricing"\ncolour = "red"', "rules[0].colour: unknown key"),
        ('id = "w-blog"', 'id = "w-pricing"', "rules[1].id: duplicate rule id 'w-pricing'"),
        ('id = "f-size"', 'id = "w-blog"', "fit.rules[1].id: duplicate rule id 'w-blog'"),
        (
            "points = 5",
            'points = 5\ncategory = "social"',
            "rules[1].category: unknown category 'social'",
        ),
        (
            'source = "web"\npoints = 5',
            'source = "tv"\npoints = 5',
            "rules[1].source: 'tv' is not one of",
        ),
        ("points = 5", 'points = "five"', "rules[1].points: 'five' is not a finite number"),
        (
            'entry = { score = 50, grade = "B" }',
            'entry = { score = 50, grade = "E" }',
            "stages[2].entry.grade: 'E' is not a grade (use A, B, C or D)",
        ),
        (
            "exit = { score = 40 }",
            "exit = { score = 50 }",
            "stages[2].exit.score: 50 must be below entry.score 50 (hysteresis)",
        ),
        (
            "exit = { score = 40 }",
            'exit = { score = 40, grade = "A" }',
            "stages[2].exit.grade: stricter than entry.grade",
        ),
        (
            "exit = { score = 65 }",
            "exit = { score = 65, bant = 3 }",
            "stages[3].exit.bant: 3 is stricter than entry.bant 2",
        ),
        (
            'entry = { score = 80, grade = "B", bant = 2 }',
            "entry = { score = 80, bant = 5 }",
            "stages[3].entry.bant: 5 is more than the 4 BANT criteria",
        ),
        (
            'entry = { score = 80, grade = "B", bant = 2 }',
            "entry = { score = 45 }",
            "stages[3].entry.score: 45 must be above the previous stage's entry.score 50",
        ),
        (
            'name = "cold"',
            'name = "cold"\nentry = { score = 1 }',
            "stages[0].entry: the first stage has no entry",
        ),
        ("exit = { score = 10 }", "", "stages[1].exit: missing"),
        ('name = "sql"', 'name = "mql"', "stages[3].name: duplicate stage 'mql'"),
        (
            'stage = "disqualified"',
            'stage = "disqualifed"',
            "disqualifiers[0].stage: unknown stage 'disqualifed'",
        ),
        (
            'forced_stages = ["disqualified"]',
            'forced_stages = ["disqualified", "cold"]',
            "forced_stages: 'cold' is already an ordered stage",
        ),
        ('glob = "/pricing*"', 'glob = ""', "rules[0].match.path.glob: must be a non-empty string"),
        (
            'glob = "/pricing*"',
            "glob = [3]",
            "rules[0].match.path.glob: must be a non-empty string",
        ),
        (
            'glob = "/pricing*"',
            'around = "/pricing*"',
            'rules[0].match.path: unknown operator "around"',
        ),
        (
            'match = { path = { glob = "/blog*" } }',
            'match = { paht = "/blog" }',
            "rules[1].match.paht: unknown field (known: action, asset, duration_seconds, "
            "form_id, path, referrer, title, url)",
        ),
        (
            'match = { action = "click" }',
            'match = { action = "clik" }',
            'rules[3].match.action: "clik" is not one of bounce, click, delivered, open, '
            "spam_report, unsubscribe",
        ),
        (
            'seniority = ["vp", "c_level"]',
            'seniority = ["vp", "ceo"]',
            'fit.rules[0].match.seniority: "ceo" is not one of',
        ),
        (
            "company_size = { gte = 100 }",
            'company_size = { gte = "100" }',
            'fit.rules[1].match.company_size.gte: "100" is not a number',
        ),
        (
            "company_size = { gte = 100 }",
            "company_size = { exists = 1 }",
            "fit.rules[1].match.company_size.exists: must be true or false",
        ),
        (
            "company_size = { gte = 100 }",
            "company_size = { in = [] }",
            "fit.rules[1].match.company_size.in: must be a non-empty list",
        ),
        (
            "company_size = { gte = 100 }",
            "company_size = { in = [[1]] }",
            "fit.rules[1].match.company_size.in: [1] is not a string, number or boolean",
        ),
        (
            "company_size = { gte = 100 }",
            "company_size = {}",
            "fit.rules[1].match.company_size: empty condition table",
        ),
        (
            "company_size = { gte = 100 }",
            "company_size = 1979-05-27",
            "fit.rules[1].match.company_size: datetime.date(1979, 5, 27) is not a scalar",
        ),
        ("need = { pain_identified = true }", "need = [3]", "bant.need[0]: must be a table"),
        (
            "need = { pain_identified = true }",
            "need = 3",
            "bant.need: must be a table of conditions",
        ),
        (
            "need = { pain_identified = true }",
            "need = { pain_identified = true }\nwant = {}",
            "bant.want: unknown key",
        ),
        (
            "grades = { A = 30, B = 20, C = 10 }",
            "grades = { A = 30, B = 40, C = 10 }",
            "fit.grades: bounds must decrease strictly: A > B > C",
        ),
        (
            "grades = { A = 30, B = 20, C = 10 }",
            "grades = { A = 30, B = 20, C = 10, E = 0 }",
            "fit.grades.E: unknown key",
        ),
        ('email = "4s"', 'email = "0s"', "decay.email: must be longer than 0s"),
        ('email = "4s"', 'email = "fast"', 'decay.email: "fast" is not a duration'),
        (
            'max_lateness = "100s"',
            "max_lateness = -1",
            "settings.max_lateness: -1 is not a duration",
        ),
        (
            "dedup_max_ids = 64",
            "dedup_max_ids = 0",
            "settings.dedup_max_ids: 0 is not an integer >= 1",
        ),
        ('id = "test"', 'name = "test"', "id: missing"),
        ('version = "7"', "version = true", "version: True is not a version"),
        (
            "sets = { unsubscribed = true }",
            "sets = { unsubscribed = [1] }",
            "rules[4].sets.unsubscribed: [1] is not a string, number or boolean",
        ),
        ("sets = { unsubscribed = true }", "sets = 3", "rules[4].sets: must be a table"),
        ('match = { action = "attended" }', "", "rules[5].match: missing"),
        ('description = "Student"', 'description = "Student"\nmatch = {}', "not valid TOML"),
        (
            '[[disqualifiers]]\nid = "student"',
            '[[disqualifiers]]\nid = "unsubscribed"',
            "disqualifiers[1].id: duplicate disqualifier id 'unsubscribed'",
        ),
        ('forced_stages = ["disqualified"]', "forced_stages = 3", "forced_stages: must be a list"),
    ],
)
def test_each_validation_error_names_the_key_and_the_problem(
    old: str, new: str, expected: str
) -> None:
    with pytest.raises(ModelError) as exc:
        load_model_text(_broken(old, new), "t.toml")
    assert any(expected in p for p in exc.value.problems), exc.value.problems
    assert expected in str(exc.value)


def test_every_problem_is_reported_at_once() -> None:
    text = (
        TEST_MODEL.replace('per = "10s"', 'per = "1x"')
        .replace('stage = "disqualified"', 'stage = "nowhere"', 1)
        .replace('id = "w-blog"', 'id = "w-pricing"')
        .replace("[decay]", "[decay]\nsocial = 3\n[bogus]\nx = 1\n[decay2]")
    )
    with pytest.raises(ModelError) as exc:
        load_model_text(text, "t.toml")
    assert len(exc.value.problems) >= 4, exc.value.problems
    assert "t.toml: " in str(exc.value) and "problems in the scoring model" in str(exc.value)


def test_structure_errors() -> None:
    with pytest.raises(ModelError) as exc:
        load_model_text('id = "x"\nversion = 1\nrules = 3\nstages = [3]\nsettings = 4\n', "t")
    problems = "\n".join(exc.value.problems)
    assert "rules: must be an array of tables" in problems
    assert "stages[0]: must be a table" in problems
    assert "settings: must be a table" in problems
    assert "decay: missing or empty" in problems
    with pytest.raises(ModelError, match="stages: missing"):
        load_model_text('id = "x"\nversion = 1\n[decay]\nweb = 1\n', "t")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('description = "Blog"', 'description = ""', "rules[1].description: '' is not a non-empty"),
        ("points = 5", "", "rules[1].points: missing (a number)"),
        ('match = { seniority = "student" }', "", "disqualifiers[1].match: missing"),
        ("match = { company_size = { gte = 100 } }", "", "fit.rules[1].match: missing"),
        ("entry = { score = 20 }", "", "stages[1].entry: missing"),
    ],
)
def test_more_missing_keys(old: str, new: str, expected: str) -> None:
    with pytest.raises(ModelError) as exc:
        load_model_text(TEST_MODEL.replace(old, new, 1), "t")
    assert any(expected in p for p in exc.value.problems), exc.value.problems


def test_defaults_and_versions() -> None:
    m = load_model_text(
        'id = "x"\nversion = 3\n[decay]\nweb = "none"\n[[stages]]\nname = "only"\n', "t"
    )
    assert m.version == "3" and m.max_lateness == 30 * 86400 and m.reasons_top_n == 5
    assert m.grade_bounds == (("A", 60.0), ("B", 40.0), ("C", 20.0))
    assert m.max_rate == 0.0 and m.rates == {"web": 0.0}
    assert [m.grade_for(x) for x in (60, 40, 20, 0)] == list(GRADES)
