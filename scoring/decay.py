"""Exponential decay: accumulators and the exact first crossing of a sum of exponentials.

A decaying accumulator is a ``[value, anchor]`` pair meaning ``value`` points at time
``anchor``; at time ``t`` it is worth ``value * 2**(-(t - anchor) / half_life)``. Adding
``p`` points at ``t_e`` gives the same result whatever the order of the additions:

>>> acc = [0.0, 0.0]
>>> add(acc, 10.0, 100.0, rate_for(10.0))   # 10 points at t=100, half-life 10 s
>>> add(acc, 10.0, 90.0, rate_for(10.0))    # a late event: worth 5 at t=100
>>> acc
[15.0, 100.0]
>>> value_at(acc, 110.0, rate_for(10.0))
7.5

Crossings: when does ``k + sum(c_i * exp(-mu_i * x))`` first reach a level?

>>> first_crossing([100.0], [rate_for(10.0)], 0.0, 50.0, up=False, tol=1e-9)
10.000000000000002
>>> x = first_crossing([80.0, -60.0], [rate_for(100.0), rate_for(5.0)], 0.0, 40.0, True, 1e-9)
>>> round(x, 6)   # negative points decaying away faster lift the score to 40
3.253963
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["add", "first_crossing", "rate_for", "sign_changes", "value_at"]

_exp = math.exp
_LN2 = math.log(2.0)
_INF = math.inf
#: ulp steps tried from the closed form before searching (rounding needs a few).
NUDGES = 64


def rate_for(half_life: float) -> float:
    """ln 2 / half_life: ``value * exp(-rate * dt)`` halves every ``half_life`` seconds."""
    return _LN2 / half_life


def add(acc: list[float], points: float, t: float, rate: float) -> None:
    """Add ``points`` at time ``t`` to the decaying accumulator ``acc`` (in place)."""
    anchor = acc[1]
    if t <= anchor:
        acc[0] += points * _exp((t - anchor) * rate)
    else:
        acc[0] = acc[0] * _exp((anchor - t) * rate) + points
        acc[1] = t


def value_at(acc: Sequence[float], t: float, rate: float) -> float:
    """The accumulator's worth at time ``t``."""
    return acc[0] * _exp((acc[1] - t) * rate)


def _g(cs: Sequence[float], mus: Sequence[float], k: float, x: float) -> float:
    total = k
    for c, mu in zip(cs, mus, strict=True):
        total += c * _exp(-mu * x)
    return total


def _critical_points(cs: Sequence[float], mus: Sequence[float], tol: float) -> list[float]:
    """x > 0 where the derivative of ``sum c_i exp(-mu_i x)`` changes sign.

    g'(x) = sum -mu_i c_i exp(-mu_i x) = exp(-mu_0 x) * (-mu_0 c_0 + sum_{i>0} -mu_i c_i
    exp(-(mu_i - mu_0) x)): with mu_0 the smallest rate, the bracket is again a constant
    plus decaying exponentials, one fewer: recurse.
    """
    n = len(cs)
    if n <= 1 or all(c >= 0 for c in cs) or all(c <= 0 for c in cs):
        return []  # monotone
    order = sorted(range(n), key=lambda i: mus[i])
    mu0 = mus[order[0]]
    k = -mu0 * cs[order[0]]
    dcs = [-mus[i] * cs[i] for i in order[1:]]
    dmus = [mus[i] - mu0 for i in order[1:]]
    return sign_changes(dcs, dmus, k, tol)


def sign_changes(cs: Sequence[float], mus: Sequence[float], k: float, tol: float) -> list[float]:
    """Every x > 0 where ``g(x) = k + sum c_i exp(-mu_i x)`` changes side (>= 0 / < 0).

    Rates ``mus`` must be positive and distinct. g is monotone between consecutive
    critical points, so each such interval holds at most one change, found by
    bracketing to ``tol``; the point returned is the first one on the new side (within
    ``tol`` after the exact root). Touching 0 from below counts (g reaches >= 0);
    touching it from above without going below does not.
    """
    n = len(cs)
    if n == 0:
        return []
    if n == 1:
        c, mu = cs[0], mus[0]
        ratio = -k / c if c != 0 else -1.0
        if not 0.0 < ratio < 1.0:
            return []
        x = -math.log(ratio) / mu
        # Closed form; nudge to the first representable point on the new side.
        before = (c + k) >= 0
        lo = nudged = x
        for _ in range(NUDGES):
            if ((c * _exp(-mu * nudged) + k) >= 0) != before:
                return [nudged]
            lo, nudged = nudged, math.nextafter(nudged, _INF)
        # Still on the old side: near the subnormal range the computed g lags the
        # closed form by far more than a few ulps (k = -5e-324 needs ~7 s, which
        # steps of tol never reached). Gallop to the new side, then bracket.
        step = tol
        while ((c * _exp(-mu * (lo + step)) + k) >= 0) == before:
            lo, step = lo + step, step * 2.0
        if step == tol:
            return [lo + step]
        return [_bracket(cs, mus, k, lo, lo + step, before, tol)]
    points = [0.0, *_critical_points(cs, mus, tol)]
    out: list[float] = []
    for j, p in enumerate(points):
        gp = _g(cs, mus, k, p)
        side = gp >= 0
        if j + 1 < len(points):
            q = points[j + 1]
            if (_g(cs, mus, k, q) >= 0) == side:
                continue
        else:
            if (k > 0 if not side else k < 0) is False:
                continue
            # Find a finite end on the limit's side: terms decay past any bound.
            step = 1.0 / min(mus)
            q = p + step
            while (_g(cs, mus, k, q) >= 0) == side:
                step *= 2.0
                q = p + step
        out.append(_bracket(cs, mus, k, p, q, side, tol))
    return out


def _bracket(
    cs: Sequence[float],
    mus: Sequence[float],
    k: float,
    lo: float,
    hi: float,
    side: bool,
    tol: float,
) -> float:
    """The change of side in [lo, hi] (g monotone there; side of lo given): Illinois
    regula falsi with bisection steps whenever it stalls; returns a point on the new
    side at most ``tol`` after the root."""
    glo = _g(cs, mus, k, lo)
    ghi = _g(cs, mus, k, hi)
    stale = 0
    last_width = hi - lo
    while hi - lo > tol:
        if stale >= 2 or glo == ghi:
            x = 0.5 * (lo + hi)
            stale = 0
        else:
            x = hi - ghi * (hi - lo) / (ghi - glo)
            if not lo < x < hi:
                x = 0.5 * (lo + hi)
        if x in (lo, hi):
            break  # no representable point between: done
        gx = _g(cs, mus, k, x)
        if (gx >= 0) == side:
            lo, glo = x, gx
            ghi *= 0.5  # Illinois: keep the stale end from freezing the secant
        else:
            hi, ghi = x, gx
            glo *= 0.5
        width = hi - lo
        stale = stale + 1 if width > 0.5 * last_width else 0
        last_width = width
    return hi


def first_crossing(
    cs: Sequence[float],
    mus: Sequence[float],
    k: float,
    level: float,
    up: bool,
    tol: float,
) -> float | None:
    """First x > 0 where ``k + sum c_i exp(-mu_i x)`` is ``>= level`` (``up``) or
    ``< level`` (not ``up``), assuming it is not so at x = 0; None if never.

    Terms with equal rates must be merged first. Single exponential: closed form.
    """
    changes = sign_changes(cs, mus, k - level, tol)
    return changes[0] if changes else None
