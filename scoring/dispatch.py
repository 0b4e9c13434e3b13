"""Which rules of a source match an event, with work shared between rules.

Each rule that is a single match table is a conjunction of per-field predicates. For
every field the rules of a source test, the set of rules whose condition on it holds
is a bitmask; for string (or missing) values that mask is memoised per value — paths,
actions and links repeat endlessly — so a typical event costs a few dict lookups
instead of one regex per rule. Rules written as any-of lists are evaluated whole.

The dispatcher reads only a rule's ``conds`` and ``match`` (:class:`DispatchRule`) and
hands back the rule objects it was given, so it does not depend on ``scoring.model``
(which holds a dispatcher per source).

>>> from scoring.modelfile import load_default_model
>>> d = load_default_model().dispatch["web"]
>>> [r.id for r in d.match({"path": "/pricing", "duration_seconds": 300})]
['web-pricing', 'web-engaged-visit']
>>> [r.id for r in d.match({"path": "/about"})]
[]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from scoring.conditions import Matcher, Predicate

__all__ = ["DispatchRule", "Dispatcher"]

#: Memoised values per field before the memo is dropped and rebuilt.
MEMO_LIMIT = 4096


class DispatchRule(Protocol):
    """What the dispatcher reads of a rule (``scoring.model.Rule`` has both)."""

    @property
    def conds(self) -> tuple[tuple[str, Predicate], ...] | None:
        """Per-field predicates, all of which must hold (None: use ``match``)."""

    @property
    def match(self) -> Matcher:
        """The whole rule's matcher."""


R = TypeVar("R", bound=DispatchRule)


class Dispatcher(Generic[R]):
    __slots__ = ("_by_mask", "_fields", "_full", "_opaque", "rules")

    def __init__(self, rules: Sequence[R]) -> None:
        self.rules = tuple(rules)
        self._full = (1 << len(self.rules)) - 1
        preds: dict[str, list[tuple[int, Predicate]]] = {}
        opaque: list[tuple[int, Matcher]] = []
        for i, rule in enumerate(self.rules):
            bit = 1 << i
            if rule.conds is None:
                opaque.append((bit, rule.match))
                continue
            for field, pred in rule.conds:
                preds.setdefault(field, []).append((bit, pred))
        fields = []
        for field, items in preds.items():
            constrained = 0
            for bit, _ in items:
                constrained |= bit
            memo: dict[Any, int] = {}
            fields.append((field, tuple(items), self._full & ~constrained, memo))
        self._fields = tuple(fields)
        self._opaque = tuple(opaque)
        self._by_mask: dict[int, tuple[R, ...]] = {0: ()}

    def match(self, data: Mapping[str, Any]) -> tuple[R, ...]:
        """The rules matching ``data``, in model order."""
        mask = self._full
        get = data.get
        for field, items, free, memo in self._fields:
            v = get(field)
            m = memo.get(v) if v is None or type(v) is str else None
            if m is None:
                m = free
                for bit, pred in items:
                    if pred(v):
                        m |= bit
                if v is None or type(v) is str:
                    if len(memo) >= MEMO_LIMIT:
                        memo.clear()
                    memo[v] = m
            mask &= m
            if not mask:
                return ()
        for bit, matcher in self._opaque:
            if mask & bit and not matcher(data):
                mask &= ~bit
        rules = self._by_mask.get(mask)
        if rules is None:
            rules = self._by_mask[mask] = tuple(
                r for i, r in enumerate(self.rules) if mask >> i & 1
            )
        return rules
