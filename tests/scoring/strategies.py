"""Hypothesis strategies shared by the scoring and storage tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Examples per property test (hypothesis max_examples).
EXAMPLES = 300

PATHS = ["/pricing", "/pricing/x", "/blog/a", "/careers", "/about"]
ACTIONS = ["click", "open", "unsubscribe", "delivered"]
#: Web dwell times: none reported, short (what bot patterns look at), long.
DWELLS = [None, 0.0, 0.5, 30.0]
ATTRS: dict[str, list[Any]] = {
    "seniority": ["vp", "manager", "c_level", "student"],
    "company_size": [5, 150, 2000],
    "budget_status": ["planned", "none"],
    "decision_role": ["decision_maker", "user"],
    "pain_identified": [True, False],
    "email_domain": ["acme.com", "gmail.com"],
    "phone": ["123"],
    "unsubscribed": [False],
}


@st.composite
def events(
    draw: Any, max_size: int = 25, positive_only: bool = False, lead: str = "L"
) -> list[dict[str, Any]]:
    """Events of every kind for the small test model (times 0-60 s), in any order."""
    n = draw(st.integers(1, max_size))
    out = []
    for i in range(n):
        t = draw(st.floats(0.0, 60.0, allow_nan=False).map(lambda x: round(x, 3)))
        kinds = (
            ["web", "email", "webinar"] if positive_only else ["web", "email", "webinar", "profile"]
        )
        kind = draw(st.sampled_from(kinds))
        ev: dict[str, Any] = {"event_id": f"e{i}", "lead_id": lead, "source": kind, "time": t}
        if kind == "web":
            paths = ["/pricing", "/blog/a"] if positive_only else PATHS
            ev["path"] = draw(st.sampled_from(paths))
            ev["url"] = "https://x" + ev["path"]
            dwell = draw(st.sampled_from(DWELLS))
            if dwell is not None:
                ev["duration_seconds"] = dwell
        elif kind == "email":
            ev["action"] = "click" if positive_only else draw(st.sampled_from(ACTIONS))
            ev["campaign_id"] = draw(st.sampled_from(["c", "d"]))
            if ev["action"] == "click":
                ev["link"] = draw(st.sampled_from(["/a", "/b", "/pricing"]))
        elif kind == "webinar":
            ev["action"] = "attended"
            ev["webinar_id"] = draw(st.sampled_from(["w", "v"]))
        else:
            keys = draw(
                st.lists(st.sampled_from(sorted(ATTRS)), min_size=1, max_size=4, unique=True)
            )
            ev["attributes"] = {k: draw(st.sampled_from(ATTRS[k])) for k in keys}
        out.append(ev)
    return out


#: Outcomes that reset no score (the others do, in the test models).
KEEPING_OUTCOMES = ["accepted", "contacted", "opportunity_created", "won"]
ALL_OUTCOMES = [*KEEPING_OUTCOMES, "rejected", "lost", "recycled"]


@st.composite
def events_with_outcomes(
    draw: Any, outcomes: list[str], max_outcomes: int = 5
) -> list[dict[str, Any]]:
    """``events()`` with 1 to ``max_outcomes`` CRM outcomes (times 0-60 s) mixed in."""
    evs: list[dict[str, Any]] = draw(events())
    for i in range(draw(st.integers(1, max_outcomes))):
        t = draw(st.floats(0.0, 60.0, allow_nan=False).map(lambda x: round(x, 3)))
        kind = draw(st.sampled_from(outcomes))
        reason = draw(st.sampled_from(["bad timing", "resubscribed"]))
        evs.append(
            {
                "event_id": f"o{i}",
                "lead_id": "L",
                "source": "outcome",
                "time": t,
                "outcome": kind,
                "reason": reason,
            }
        )
    return evs
