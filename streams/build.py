"""Which build of ``scoring`` this process runs: interpreted, or compiled by mypyc
(``deploy/compile_scoring.py``), and whether that build is older than its sources.

A compiled module shadows its ``.py``: after an edit or a ``git pull`` without a
new build, the worker would run the old scoring code without a word. The worker
and the test session refuse that instead.
"""

from __future__ import annotations

import importlib.machinery
from dataclasses import dataclass
from pathlib import Path

import scoring


@dataclass(frozen=True, slots=True)
class ScoringBuild:
    #: modules that run compiled (``engine``, ``state``, ...)
    compiled: tuple[str, ...]
    #: compiled modules whose source changed after they were built
    stale: tuple[str, ...]

    @property
    def kind(self) -> str:
        return "compiled (mypyc)" if self.compiled else "interpreted"

    def stale_error(self) -> str | None:
        if not self.stale:
            return None
        return (
            f"scoring/{', '.join(m + '.py' for m in self.stale)} changed after the mypyc"
            " build: run `make compiled` again, or delete scoring/*.so to run interpreted"
        )


def scoring_build(package_dir: Path | None = None) -> ScoringBuild:
    root = package_dir if package_dir is not None else Path(scoring.__file__).parent
    compiled, stale = [], []
    for source in sorted(root.glob("*.py")):
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            built = source.with_name(source.stem + suffix)
            if built.exists():
                compiled.append(source.stem)
                if source.stat().st_mtime > built.stat().st_mtime:
                    stale.append(source.stem)
                break
    return ScoringBuild(tuple(compiled), tuple(stale))
