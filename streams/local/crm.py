"""What a CRM sync would publish on ``lead.outcomes`` for the demo's leads.

Pure, like :mod:`streams.local.workload`: the caller passes the stage changes it saw on
``lead.qualified`` and the time. Each lead that reaches SQL gets a sales journey, planned
at once from ``(seed, lead, journey number)`` alone, so the same stage changes give the
same outcomes (ids, times, reasons) whatever order the leads' changes come in:

- after a short simulated delay, ``accepted`` or ``rejected`` (with a reason);
- when accepted, often ``contacted``, then for some an ``opportunity_created`` (amount,
  opportunity id) closed ``won`` or ``lost`` (with a reason) later on;
- ``recycled`` for some rejected, stalled or lost leads, as sales hands them back.

How likely each step is depends on the grade the lead reached SQL with: A converts
better than B, B than C, C than D. Delays are a demo's seconds, not a sales team's
days (``delay_scale`` stretches them). Bounded: at most ``max_leads`` leads are
remembered, each gets at most ``max_journeys`` journeys (a recycled lead may qualify
again), and only one at a time.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import orjson

from streams.core.contract import format_time

#: Probability of each step by grade at SQL entry (an unknown grade counts as C).
ACCEPT: Final = {"A": 0.85, "B": 0.7, "C": 0.45, "D": 0.25}
OPPORTUNITY: Final = {"A": 0.65, "B": 0.45, "C": 0.25, "D": 0.1}
WIN: Final = {"A": 0.55, "B": 0.4, "C": 0.25, "D": 0.15}
#: An accepted lead is contacted before anything else happens (most are).
CONTACTED: Final = 0.8
#: Sales hands back: a rejected lead, an accepted one with no opportunity, a lost deal.
RECYCLE: Final = {"rejected": 0.5, "stalled": 0.6, "lost": 0.4}
REJECT_REASONS: Final = (
    "no budget",
    "bad timing",
    "not a decision maker",
    "not a fit",
    "already talking to us",
)
LOSS_REASONS: Final = ("competitor", "price", "no decision", "timing")
#: Seconds (least, most) before each step, at ``delay_scale`` 1.
DELAYS: Final = {
    "decision": (2.0, 8.0),
    "contact": (1.0, 4.0),
    "opportunity": (3.0, 10.0),
    "close": (5.0, 20.0),
    "recycle": (2.0, 6.0),
}
#: The deal sizes, by grade (currency units).
AMOUNTS: Final = {"A": (20_000, 120_000), "B": (10_000, 60_000), "C": (5_000, 30_000)}


class Step(NamedTuple):
    """One outcome of a journey, ``after`` seconds after the lead's SQL entry."""

    after: float
    outcome: str
    fields: dict[str, Any]


class OutcomeMessage(NamedTuple):
    """A message for ``lead.outcomes``, due at ``due`` (its ``occurred_at``)."""

    due: float
    lead_id: str
    outcome: str
    value: bytes


def plan(
    seed: int, lead_id: str, grade: str, journey: int = 1, delay_scale: float = 1.0
) -> list[Step]:
    """The outcomes sales would publish for a lead that reached SQL with ``grade``."""
    rng = random.Random(f"{seed}:{lead_id}:{journey}")
    grade = grade if grade in ACCEPT else "C"

    def wait(kind: str) -> float:
        low, high = DELAYS[kind]
        return round(rng.uniform(low, high) * delay_scale, 3)

    at = wait("decision")
    if rng.random() >= ACCEPT[grade]:
        steps = [Step(at, "rejected", {"reason": rng.choice(REJECT_REASONS)})]
        if rng.random() < RECYCLE["rejected"]:
            steps.append(Step(at + wait("recycle"), "recycled", {"reason": "back to nurture"}))
        return steps
    owner = f"rep-{rng.randrange(1, 9):02d}"
    steps = [Step(at, "accepted", {"owner": owner})]
    if rng.random() < CONTACTED:
        at += wait("contact")
        steps.append(Step(at, "contacted", {"owner": owner}))
    if rng.random() >= OPPORTUNITY[grade]:
        if rng.random() < RECYCLE["stalled"]:
            steps.append(Step(at + wait("recycle"), "recycled", {"reason": "not ready yet"}))
        return steps
    return steps + _deal(rng, lead_id, grade, journey, at + wait("opportunity"), wait)


def _deal(
    rng: random.Random,
    lead_id: str,
    grade: str,
    journey: int,
    at: float,
    wait: Callable[[str], float],
) -> list[Step]:
    """An opportunity, closed won or lost (and a lost one perhaps handed back)."""
    low, high = AMOUNTS.get(grade, (2_000, 15_000))
    deal = {
        "opportunity_id": f"opp-{lead_id}-{journey}",
        "amount": float(rng.randrange(low, high, 500)),
        "currency": "USD",
    }
    steps = [Step(at, "opportunity_created", deal)]
    at += wait("close")
    if rng.random() < WIN[grade]:
        return [*steps, Step(at, "won", deal)]
    steps.append(Step(at, "lost", {**deal, "reason": rng.choice(LOSS_REASONS)}))
    if rng.random() < RECYCLE["lost"]:
        steps.append(Step(at + wait("recycle"), "recycled", {"reason": "lost deal, nurture"}))
    return steps


@dataclass(slots=True)
class CrmSync:
    """Follows stage changes, and says which outcomes are due when. Pure."""

    seed: int
    delay_scale: float = 1.0
    sql_stage: str = "sql"
    max_leads: int = 10_000
    max_journeys: int = 3
    #: Leads it remembers -> journeys started.
    journeys: dict[str, int] = field(default_factory=dict)
    #: Stage changes into SQL not followed (a journey under way, or a bound reached).
    ignored: int = 0
    _queue: list[tuple[float, int, OutcomeMessage]] = field(default_factory=list)
    _order: int = 0
    #: Lead -> outcomes of its journey not yet due.
    _open: dict[str, int] = field(default_factory=dict)

    def observe(self, change: Any, now: float) -> int:
        """Take one ``lead.qualified`` message (parsed); the outcomes it scheduled."""
        if not isinstance(change, Mapping) or not self._starts_journey(change):
            return 0
        lead, grade = change["lead_id"], change.get("grade")
        journey = self.journeys.get(lead, 0) + 1
        if self._open.get(lead) or journey > self.max_journeys:
            self.ignored += 1
            return 0
        if lead not in self.journeys and len(self.journeys) >= self.max_leads:
            self.ignored += 1
            return 0
        self.journeys[lead] = journey
        steps = plan(self.seed, lead, str(grade), journey, self.delay_scale)
        for n, step in enumerate(steps):
            message = self._message(lead, journey, n, now + step.after, step)
            heapq.heappush(self._queue, (message.due, self._order, message))
            self._order += 1
        self._open[lead] = len(steps)
        return len(steps)

    def _starts_journey(self, change: Mapping[str, Any]) -> bool:
        # A lead moved down into SQL (out of a stage sales own) is not handed over again.
        return (
            change.get("to_stage") == self.sql_stage
            and change.get("direction") == "up"
            and type(change.get("lead_id")) is str
        )

    def _message(self, lead: str, journey: int, n: int, due: float, step: Step) -> OutcomeMessage:
        value = {
            "event_id": f"crm-{self.seed:08x}-{lead}-{journey}-{n}",
            "lead_id": lead,
            "occurred_at": format_time(due),
            "outcome": step.outcome,
            **step.fields,
        }
        return OutcomeMessage(due, lead, step.outcome, orjson.dumps(value))

    def due(self, now: float) -> list[OutcomeMessage]:
        """The outcomes due at ``now``, oldest first (each once)."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            message = heapq.heappop(self._queue)[2]
            self._open[message.lead_id] -= 1
            if not self._open[message.lead_id]:
                del self._open[message.lead_id]
            out.append(message)
        return out

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    @property
    def pending(self) -> int:
        return len(self._queue)
