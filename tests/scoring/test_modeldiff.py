"""scoring.modeldiff: what a model owner is told an edit changes."""

from __future__ import annotations

import tomllib

from scoring.modeldiff import diff_models

from .models import TEST_MODEL


def edit(old: str, new: str) -> list[str]:
    assert old in TEST_MODEL
    return diff_models(tomllib.loads(TEST_MODEL), tomllib.loads(TEST_MODEL.replace(old, new)))


def test_an_unchanged_model_has_no_differences() -> None:
    assert diff_models(tomllib.loads(TEST_MODEL), tomllib.loads(TEST_MODEL)) == []


def test_each_kind_of_edit_is_named_with_what_migration_makes_of_it() -> None:
    assert edit(
        'points = 5\nmatch = { path = { glob = "/blog*" } }',
        'points = 8\nmatch = { path = { glob = "/blog*" } }',
    ) == ["rule w-blog: points 5 -> 8 (stored leads rescaled exactly)"]
    assert edit('web = "10s"', 'web = "20s"') == [
        "decay web: half-life 10s -> 20s (NOT exact: applies from each lead's latest event on)"
    ]
    assert edit("grades = { A = 30, B = 20, C = 10 }", "grades = { A = 40, B = 20, C = 10 }") == [
        "grade bands: {'A': 30, 'B': 20, 'C': 10} -> {'A': 40, 'B': 20, 'C': 10} "
        "(grades recomputed from stored profiles)"
    ]
    assert edit('name = "mql"', 'name = "hot"\nrenamed_from = ["mql"]') == [
        "stage mql renamed to hot (its leads keep their place)"
    ]
    assert edit('name = "mql"', 'name = "hot"') == [
        "stage hot: added",
        "stage mql: removed (its leads evaluated from the bottom)",
    ]
    assert edit('id = "w-blog"', 'id = "w-blog2"') == [
        "rule w-blog2: added (starts from nothing: past events not replayed)",
        "rule w-blog: removed (dropped from stored leads)",
    ]


def test_caps_bots_history_and_unless_are_named() -> None:
    old = tomllib.loads(TEST_MODEL + "\n[caps]\nweb = 40\n")
    new = tomllib.loads(
        TEST_MODEL.replace("reasons_top_n = 3", "reasons_top_n = 3\nhistory_size = 20").replace(
            'match = { action = "click" }', 'match = { action = "click" }\nunless = { x = 1 }'
        )
        + '\n[caps]\nweb = 50\ntotal = 100\n[bots]\nemail_click_gap = "2s"\n'
    )
    assert diff_models(old, new) == [
        "rule e-click: unless changed (NOT exact: events already scored are not re-matched)",
        "caps.total: None -> 100 (exact: applies at once)",
        "caps.web: 40 -> 50 (exact: applies at once)",
        "bots.email_click_gap: None -> 2s (NOT exact: applies to events from now on)",
        "settings.history_size: None -> 20",
    ]


def test_the_sales_loop_differences_are_listed() -> None:
    from scoring.modeldiff import diff_models

    old = {
        "stages": [{"name": "sql", "owner": "sales", "sla": "4h"}],
        "sales_stages": [{"name": "accepted"}, {"name": "customer"}],
        "outcomes": {"rejected": {"stage": "warm", "reset": 0.5}},
    }
    new = {
        "stages": [{"name": "sql", "sla": "2h"}],
        "sales_stages": [{"name": "accepted", "sla": "1d"}, {"name": "opportunity"}],
        "outcomes": {"rejected": {"stage": "warm", "reset": 0.25}},
    }
    assert diff_models(old, new) == [
        "stage sql: owner sales -> None (stored leads re-evaluated)",
        "stage sql: sla 4h -> 2h (pending SLAs take the new deadline)",
        "sales stage accepted: sla None -> 1d (pending SLAs take the new deadline)",
        "sales stage opportunity: added",
        "sales stage customer: removed (its leads evaluated from the bottom)",
        "outcomes.rejected: {'stage': 'warm', 'reset': 0.5} -> {'stage': 'warm', 'reset': 0.25} "
        "(outcomes from now on)",
    ]
