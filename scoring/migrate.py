"""Carrying a lead's state over to an edited scoring model.

Every state records the fingerprint of the model it was scored under
(``LeadState.model``) and the points each of its rules had then
(``LeadState.rule_points``). :func:`migrate` brings a state scored under another
model to ``model`` before anything reads it:

- **Rules.** A rule's accumulated contribution is a decayed sum of its points, so it
  is linear in them: a rule whose points changed is rescaled by new / old, exactly.
  A rule the model no longer has is dropped (with its cap windows); a new rule starts
  from nothing: events scored before it existed are not replayed. Category sums (the
  breakdown) are rebuilt from the rules.
- **Profile.** Fit score, grade, BANT and the disqualifier are recomputed from the
  stored profile: exact.
- **Group and total caps** hold points as they are read, so an edited cap applies to
  every lead at once, exactly. The lead's history and bot patterns are kept; an entry
  naming a removed rule reads as its id, and a retraction skips it (its points went
  with it).
- **Stage.** Re-evaluated at ``now`` under the new thresholds by the engine's own
  rules (as after a profile change), from the lead's stage or the stage that took
  its name over (``renamed_from``), with the model's hysteresis; a stage the model no
  longer knows is evaluated from the bottom. A change is a transition with cause
  ``model_change`` and an id deterministic in the lead, the stages and the model's
  fingerprint: re-done after a crash, it is the same message. A renamed stage's
  transition names the stage by its new name.
- **The sales loop.** A lead in a stage the new model gives to sales stays in it; a
  lead in a ``[[sales_stages]]`` stage the new model no longer has is evaluated from
  the bottom. A pending follow-up SLA takes the new model's deadline from the lead's
  entry into the stage (none if the stage has no SLA any more); an SLA already met or
  breached stays so. Stage entry times and score resets are kept; the contributions a
  late reset leaves out (``LeadState.contributions``) go as their rules' points do.
- **Not exact, and how it is handled:** a changed half-life applies from each
  accumulator's anchor (the lead's latest event) on: what decayed before stays
  decayed at the old rate. A changed cap applies to events from now on; events
  already counted stay counted (a cap changed from a time window to a field's values,
  or back, starts empty). A rule whose old points were 0 cannot be rescaled
  and stays 0 until its next event. A state from before states recorded their model
  (``model`` "") is taken as scored under ``model``.

Pure: no I/O, ``now`` is an argument. Never raises for a state the engine wrote.
Example: ``tests/scoring/test_migrate.py`` scores events under one model, migrates
to another and compares with the same events scored under the second.
"""

from __future__ import annotations

from scoring.engine import Transition, _accumulate, _recompute_profile, _settle
from scoring.model import Rule, ScoringModel
from scoring.state import LeadState

__all__ = ["migrate"]


def migrate(state: LeadState, model: ScoringModel, now: float) -> list[Transition]:
    """Bring ``state`` (mutated) to ``model``; the stage change it causes, if any."""
    if state.model == model.fingerprint:
        return []
    if not state.model:
        # Scored before states recorded their model: nothing to compare with.
        state.model = model.fingerprint
        for rid in state.rules:
            rule = model.rule_by_id.get(rid)
            if isinstance(rule, Rule):
                state.rule_points.setdefault(rid, rule.points)
        return []
    _migrate_rules(state, model)
    if state.profile:  # as the engine: fit and grade are computed once there is one
        _recompute_profile(state, model)
    state.model = model.fingerprint
    state.nc_valid = False
    state.b_valid = False
    if not state.stage:
        return []  # never scored: nothing to re-evaluate
    return _migrate_stage(state, model, max(now, state._clock))


def _migrate_rules(state: LeadState, model: ScoringModel) -> None:
    rules = state.rules
    scales: dict[str, float] = {}
    for rid in list(rules):
        rule = model.rule_by_id.get(rid)
        if not isinstance(rule, Rule):  # removed (or now a fit rule's id)
            del rules[rid]
            state.rule_points.pop(rid, None)
            continue
        old = state.rule_points.get(rid, rule.points)
        scales[rid] = rule.points / old if old != rule.points and old != 0.0 else 1.0
        rules[rid][0] *= scales[rid]
        state.rule_points[rid] = rule.points
    # Contributions go as their rules' points do (all of them under a model that
    # resets no score: nothing reads them there).
    log = state.contributions
    kept: list[object] = []
    if model.has_resets:
        for i in range(0, len(log), 3):
            scale = scales.get(log[i + 1])
            if scale is not None:
                kept.extend((log[i], log[i + 1], log[i + 2] * scale))
    state.contributions = kept
    for rid in [r for r in state.rule_points if r not in rules]:
        del state.rule_points[rid]
    # Cap windows of a rule that no longer has that kind of cap go; the others stay
    # (a changed cap applies to events from now on).
    for rid in list(state.caps):
        rule = model.rule_by_id.get(rid)
        if not isinstance(rule, Rule) or not rule.cap_count or rule.cap_by is not None:
            del state.caps[rid]
    for rid in list(state.caps_by):
        rule = model.rule_by_id.get(rid)
        if not isinstance(rule, Rule) or not rule.cap_count or rule.cap_by is None:
            del state.caps_by[rid]
    # A category's sum is the sum of its rules' (each added at its own anchor).
    categories: dict[str, list[float]] = {}
    for rid, (value, anchor) in rules.items():
        rule = model.rule_by_id[rid]
        assert isinstance(rule, Rule)
        _accumulate(categories, rule.category, value, anchor, rule.rate)
    state.categories = categories


def _migrate_stage(state: LeadState, model: ScoringModel, at: float) -> list[Transition]:
    # A renamed stage's leads stay in it under its new name; then the engine's own
    # evaluation, as after a profile change (disqualifiers, forced stages, a stage
    # the model no longer knows evaluated from the bottom).
    state.stage = model.renamed_stages.get(state.stage, state.stage)
    key = f"model:{model.fingerprint}"
    change = _settle(state, model, at, "model_change", None, True, key=key)
    if change is None:
        _migrate_sla(state, model)
    return [] if change is None else [change]


def _migrate_sla(state: LeadState, model: ScoringModel) -> None:
    """A pending SLA of a lead that stays in its stage, under the new model's terms
    (a stage change set the new stage's own already)."""
    if state.sla_due is None:
        return
    st = model.stage_by_name.get(state.stage)
    since = state.entered.get(state.stage)
    state.sla_due = since + st.sla if st is not None and st.sla and since is not None else None
