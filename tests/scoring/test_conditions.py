from __future__ import annotations

from typing import Any

import pytest

from scoring.conditions import compile_match


def m(spec: Any) -> Any:
    problems: list[str] = []
    fn = compile_match(spec, "x", problems)
    assert problems == []
    return fn


@pytest.mark.parametrize(
    ("spec", "yes", "no"),
    [
        ({"a": "v"}, {"a": "v"}, {"a": "w"}),
        ({"a": ["v", "w"]}, {"a": "w"}, {"a": "z"}),
        ({"a": ["v", "w"]}, {"a": "v"}, {"a": ["unhashable"]}),
        ({"a": {"glob": ["/p*", "/q"]}}, {"a": "/q"}, {"a": "/Q"}),
        ({"a": {"glob": "/p*"}}, {"a": "/px"}, {"a": 3}),
        ({"a": {"gte": 2}}, {"a": 2}, {"a": 1.9}),
        ({"a": {"gt": 2}}, {"a": 2.1}, {"a": 2}),
        ({"a": {"lte": 2}}, {"a": 2}, {"a": 2.1}),
        ({"a": {"lt": 2}}, {"a": 1}, {"a": 2}),
        ({"a": {"gte": 1}}, {"a": 5}, {"a": True}),  # booleans are not numbers
        ({"a": {"gte": 1}}, {"a": 5}, {"a": "5"}),
        ({"a": {"in": [1, 2]}}, {"a": 2}, {"a": 3}),
        ({"a": {"not_in": [1, 2]}}, {"a": 3}, {"a": 1}),
        ({"a": {"not_in": [1]}}, {}, {"a": 1}),  # missing passes not_in
        ({"a": {"exists": True}}, {"a": 0}, {"a": None}),
        ({"a": {"exists": False}}, {}, {"a": "x"}),
        ({"a": {"suffix": ["edu", ".ac.uk"]}}, {"a": "cs.ox.AC.uk"}, {"a": "nedu"}),
        ({"a": {"suffix": "edu"}}, {"a": "edu"}, {"a": 5}),
        ({"a": {"gte": 1, "lt": 3}}, {"a": 2}, {"a": 3}),
        ({"a": {"iequals": "Software"}}, {"a": " SOFTWARE"}, {"a": "software house"}),
        ({"a": {"iequals": ["revenue operations"]}}, {"a": "Revenue_Operations"}, {"a": 1}),
        ({"a": {"iequals": "x"}}, {"a": "X"}, {}),
        ({"a": {"contains": "marketing"}}, {"a": "Marketing Operations"}, {"a": "Remarketing"}),
        ({"a": {"contains": "head of"}}, {"a": "Head-of Sales"}, {"a": "Forehead office"}),
        ({"a": {"contains": ["vp", "chief"]}}, {"a": "EVP / VP Sales"}, {"a": "VPN"}),
        ({"a": {"contains": "c++"}}, {"a": "C++ developer"}, {"a": "c"}),
        ({"a": {"contains": "x"}}, {"a": "x"}, {"a": ["x"]}),
        ({"a": 1, "b": "x"}, {"a": 1, "b": "x"}, {"a": 1, "b": "y"}),
        ({}, {"anything": 1}, None),
        ([{"a": 1}], {"a": 1}, {"a": 2}),
        ([{"a": 1}, {"b": 1}], {"b": 1}, {"a": 2}),
        ({"a": "v"}, {"a": "v"}, {}),
    ],
)
def test_condition_semantics(spec: Any, yes: dict[str, Any], no: dict[str, Any] | None) -> None:
    fn = m(spec)
    assert fn(yes) is True
    if no is not None:
        assert fn(no) is False


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], "x: an empty list matches nothing"),
        ("str", "x: must be a table of conditions or a list of tables"),
        ({"a": {"glob": []}}, "x.a.glob: must be a non-empty string"),
        ({"a": {"suffix": [""]}}, "x.a.suffix: must be a non-empty string"),
        ({"a": {"contains": []}}, "x.a.contains: must be a non-empty string"),
        ({"a": {"iequals": " _ "}}, "x.a.iequals: must name words"),
        ({"a": {"in": "v"}}, "x.a.in: must be a non-empty list"),
        ({"a": {"gte": True}}, "x.a.gte: True is not a number"),
        ({"a": {"lt": "3"}}, 'x.a.lt: "3" is not a number'),
        ({"a": [1, {"b": 2}]}, "x.a: {'b': 2} is not a string, number or boolean"),
        ({"a": None}, "x.a: None is not a scalar"),
    ],
)
def test_condition_errors(spec: Any, message: str) -> None:
    problems: list[str] = []
    fn = compile_match(spec, "x", problems)
    assert any(message in p for p in problems), problems
    assert fn({"a": "v"}) is False


def test_field_and_enum_checks() -> None:
    problems: list[str] = []
    fields = {"action": frozenset({"open", "click"}), "link": None}
    compile_match({"action": {"in": ["open", "opn"]}, "lnk": "x"}, "r", problems, fields)
    assert problems == [
        'r.action.in: "opn" is not one of click, open',
        "r.lnk: unknown field (known: action, link)",
    ]
    problems = []
    compile_match(
        {"seniority": {"not_in": ["vip"]}}, "f", problems, enums={"seniority": frozenset({"vp"})}
    )
    assert problems == ['f.seniority.not_in: "vip" is not one of vp']
