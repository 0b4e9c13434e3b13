"""The worked examples in the docstrings are executable and must stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "scoring.bots",
    "scoring.conditions",
    "scoring.decay",
    "scoring.dispatch",
    "scoring.durations",
    "scoring.engine",
    "scoring.groupcaps",
    "scoring.history",
    "scoring.model",
    "scoring.modelfile",
    "scoring.nextchange",
    "scoring.stages",
    "scoring.state",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    if not (module.__file__ or "").endswith(".py"):
        pytest.skip("compiled by mypyc: doctest finds no docstrings; run interpreted")
    result = doctest.testmod(module, raise_on_error=False)
    assert result.failed == 0
    assert result.attempted > 0 or name == "scoring.model"
