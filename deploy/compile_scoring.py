"""Compile ``scoring/`` with mypyc, in place: ``python deploy/compile_scoring.py [ROOT]``.

The domain core is plain typed Python; mypyc turns each module into a C extension
next to its source (``scoring/*.so``, one shared ``scoring/_native__mypyc*.so``),
which Python imports instead of the ``.py``. Scoring runs ~1.4x as fast (see
docs/performance.md, "Compiled scoring"); results are the same, and the tests check that.

Run from an environment with mypy (which ships mypyc) and a C compiler: ``make
compiled`` here, the build stage of ``deploy/docker/Dockerfile`` for images. The C
sources and objects go to ``ROOT/var/mypyc``; ``make clean`` removes both. After a
source changes, build again: the worker and the tests refuse a stale build
(``streams.build``).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path


def main(root: Path) -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    os.chdir(root)  # mypyc and build_ext --inplace write relative to the package root
    # setuptools reads the project's pyproject.toml here too, and warns about it.
    warnings.filterwarnings("ignore", message=r"Support for `\[tool.setuptools\]`")
    # __init__ stays interpreted: the shared library lives inside the package, and a
    # compiled __init__ would import it while the package itself is being imported.
    sources = sorted(str(p) for p in Path("scoring").glob("*.py") if p.name != "__init__.py")
    work = Path("var/mypyc")
    setup(
        name="leadstream-scoring-compiled",
        packages=[],
        ext_modules=mypycify(sources, group_name="scoring._native", target_dir=str(work / "c")),
        script_args=[
            "--quiet",
            "build_ext",
            "--inplace",
            "--build-temp",
            str(work / "temp"),
            "--build-lib",
            str(work / "lib"),
        ],
    )
    # build_ext copies an unchanged extension with its old time; it is built from
    # these sources all the same, and streams.build judges staleness by the times.
    for built in Path("scoring").glob("*.so"):
        built.touch()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent))
