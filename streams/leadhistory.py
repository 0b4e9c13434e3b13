"""A lead's history for people: the body of ``GET /leads/{id}/history`` and the same
printed for a terminal (``leadstream lead ID``).

The history itself is kept by scoring (``scoring.history``): per lead, the model's
``history_size`` latest entries (50 in the default model) of scored and filtered
events and stage changes, each with the points it added or took away and the rules
why. This module only formats it: times as RFC 3339, points to 0.01.

>>> from scoring import LeadState, apply, load_default_model
>>> m = load_default_model()
>>> ev = {"event_id": "wv-1", "lead_id": "L1", "source": "web", "time": 1_800_000_000.0,
...       "url": "https://x/pricing", "path": "/pricing"}
>>> s, _ = apply(LeadState("L1"), ev, m)
>>> print(render(history_body(s, m, 1_800_000_000.0)))   # doctest: +NORMALIZE_WHITESPACE
lead L1: cold, score 10.00, grade D (model leadstream-default 2.0.0)
1 entry, at most 50 kept; 0 events filtered as bots
2027-01-15 08:00:00Z  +10.00  web      wv-1  Viewed the pricing page +10.00
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from typing import Any

import orjson

from scoring import LeadState, ScoringModel, snapshot
from scoring.history import entries
from streams.core.contract import POINT_DECIMALS, format_time

__all__ = ["fetch_history", "history_body", "render"]


def _points(value: float) -> float:
    return round(value, POINT_DECIMALS)


def _entry(e: dict[str, Any]) -> dict[str, Any]:
    out = dict(e, at=format_time(e["at"]))
    for key in ("points", "score"):
        if isinstance(out.get(key), float):
            out[key] = _points(out[key])
    if "rules" in out:
        out["rules"] = [dict(r, points=_points(r["points"])) for r in out["rules"]]
    return out


def history_body(state: LeadState, model: ScoringModel, now: float) -> dict[str, Any]:
    """What ``GET /leads/{id}/history`` answers: the lead as of ``now`` and its
    history, oldest first."""
    snap = snapshot(state, model, now)
    kept = entries(state, model)
    return {
        "lead_id": state.lead_id,
        "stage": snap["stage"],
        "score": _points(snap["score"]),
        "grade": snap["grade"],
        "bots_filtered": state.bots_filtered,
        "history_size": model.history_size,
        "model_id": model.id,
        "model_version": model.version,
        "entries": [_entry(e) for e in kept],
    }


def _when(at: str) -> str:
    return at.replace("T", " ")[:19] + "Z"


def _rules(rules: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['description']} {r['points']:+.2f}" for r in rules)


def _line(e: dict[str, Any]) -> str:
    when = _when(e["at"])
    kind = e["kind"]
    if kind == "event":
        rules = _rules(e["rules"])
        return f"{when}  {e['points']:+7.2f}  {e['source']:<7}  {e['event_id']}  {rules}"
    if kind == "bot":
        what = f"filtered as a bot ({e['reason']})"
        return f"{when}  {'bot':>7}  {e['source']:<7}  {e['event_id']}  {what}"
    if kind == "retracted":
        taken = _rules(e["rules"]) or "nothing had counted"
        what = f"taken back, a bot's ({e['reason']}): {taken}"
        return f"{when}  {e['points']:+7.2f}  {'':<7}  {e['event_id']}  {what}"
    trigger = f" by {e['trigger_event_id']}" if e.get("trigger_event_id") else ""
    change = f"stage {e['from_stage']} -> {e['to_stage']} ({e['cause']}{trigger})"
    return f"{when}  {'':>7}  {'':<7}  {change}, score {e['score']:.2f}"


def render(body: dict[str, Any]) -> str:
    """The history as lines of text, oldest first, for a terminal."""
    n = len(body["entries"])
    head = (
        f"lead {body['lead_id']}: {body['stage']}, score {body['score']:.2f}, grade "
        f"{body['grade']} (model {body['model_id']} {body['model_version']})\n"
        f"{n} entr{'y' if n == 1 else 'ies'}, at most {body['history_size']} kept; "
        f"{body['bots_filtered']} events filtered as bots"
    )
    return "\n".join([head, *(_line(e) for e in body["entries"])])


def fetch_history(
    base_url: str, lead_id: str, token: str | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """``GET {base_url}/leads/{lead_id}/history`` (with the API's bearer token, if
    any); the parsed body. Raises ``urllib.error.HTTPError`` (404: unknown lead,
    401: token missing or wrong) or ``URLError``."""
    url = f"{base_url.rstrip('/')}/leads/{urllib.parse.quote(lead_id, safe='')}/history"
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: dict[str, Any] = orjson.loads(response.read())
    return body
