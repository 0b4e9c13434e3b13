"""The worker's decisions about one input record, in one place.

:class:`streams.core.pipeline.Pipeline` handles a record with these and keeps its
batch's bookkeeping (metrics, dead letters, reroutes, the states it wrote) around
them; ``streams.modelpreview.replay`` replays recorded input with the same calls and
none of that bookkeeping, decoding each record once for both of its models. Each step
is here once so that the preview cannot drift from what the worker does:

1. :func:`decode`: bytes to a validated event, or :class:`~streams.core.contract.Rejected`
   with the dead-letter reason;
2. (the caller) a record on the wrong partition for its lead is rerouted;
3. :meth:`RecordScorer.score`: a position the lead has applied already is a replay;
   a profile event that would take the lead past :data:`MAX_PROFILE_ATTRIBUTES` is a
   dead letter (:data:`STATE_LIMIT`); a known crawler's event is marked
   (``streams.core.bots``); ``scoring.apply``, the position recorded; the outcome:
   late, bot, duplicate or scored.

An exception out of :meth:`RecordScorer.score` is the caller's to dead-letter
(``processing_error``); the state keeps what the engine changed in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from scoring import LeadState, ScoringModel, Transition, apply
from streams.core import contract
from streams.core.bots import SOURCES as MARKED_SOURCES
from streams.core.bots import BotMarker, for_model

__all__ = [
    "BOT",
    "DUPLICATE",
    "LATE",
    "MAX_PROFILE_ATTRIBUTES",
    "REPLAYED",
    "SCORED",
    "STATE_LIMIT",
    "STATE_LIMIT_DETAIL",
    "RecordScorer",
    "decode",
    "profile_overflows",
]

#: Distinct profile attributes one lead keeps; a profile event that would add more is
#: a dead letter (state_limit). With the schema's bounds per value, this keeps a
#: state's profile under ~250 KB, far below what the changelog accepts.
MAX_PROFILE_ATTRIBUTES: Final = 200

# What became of a record given to RecordScorer.score. All but STATE_LIMIT are the
# outcome label of ``leadstream_events_total``; STATE_LIMIT is a dead-letter reason.
REPLAYED: Final = "replayed"
STATE_LIMIT: Final = "state_limit"
LATE: Final = "late"
BOT: Final = "bot"
DUPLICATE: Final = "duplicate"
SCORED: Final = "scored"
#: The ``leadstream.dlq.error`` of a STATE_LIMIT dead letter.
STATE_LIMIT_DETAIL: Final = f"more than {MAX_PROFILE_ATTRIBUTES} attributes"

#: What a replayed or refused record caused: shared, never to be appended to.
_NO_TRANSITIONS: Final[list[Transition]] = []

ApplyEvent = Callable[
    [LeadState, Mapping[str, Any], ScoringModel], tuple[LeadState, list[Transition]]
]


def decode(kind: str, value: bytes, now: float, max_future_skew_s: float) -> dict[str, Any]:
    """The validated event of an input record of ``kind`` handled at ``now``.

    Raises :class:`~streams.core.contract.Rejected` with the dead-letter reason.
    """
    # Positional parameters: a call by keyword takes CPython 3.11's slow path into a
    # frame, and this runs once per record.
    if kind not in contract.SOURCE_KINDS:
        # Only a repartition record leadstream did not write lacks its kind.
        raise contract.Rejected("invalid_internal_record", "no leadstream.kind header")
    return contract.decode_event(kind, value, now=now, max_future_skew_s=max_future_skew_s)


def profile_overflows(state: LeadState, event: Mapping[str, Any]) -> bool:
    """Whether a profile event would take the lead past MAX_PROFILE_ATTRIBUTES."""
    profile = state.profile
    attributes = event.get("attributes") or {}
    added = sum(1 for name in attributes if name not in profile)
    return added > 0 and len(profile) + added > MAX_PROFILE_ATTRIBUTES


class RecordScorer:
    """Scores decoded events under one model: step 3 of the module's list."""

    __slots__ = ("marker", "model", "shared_events")

    def __init__(
        self,
        model: ScoringModel,
        *,
        bot_marker: BotMarker | None = None,
        shared_events: bool = False,
    ) -> None:
        self.model = model
        #: Marks events whose user agent is a known crawler's, when the model asks
        #: (``[bots] known_user_agents``); scoring filters what it marks.
        self.marker = bot_marker if bot_marker is not None else for_model(model)
        #: The events are scored by other scorers too (a preview's two models): a
        #: mark goes on a copy, so that a model that does not mark gets the event as
        #: decoded. The worker's events are its own, marked in place.
        self.shared_events = shared_events

    def score(
        self,
        state: LeadState,
        event: dict[str, Any],
        kind: str,
        source: str,
        position: int,
        apply_event: ApplyEvent = apply,
    ) -> tuple[str, LeadState, list[Transition]]:
        """What becomes of ``event`` of ``kind``, read at ``source`` (``topic:partition``)
        and ``position``, for the lead's ``state``: (what became of it, the state, the
        stage changes it caused). ``state.filtered`` then names the bots it filtered.

        ``apply_event`` is ``scoring.apply``; the worker passes the one its module
        imported, where its tests inject a failure while scoring.
        """
        if position <= state.applied.get(source, -1):
            # Applied before a crash or rebalance, and stored with the state.
            return REPLAYED, state, _NO_TRANSITIONS
        if kind == "profile" and profile_overflows(state, event):
            return STATE_LIMIT, state, _NO_TRANSITIONS
        marker = self.marker
        if marker is not None and kind in MARKED_SOURCES:
            if self.shared_events:
                event = _marked_copy(marker, event)
            else:
                marker.mark(event)
        seen_before = state.events_seen
        late_before = state.late_dropped
        state, transitions = apply_event(state, event, self.model)
        state.applied[source] = position
        if state.late_dropped != late_before:
            return LATE, state, transitions
        if state.filtered_self:
            return BOT, state, transitions
        if state.events_seen == seen_before:
            return DUPLICATE, state, transitions
        return SCORED, state, transitions


def _marked_copy(marker: BotMarker, event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as scoring must get it: a marked copy if its user agent is a known
    crawler's, else the event itself (copied only when it has a user agent to match)."""
    if not event.get("user_agent"):
        return event
    marked = dict(event)
    return marked if marker.mark(marked) else event
