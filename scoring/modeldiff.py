"""What changed between two scoring models, for people: rules, fit, grades, BANT,
stages, decay and settings, from the models' TOML data.

Pure: it compares two parsed TOML documents (``tomllib.loads``) of models that load.
Each line says what a model owner would check before a rollout, and marks what the
migration of stored leads cannot carry over exactly (``scoring.migrate``).

>>> old = {"rules": [{"id": "r", "points": 10, "source": "web"}], "stages": []}
>>> new = {"rules": [{"id": "r", "points": 20, "source": "web"}], "stages": []}
>>> diff_models(old, new)
['rule r: points 10 -> 20 (stored leads rescaled exactly)']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["diff_models"]

#: Top-level settings compared one by one.
_SETTINGS = ("max_lateness", "dedup_max_ids", "reasons_top_n", "history_size")


def diff_models(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """One line per difference that changes scoring; empty when none does."""
    out: list[str] = []
    out += _rules(old.get("rules", []), new.get("rules", []))
    out += _decay(old.get("decay", {}), new.get("decay", {}))
    old_fit, new_fit = old.get("fit", {}), new.get("fit", {})
    out += _by_id("fit rule", old_fit.get("rules", []), new_fit.get("rules", []), _fit_rule)
    if old_fit.get("grades") != new_fit.get("grades"):
        out.append(
            f"grade bands: {old_fit.get('grades')} -> {new_fit.get('grades')} "
            "(grades recomputed from stored profiles)"
        )
    for key in sorted(set(old.get("bant", {})) | set(new.get("bant", {}))):
        before, after = old.get("bant", {}).get(key), new.get("bant", {}).get(key)
        if before != after:
            out.append(f"BANT {key}: {before} -> {after} (recomputed from stored profiles)")
    out += _stages(old.get("stages", []), new.get("stages", []))
    out += _sales(old, new)
    out += _by_id(
        "disqualifier", old.get("disqualifiers", []), new.get("disqualifiers", []), _plain
    )
    caps_old, caps_new = old.get("caps", {}), new.get("caps", {})
    out += [
        f"caps.{key}: {caps_old.get(key)} -> {caps_new.get(key)} (exact: applies at once)"
        for key in sorted(set(caps_old) | set(caps_new))
        if caps_old.get(key) != caps_new.get(key)
    ]
    bots_old, bots_new = old.get("bots", {}), new.get("bots", {})
    out += [
        f"bots.{key}: {bots_old.get(key)} -> {bots_new.get(key)} "
        "(NOT exact: applies to events from now on)"
        for key in sorted(set(bots_old) | set(bots_new))
        if bots_old.get(key) != bots_new.get(key)
    ]
    settings_old, settings_new = old.get("settings", {}), new.get("settings", {})
    for key in _SETTINGS:
        if settings_old.get(key) != settings_new.get(key):
            out.append(f"settings.{key}: {settings_old.get(key)} -> {settings_new.get(key)}")
    return out


def _rules(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    return _by_id("rule", old, new, _rule, added="starts from nothing: past events not replayed")


def _rule(rid: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    if before.get("points") != after.get("points"):
        exact = "rescaled exactly" if before.get("points") else "0 cannot be rescaled"
        out.append(
            f"rule {rid}: points {before.get('points')} -> {after.get('points')} "
            f"(stored leads {exact})"
        )
    if before.get("cap") != after.get("cap"):
        out.append(
            f"rule {rid}: cap {before.get('cap')} -> {after.get('cap')} "
            "(NOT exact: applies to events from now on)"
        )
    out += [
        f"rule {rid}: {key} changed (NOT exact: events already scored are not re-matched)"
        for key in ("match", "source", "sets", "category", "unless")
        if before.get(key) != after.get(key)
    ]
    return out


def _fit_rule(rid: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    if before == after:
        return []
    return [f"fit rule {rid}: changed (fit recomputed from stored profiles)"]


def _plain(rid: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [] if before == after else [f"disqualifier {rid}: changed"]


def _by_id(
    what: str,
    old: list[dict[str, Any]],
    new: list[dict[str, Any]],
    compare: Any,
    *,
    added: str = "",
) -> list[str]:
    before = {item.get("id"): item for item in old}
    after = {item.get("id"): item for item in new}
    note = f" ({added})" if added else ""
    out = [f"{what} {rid}: added{note}" for rid in sorted(after.keys() - before.keys(), key=str)]
    out += [
        f"{what} {rid}: removed (dropped from stored leads)"
        for rid in sorted(before.keys() - after.keys(), key=str)
    ]
    for rid in sorted(before.keys() & after.keys(), key=str):
        out += compare(rid, before[rid], after[rid])
    return out


def _decay(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [
        f"decay {source}: half-life {old.get(source)} -> {new.get(source)} "
        "(NOT exact: applies from each lead's latest event on)"
        for source in sorted(set(old) | set(new))
        if old.get(source) != new.get(source)
    ]


def _stages(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    out = []
    before = {s.get("name"): s for s in old}
    renamed = {o: s.get("name") for s in new for o in s.get("renamed_from", [])}
    for stage in new:
        name = stage.get("name")
        was = before.get(name)
        for old_name in stage.get("renamed_from", []):
            if old_name in before:
                out.append(f"stage {old_name} renamed to {name} (its leads keep their place)")
                was = before[old_name]
        if was is None:
            out.append(f"stage {name}: added")
            continue
        out += [
            f"stage {name}: {key} {was.get(key)} -> {stage.get(key)} (stored leads re-evaluated)"
            for key in ("entry", "exit", "owner")
            if was.get(key) != stage.get(key)
        ]
        out += _sla(f"stage {name}", was, stage)
    names = {s.get("name") for s in new}
    out += [
        f"stage {name}: removed (its leads evaluated from the bottom)"
        for name in before
        if name not in names and name not in renamed
    ]
    return out


def _sla(where: str, was: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    return [
        f"{where}: {key} {was.get(key)} -> {now.get(key)} (pending SLAs take the new deadline)"
        for key in ("sla", "sla_met_by")
        if was.get(key) != now.get(key)
    ]


def _sales(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``[[sales_stages]]`` and ``[outcomes]``: what outcomes do from now on."""
    out: list[str] = []
    before = {s.get("name"): s for s in old.get("sales_stages", [])}
    after = {s.get("name"): s for s in new.get("sales_stages", [])}
    for name, stage in after.items():
        if name not in before:
            out.append(f"sales stage {name}: added")
        else:
            out += _sla(f"sales stage {name}", before[name], stage)
    out += [
        f"sales stage {name}: removed (its leads evaluated from the bottom)"
        for name in before
        if name not in after
    ]
    moves_old, moves_new = old.get("outcomes", {}), new.get("outcomes", {})
    out += [
        f"outcomes.{key}: {moves_old.get(key)} -> {moves_new.get(key)} (outcomes from now on)"
        for key in sorted(set(moves_old) | set(moves_new))
        if moves_old.get(key) != moves_new.get(key)
    ]
    return out
