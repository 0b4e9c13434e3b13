"""The stored-state format: one home for how a lead's state becomes bytes and back.

Every writer of lead states goes through :func:`encode_state` (the worker's
write-behind window, the bench) and every reader through :func:`decode_state` or
:func:`due_from_raw` (the worker's loads, the lead view, the decay schedule rebuilt
after a rebalance). Faust's recovery and the changelog preload copy these bytes
verbatim and never parse them.

The contract (tested in ``tests/core/test_statecodec.py``):

- a value is ``orjson.dumps(LeadState.to_dict())``: one JSON object, no whitespace,
  with the key order of ``to_dict`` (``"v"`` first: the state's schema version,
  :data:`scoring.state.SCHEMA_VERSION`); ``decode_state`` reads every version
  ``LeadState.from_dict`` reads;
- ``"model"`` holds the fingerprint of the model the state was scored under; a state
  of another model is migrated (``scoring.migrate``) before it is read;
- the object **ends** with exactly ``"next_change":<number|null>,"next_change_up":
  <bool>,"next_change_valid":<bool>}``: the next stage change by decay alone, cached
  when the state was written. :func:`due_from_raw` reads it off the last bytes, so
  rebuilding the decay schedule of a million leads needs no full decode. If
  ``to_dict`` ever reorders or renames those keys, ``due_from_raw`` answers
  :data:`NOT_CACHED` (correct, only slower) and the tests fail;
- the key of a state is its ``lead_id`` in UTF-8; its partition is
  ``murmur2(key) % partitions`` (:mod:`streams.core.partitioning`).

>>> from scoring import LeadState
>>> raw = encode_state(LeadState("lead-1"))
>>> raw.startswith(b'{"v":')  # the format's version first
True
>>> decode_state(raw).lead_id
'lead-1'
"""

from __future__ import annotations

import enum
import re
from typing import Final, Literal

import orjson

from scoring import LeadState, ScoringModel, next_change_at

__all__ = [
    "NOT_CACHED",
    "decode_state",
    "due_from_raw",
    "encode_state",
    "next_change_from_raw",
]


def encode_state(state: LeadState) -> bytes:
    """``orjson.dumps(state.to_dict())``, byte for byte, without copying the state."""
    return orjson.dumps(state.to_dict_view(), option=orjson.OPT_NON_STR_KEYS)


def decode_state(raw: bytes) -> LeadState:
    return LeadState.from_dict(orjson.loads(raw))


class _NotCached(enum.Enum):
    NOT_CACHED = "NOT_CACHED"


#: :func:`due_from_raw` could not read a cached time: decode the state instead.
NOT_CACHED: Final = _NotCached.NOT_CACHED

#: ``LeadState.to_dict()`` ends with these three keys, in this order; orjson writes
#: them without spaces. The number is JSON's grammar (orjson writes no NaN/inf: those
#: become ``null``, which the full decode reads as None too).
_CACHED_TAIL = re.compile(
    rb'"next_change":(null|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)'
    rb',"next_change_up":(?:true|false),"next_change_valid":true}\Z'
)
#: Longest tail the pattern can match (key, a 25-byte number, the two flags), rounded up:
#: searching only there keeps a call O(1) whatever the state's size.
_TAIL_WINDOW = 100


def due_from_raw(raw: bytes) -> float | Literal[_NotCached.NOT_CACHED] | None:
    """The cached next-change time in a stored state, without decoding it.

    ``raw`` is ``orjson.dumps(LeadState.to_dict())``. When its ``next_change_valid``
    is true, returns its ``next_change`` (a float, or None: decay never changes the
    stage), which is what ``next_change_at(decode_state(raw), model)`` returns then.
    Otherwise, or when the bytes do not end in that shape, returns :data:`NOT_CACHED`.

    >>> due_from_raw(b'{"next_change":1.5,"next_change_up":false,"next_change_valid":true}')
    1.5
    >>> due_from_raw(b'{"next_change":null,"next_change_up":false,"next_change_valid":true}')
    >>> due_from_raw(b'{"next_change":null,"next_change_up":false,"next_change_valid":false}')
    <_NotCached.NOT_CACHED: 'NOT_CACHED'>
    """
    match = _CACHED_TAIL.search(raw, max(0, len(raw) - _TAIL_WINDOW))
    if match is None:
        return NOT_CACHED
    token = match.group(1)
    return None if token == b"null" else float(token)


#: What :func:`next_change_from_raw` answers for a state of another model: due at once,
#: so a tick reads it, migrates it and publishes what the model change changed.
DUE_NOW = 0.0


def next_change_from_raw(raw: bytes, model: ScoringModel) -> float | None:
    """``next_change_at(decode_state(raw), model)``, decoding only when not cached.

    A state scored under another model (its ``"model"`` is not this one's
    fingerprint) is :data:`DUE_NOW`: its cached time is the old model's.
    """
    if b'"model":"%s"' % model.fingerprint.encode() not in raw:
        return DUE_NOW
    due = due_from_raw(raw)
    if due is NOT_CACHED:
        return next_change_at(decode_state(raw), model)
    return due
