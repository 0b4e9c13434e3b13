"""Durations in the model file: ``"30d"``, ``"12h"``, ``"15m"``, ``"90s"``, ``"1.5s"`` or a number.

>>> parse_duration("30d")
2592000.0
>>> parse_duration("1.5s")
1.5
>>> parse_duration(90)
90.0
>>> parse_duration("1x")
Traceback (most recent call last):
...
ValueError: "1x" is not a duration (use 30d, 12h, 15m, 90s)
"""

from __future__ import annotations

import re

__all__ = ["UNITS", "parse_duration"]

#: Seconds per unit letter.
UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([dhms])\s*$")


def parse_duration(value: object) -> float:
    """Seconds in ``value`` (a duration string or a non-negative number of seconds).

    Raises ``ValueError`` with a message meant for a model author.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (use 30d, 12h, 15m, 90s)")
    if isinstance(value, int | float):
        if value != value or value < 0 or value == float("inf"):
            raise ValueError(f"{value!r} is not a duration (must be finite and >= 0)")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m is not None:
            return float(m.group(1)) * UNITS[m.group(2)]
        raise ValueError(f'"{value}" is not a duration (use 30d, 12h, 15m, 90s)')
    raise ValueError(f"{value!r} is not a duration (use 30d, 12h, 15m, 90s)")
