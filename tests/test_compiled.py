"""The mypyc build of ``scoring`` (``make compiled``) scores exactly as the
interpreted one, and a build older than its sources is caught.

The compiled run copies ``scoring/`` and its tests to a temporary root, builds
there (the checkout stays interpreted) and runs ``tests/scoring`` against the
build: the property tests compare every state and transition with what the
model defines, so a semantic difference of the compiled code (mypyc checks types
at runtime and converts ints to floats where annotations say float) fails them.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from streams import worker
from streams.build import ScoringBuild, scoring_build
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_scoring_build_tells_compiled_and_stale_modules(tmp_path: Path) -> None:
    for name in ("__init__", "engine", "state", "decay"):
        (tmp_path / f"{name}.py").write_text("")
    for name in ("engine", "state"):
        (tmp_path / f"{name}{SUFFIX}").write_bytes(b"")
    assert scoring_build(tmp_path).compiled == ("engine", "state")
    assert scoring_build(tmp_path).stale == ()
    assert scoring_build(tmp_path).stale_error() is None
    assert scoring_build(tmp_path).kind == "compiled (mypyc)"
    built = (tmp_path / f"state{SUFFIX}").stat().st_mtime
    os.utime(tmp_path / "state.py", (built + 5, built + 5))  # edited after the build
    build = scoring_build(tmp_path)
    assert build.stale == ("state",)
    assert "scoring/state.py changed after the mypyc build" in (build.stale_error() or "")
    assert scoring_build(tmp_path / "no-such-dir").kind == "interpreted"


def test_worker_refuses_a_stale_build(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = ScoringBuild(compiled=("engine", "state"), stale=("engine",))
    monkeypatch.setattr(worker, "scoring_build", lambda: stale)
    assert worker.run_worker(Settings()) == 2  # before it loads a model or calls Kafka
    err = capsys.readouterr().err
    assert "cannot start: scoring/engine.py changed after the mypyc build" in err


@pytest.mark.skipif(
    not shutil.which(str(sysconfig.get_config_var("CC") or "cc").split()[0]),
    reason="no C compiler for mypyc",
)
def test_compiled_scoring_passes_the_scoring_tests(tmp_path: Path) -> None:
    for part in ("scoring", "tests/scoring"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("*.so"))
    shutil.copy(REPO / "tests" / "__init__.py", tmp_path / "tests")
    shutil.copy(REPO / "pyproject.toml", tmp_path)  # the same pytest configuration
    build = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "compile_scoring.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    compiled = scoring_build(tmp_path / "scoring").compiled
    assert {"decay", "engine", "model", "state"} <= set(compiled), compiled
    assert "__init__" not in compiled
    # The tests import scoring from the temporary root (the working directory).
    which = subprocess.run(
        [sys.executable, "-c", "import scoring.engine as e; print(e.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert which.stdout.strip() == str(tmp_path / "scoring" / f"engine{SUFFIX}")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/scoring"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-5000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
