"""The condition language shared by rules, fit rules, BANT and disqualifiers.

A *match* is a table ``field -> condition`` (all must hold) or a list of such tables
(any of them must hold). A condition is

* a scalar: equality (``action = "click"``);
* a list of scalars: any of (``seniority = ["vp", "c_level"]``);
* a table of operators, all of which must hold: ``glob`` (str or list, fnmatch
  style, case-sensitive), ``gte``/``gt``/``lte``/``lt`` (numbers only), ``in``,
  ``not_in``, ``exists`` (bool), ``suffix`` (str or list; domain-aware and
  case-insensitive: ``"edu"`` matches ``"mit.edu"`` and ``"edu"``, not ``"nedu"``),
  ``iequals`` (str or list: equality ignoring case, surrounding spaces and whether
  words are joined by spaces, ``_`` or ``-``) and ``contains`` (str or list: a whole
  word or phrase inside the value, compared the same way: ``"vp"`` matches
  ``"VP, Marketing"``, not ``"VPN engineer"``).

Vendors spell the same title, department or industry many ways ("Marketing
Operations", "marketing_ops", "MARKETING"); ``iequals`` and ``contains`` let a model
name each once instead of listing every spelling.

A missing field (or one set to null) fails every operator except ``not_in`` and
``exists = false``. Everything is compiled once, at model load.

>>> problems: list[str] = []
>>> m = compile_match({"path": {"glob": "/pricing*"}}, "rules[0].match", problems)
>>> m({"path": "/pricing/enterprise"}), m({"path": "/blog"}), problems
(True, False, [])
>>> m = compile_match({"email_domain": {"suffix": "edu"}}, "fit.rules[0].match", problems)
>>> m({"email_domain": "MIT.edu"}), m({"email_domain": "nedu"}), m({})
(True, False, False)
>>> m = compile_match([{"a": 1}, {"b": {"gte": 2}}], "bant.need", problems)
>>> m({"a": 1}), m({"b": 2.5}), m({"b": 1})
(True, True, False)
>>> m = compile_match({"job_title": {"contains": ["vp", "vice president"]}}, "t", problems)
>>> m({"job_title": "VP, Marketing"}), m({"job_title": "Senior Vice-President"})
(True, True)
>>> m({"job_title": "VPN engineer"})
False
>>> m = compile_match({"department": {"iequals": "marketing operations"}}, "d", problems)
>>> m({"department": "Marketing_Operations "}), m({"department": "Marketing"})
(True, False)
>>> compile_match({"a": {"around": 3}}, "fit[2]", problems)({"a": 3})
False
>>> print(problems[0])  # doctest: +ELLIPSIS
fit[2].a: unknown operator "around" (use glob, gte, gt, ..., iequals, contains)
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "OPERATORS",
    "Matcher",
    "Predicate",
    "compile_conditions",
    "compile_match",
    "fields_of",
    "never",
    "normalize_text",
]

Matcher = Callable[[Mapping[str, Any]], bool]
Predicate = Callable[[Any], bool]

OPERATORS = (
    "glob",
    "gte",
    "gt",
    "lte",
    "lt",
    "in",
    "not_in",
    "exists",
    "suffix",
    "iequals",
    "contains",
)

#: Runs of whitespace, ``_`` and ``-``: one word separator for ``iequals``/``contains``.
_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_text(value: str) -> str:
    """Lower case, trimmed, words joined by one space (how ``iequals`` and
    ``contains`` compare).

    >>> normalize_text("  Marketing_Operations - EMEA ")
    'marketing operations emea'
    """
    return _SEPARATORS.sub(" ", value.lower()).strip()


def never(_: Mapping[str, Any]) -> bool:
    """The matcher that matches nothing."""
    return False


def _always(_: Mapping[str, Any]) -> bool:
    return True


# Built once: ``int | float`` written inside the functions would build a new union
# object on every call, and numeric predicates run on every event.
_SCALAR = str | int | float | bool
_NUMBER = int | float


def _is_scalar(v: object) -> bool:
    return isinstance(v, _SCALAR)


def _is_number(v: object) -> bool:
    t = type(v)
    return t is float or t is int or (t is not bool and isinstance(v, _NUMBER))


def _fmt(v: object) -> str:
    return f'"{v}"' if isinstance(v, str) else repr(v)


def compile_match(
    spec: object,
    loc: str,
    problems: list[str],
    fields: Mapping[str, frozenset[str] | None] | None = None,
    enums: Mapping[str, frozenset[str]] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Matcher:
    """Compile ``spec`` into ``f(mapping) -> bool`` (see :func:`compile_conditions`)."""
    return compile_conditions(spec, loc, problems, fields, enums, defaults)[0]


def compile_conditions(
    spec: object,
    loc: str,
    problems: list[str],
    fields: Mapping[str, frozenset[str] | None] | None = None,
    enums: Mapping[str, frozenset[str]] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> tuple[Matcher, tuple[tuple[str, Predicate], ...] | None]:
    """Compile ``spec`` (a match table or a list of them) into ``f(mapping) -> bool``,
    plus, for a single table, its ``(field, predicate(value))`` pairs (all must hold),
    which lets a dispatcher share work between rules; None for an any-of list.

    Problems are appended to ``problems`` (each prefixed with ``loc``); the returned
    matcher is then unusable (never matches) but compilation goes on so that every
    problem is reported. ``fields`` (if given) lists the only field names allowed, each
    with its allowed string values or None; ``enums`` restricts values of known fields
    without restricting which fields may appear; ``defaults`` gives the value a
    missing (or null) field is read as (a web event without ``action`` is a page view).
    """
    if isinstance(spec, list):
        if not spec:
            problems.append(f"{loc}: an empty list matches nothing (use a table)")
            return never, None
        parts = [
            compile_match(item, f"{loc}[{i}]", problems, fields, enums, defaults)
            for i, item in enumerate(spec)
        ]
        if len(parts) == 1:
            return parts[0], None
        tup = tuple(parts)

        def any_of(d: Mapping[str, Any]) -> bool:
            for part in tup:  # noqa: SIM110 - a plain loop is faster than any() here
                if part(d):
                    return True
            return False

        return any_of, None
    if not isinstance(spec, dict):
        problems.append(f"{loc}: must be a table of conditions or a list of tables")
        return never, None
    before = len(problems)
    conds: list[tuple[str, Predicate]] = []
    for name, cond in spec.items():
        floc = f"{loc}.{name}"
        allowed: frozenset[str] | None = None
        if fields is not None:
            if name not in fields:
                known = ", ".join(sorted(fields))
                problems.append(f"{floc}: unknown field (known: {known})")
                continue
            allowed = fields[name]
        elif enums is not None:
            allowed = enums.get(name)
        pred = _compile_condition(cond, floc, problems, allowed)
        if pred is not None:
            if defaults is not None and name in defaults:
                pred = _with_default(pred, defaults[name])
            conds.append((name, pred))
    if len(problems) != before:
        return never, None
    return _combine(conds), tuple(conds)


def _with_default(pred: Predicate, default: Any) -> Predicate:
    return lambda v: pred(default if v is None else v)


def fields_of(spec: object) -> tuple[str, ...]:
    """The field names a match reads (a table's keys, or every table's of a list).

    >>> fields_of([{"a": 1}, {"b": 2, "a": 3}])
    ('a', 'b')
    """
    tables = spec if isinstance(spec, list) else [spec]
    names: dict[str, None] = {}
    for table in tables:
        if isinstance(table, dict):
            names.update(dict.fromkeys(table))
    return tuple(names)


def _combine(conds: list[tuple[str, Predicate]]) -> Matcher:
    if not conds:
        return _always
    if len(conds) == 1:
        field, pred = conds[0]

        def one(d: Mapping[str, Any]) -> bool:
            return pred(d.get(field))

        return one
    tup = tuple(conds)

    def all_of(d: Mapping[str, Any]) -> bool:
        get = d.get
        for field, pred in tup:  # noqa: SIM110 - faster than all() on a generator
            if not pred(get(field)):
                return False
        return True

    return all_of


def _check_enum(
    values: list[Any], loc: str, problems: list[str], allowed: frozenset[str] | None
) -> None:
    if allowed is None:
        return
    known = ", ".join(sorted(allowed))
    problems.extend(
        f"{loc}: {_fmt(v)} is not one of {known}"
        for v in values
        if isinstance(v, str) and v not in allowed
    )


def _scalars(value: object, loc: str, problems: list[str]) -> list[Any] | None:
    if not isinstance(value, list) or not value:
        problems.append(f"{loc}: must be a non-empty list of strings, numbers or booleans")
        return None
    bad = [v for v in value if not _is_scalar(v)]
    if bad:
        problems.append(f"{loc}: {_fmt(bad[0])} is not a string, number or boolean")
        return None
    return value


def _strings(value: object, loc: str, problems: list[str]) -> list[str] | None:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        problems.append(f"{loc}: must be a non-empty string or a non-empty list of them")
        return None
    return [str(v) for v in items]


def _member(values: list[Any]) -> Predicate:
    if len(values) == 1:
        x = values[0]
        return lambda v: v == x and v is not None
    try:
        fs = frozenset(values)
    except TypeError:  # pragma: no cover - scalars are hashable
        fs = frozenset()

    def member(v: Any) -> bool:
        try:
            return v in fs
        except TypeError:  # unhashable attribute value (custom profile key)
            return False

    return member


def _compile_condition(
    cond: object, loc: str, problems: list[str], allowed: frozenset[str] | None
) -> Predicate | None:
    if isinstance(cond, dict):
        return _compile_ops(cond, loc, problems, allowed)
    if isinstance(cond, list):
        values = _scalars(cond, loc, problems)
        if values is None:
            return None
        _check_enum(values, loc, problems, allowed)
        return _member(values)
    if _is_scalar(cond):
        _check_enum([cond], loc, problems, allowed)
        return _member([cond])
    problems.append(f"{loc}: {_fmt(cond)} is not a scalar, a list or a table of operators")
    return None


def _compile_ops(
    ops: dict[str, Any], loc: str, problems: list[str], allowed: frozenset[str] | None
) -> Predicate | None:
    if not ops:
        problems.append(f"{loc}: empty condition table (use one of {', '.join(OPERATORS)})")
        return None
    preds: list[Predicate] = []
    for op, arg in ops.items():
        oloc = f"{loc}.{op}"
        pred = _compile_op(op, arg, oloc, loc, problems, allowed)
        if pred is not None:
            preds.append(pred)
    if len(preds) != len(ops):
        return None
    if len(preds) == 1:
        return preds[0]
    tup = tuple(preds)

    def all_ops(v: Any) -> bool:
        for p in tup:  # noqa: SIM110 - faster than all() on a generator
            if not p(v):
                return False
        return True

    return all_ops


def _compile_op(
    op: str,
    arg: object,
    oloc: str,
    loc: str,
    problems: list[str],
    allowed: frozenset[str] | None,
) -> Predicate | None:
    if op == "glob":
        pats = _strings(arg, oloc, problems)
        if pats is None:
            return None
        try:
            rx = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in pats))
        except re.error as exc:  # pragma: no cover - fnmatch escapes what re rejects
            problems.append(f"{oloc}: bad glob ({exc})")
            return None
        match = rx.match
        return lambda v: isinstance(v, str) and match(v) is not None
    if op in ("gte", "gt", "lte", "lt"):
        if not _is_number(arg):
            problems.append(f"{oloc}: {_fmt(arg)} is not a number")
            return None
        x: float = arg  # type: ignore[assignment]
        if op == "gte":
            return lambda v: _is_number(v) and v >= x
        if op == "gt":
            return lambda v: _is_number(v) and v > x
        if op == "lte":
            return lambda v: _is_number(v) and v <= x
        return lambda v: _is_number(v) and v < x
    if op in ("in", "not_in"):
        values = _scalars(arg, oloc, problems)
        if values is None:
            return None
        _check_enum(values, oloc, problems, allowed)
        member = _member(values)
        if op == "in":
            return member
        return lambda v: v is None or not member(v)
    if op == "exists":
        if not isinstance(arg, bool):
            problems.append(f"{oloc}: must be true or false")
            return None
        want = arg
        return lambda v: (v is not None) is want
    if op == "suffix":
        sufs = _strings(arg, oloc, problems)
        if sufs is None:
            return None
        exact = frozenset(s.lower().lstrip(".") for s in sufs)
        dotted = tuple("." + s for s in exact)

        def suffix(v: Any) -> bool:
            if not isinstance(v, str):
                return False
            low = v.lower()
            return low in exact or low.endswith(dotted)

        return suffix
    if op in ("iequals", "contains"):
        texts = _strings(arg, oloc, problems)
        if texts is None:
            return None
        needles = [normalize_text(t) for t in texts]
        if not all(needles):
            problems.append(f"{oloc}: must name words, not only spaces, _ or -")
            return None
        return _text_predicate(op, needles)
    problems.append(f'{loc}: unknown operator "{op}" (use {", ".join(OPERATORS)})')
    return None


def _text_predicate(op: str, needles: list[str]) -> Predicate:
    """``iequals``: the normalized value is one of ``needles``; ``contains``: one of
    them occurs in it between word boundaries (letters and digits on neither side)."""
    if op == "iequals":
        wanted = frozenset(needles)
        return lambda v: isinstance(v, str) and normalize_text(v) in wanted
    alternatives = "|".join(re.escape(n) for n in needles)
    search = re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])").search
    return lambda v: isinstance(v, str) and search(normalize_text(v)) is not None
