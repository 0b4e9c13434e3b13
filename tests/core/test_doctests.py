"""The worked examples in streams.core's docstrings are executable and must stay true
(scoring's: tests/scoring/test_doctests.py)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "streams.core.bots",
    "streams.core.contract",
    "streams.core.partitioning",
    "streams.core.schedule",
    "streams.core.statecodec",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), raise_on_error=False)
    assert result.failed == 0
    assert result.attempted > 0
