"""``leadstream model check NEW.toml``: validate an edited scoring model and say what
it changes against the model in use, before a rollout (and in the model owner's CI).

Exit codes: 0 valid (the differences printed, or "no change"), 1 invalid (every
problem printed), 2 unreadable.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from scoring import ModelError, load_model
from scoring.modeldiff import diff_models


def _data(path: Path | None) -> dict[str, Any]:
    if path is None:
        text = resources.files("scoring").joinpath("default_model.toml").read_text()
    else:
        text = path.read_text()
    return tomllib.loads(text)


def check_model(
    candidate: Path, current: Path | None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Validate ``candidate``; print its differences from ``current`` (None: bundled)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        new = load_model(candidate)
    except ModelError as exc:
        print(f"{candidate}: invalid scoring model:\n{exc}", file=err)
        return 1
    except OSError as exc:
        print(f"{candidate}: cannot read: {exc}", file=err)
        return 2
    in_use = str(current) if current is not None else "the bundled default model"
    try:
        changes = diff_models(_data(current), _data(candidate))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"{in_use}: cannot read: {exc}", file=err)
        return 2
    print(f"{candidate}: valid ({new.id} v{new.version}, fingerprint {new.fingerprint})", file=out)
    if not changes:
        print(f"no change that affects scoring against {in_use}", file=out)
    else:
        print(f"against {in_use}:", file=out)
        for line in changes:
            print(f"  - {line}", file=out)
    return 0
