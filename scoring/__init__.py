"""leadstream's scoring domain: a declarative model, per-lead state, pure transitions.

No Kafka, Faust, asyncio, clock or I/O here (except reading a model file): callers pass
every time. ``apply``/``advance`` take ownership of the state and return it mutated.
"""

from scoring.engine import Transition, advance, apply, restate, snapshot
from scoring.model import ModelError, ScoringModel
from scoring.modelfile import load_default_model, load_model, load_model_text
from scoring.nextchange import next_change_at, next_change_by
from scoring.state import LeadState

__all__ = [
    "LeadState",
    "ModelError",
    "ScoringModel",
    "Transition",
    "advance",
    "apply",
    "load_default_model",
    "load_model",
    "load_model_text",
    "next_change_at",
    "next_change_by",
    "restate",
    "snapshot",
]
