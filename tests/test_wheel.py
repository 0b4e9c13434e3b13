"""The built wheel is the runtime, complete: the contract's schemas inside, the
developer tooling (streams.local) left out, ``leadstream worker`` its one command."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: What setuptools needs to build the wheel (a copy, so the build leaves no files here).
SOURCES = ("pyproject.toml", "README.md", "scoring", "streams", "schemas")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, setuptools.build_meta as b; b.build_wheel(sys.argv[1])",
            str(out),
        ],
        cwd=src,
        check=True,
        capture_output=True,
    )
    [built] = out.glob("leadstream-*.whl")
    return built


def test_the_wheel_ships_the_schemas_and_not_the_local_tooling(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    schemas = sorted(n for n in names if n.startswith("streams/schemas/"))
    expected = sorted(f"streams/schemas/{p.name}" for p in (REPO / "schemas").glob("*.json"))
    assert set(expected) <= set(schemas) and expected
    assert not [n for n in names if n.startswith("streams/local/")]
    assert "scoring/default_model.toml" in names


def test_the_contract_loads_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    # -S: no .pth files, so the editable install of this checkout cannot answer imports;
    # the dependencies come from this venv's site-packages, appended by hand.
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]);"
        "from streams.core import contract;"
        "assert contract.SCHEMA_DIR.is_relative_to(sys.argv[1]), contract.SCHEMA_DIR;"
        "contract.decode_event('web', b'{}', now=0.0, max_future_skew_s=1.0)"
    )
    site = sysconfig.get_paths()["purelib"]
    run = subprocess.run(
        [sys.executable, "-S", "-c", probe, str(unpacked), site],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    # The schema rejects the empty event: the schemas were found and compiled.
    assert "Rejected: schema_violation" in run.stderr, run.stderr
    cli = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]);"
            "from streams.cli import main; main(['--help'])",
            str(unpacked),
            site,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    assert "{worker,model,lead,report}" in cli.stdout  # the runtime's subcommands only
