"""Group and total caps (``[caps]``): no behaviour grows a score without bound.

A capped category's points are read held within ``[-N, N]``, and the score (the sum
of every category as read) within ``[-total, total]``. Holding is applied when the
points are *read*, never stored: accumulators stay the exact decayed sums, so the
score stays a function of the set of events (any order), and an edited cap applies
to every lead at once and exactly. A category above its cap reads as the cap until
its decaying sum falls below it, then decays as usual; the time decay alone moves a
lead across a threshold is solved piecewise between those release times
(``scoring.nextchange``).

The total cap must hold every stage threshold (the model refuses it otherwise), so it
changes the number people read and never which stage a lead is in.

>>> from scoring.modelfile import load_model_text
>>> m = load_model_text('''
... id = "c"
... version = 1
... [decay]
... web = "none"
... email = "none"
... [caps]
... web = 60
... total = 70
... [[stages]]
... name = "cold"
... ''')
>>> held(m, "web", 85.0), held(m, "web", -90.0), held(m, "email", 85.0)
(60.0, -60.0, 85.0)
>>> held_total(m, 95.0)
70.0
"""

from __future__ import annotations

import math

from scoring.model import ScoringModel

__all__ = ["held", "held_total", "release_after"]


def held(model: ScoringModel, category: str, value: float) -> float:
    """``value`` of ``category`` as read: within the category's cap, if it has one."""
    n = model.category_caps.get(category)
    if n is None:
        return value
    return n if value > n else -n if value < -n else value


def held_total(model: ScoringModel, score: float) -> float:
    n = model.total_cap
    return n if score > n else -n if score < -n else score


def release_after(value: float, cap: float, rate: float) -> float:
    """Seconds until a decaying ``value`` beyond ``+-cap`` comes back within it.

    >>> round(release_after(120.0, 60.0, math.log(2) / 10), 9)   # one half-life
    10.0
    """
    return math.log(abs(value) / cap) / rate
