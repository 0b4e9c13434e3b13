"""Throughput of ``scoring.apply`` with the default model, on one core.

    .venv/bin/python bench/bench_scoring.py [--events N] [--leads N] [--runs N]

Generates a realistic mix (~70% web, 20% email, 10% webinar, a few profile updates)
over ~10k leads with Zipf-like activity and time moving forward with some jitter,
then times ``apply`` over it (fresh states each run; best of several runs), and the
same loop doing a trivial dict increment per event, as a floor for Python's own
per-event cost. Prints rates and their ratio; it passes no verdict, since the
machine's speed moves through the day (the ratio moves much less).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring import LeadState, apply, load_default_model, next_change_at

WEB_PATHS = [
    ("/", 20),
    ("/blog/how-to-score-leads", 18),
    ("/blog/decay-explained", 10),
    ("/product/overview", 12),
    ("/features/scoring", 8),
    ("/pricing", 7),
    ("/pricing/enterprise", 3),
    ("/docs/getting-started", 6),
    ("/customers/acme", 4),
    ("/about", 4),
    ("/careers", 2),
    ("/demo", 2),
    ("/contact", 2),
    ("/legal/privacy", 2),
]
EMAIL_ACTIONS = [
    ("delivered", 40),
    ("open", 35),
    ("click", 15),
    ("bounce", 4),
    ("unsubscribe", 1),
    ("spam_report", 0.2),
]
WEBINAR_ACTIONS = [("registered", 40), ("attended", 30), ("no_show", 20), ("question", 10)]


def _weighted(pairs: Sequence[tuple[str, float]]) -> tuple[list[str], list[float]]:
    return [p for p, _ in pairs], [w for _, w in pairs]


def generate(n_events: int, n_leads: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    leads = [f"lead-{i:05d}" for i in range(n_leads)]
    lead_weights = [1.0 / (rank + 1) ** 0.9 for rank in range(n_leads)]  # Zipf-ish
    lead_of = rng.choices(leads, lead_weights, k=n_events)
    paths, pw = _weighted(WEB_PATHS)
    eacts, ew = _weighted(EMAIL_ACTIONS)
    wacts, ww = _weighted(WEBINAR_ACTIONS)
    t0 = 1_700_000_000.0
    span = 14 * 86400.0  # two weeks of traffic
    events: list[dict[str, Any]] = []
    for i, lead in enumerate(lead_of):
        t = t0 + span * i / n_events + rng.uniform(-120.0, 5.0)  # slightly out of order
        r = rng.random()
        eid = f"ev-{i:08d}"
        if r < 0.70:
            path = rng.choices(paths, pw)[0]
            events.append(
                {
                    "event_id": eid,
                    "lead_id": lead,
                    "source": "web",
                    "time": t,
                    "url": "https://example.com" + path,
                    "path": path,
                    "duration_seconds": rng.choice((5, 20, 45, 90, 150, 300)),
                }
            )
        elif r < 0.90:
            action = rng.choices(eacts, ew)[0]
            ev: dict[str, Any] = {
                "event_id": eid,
                "lead_id": lead,
                "source": "email",
                "time": t,
                "action": action,
                "campaign_id": f"c{rng.randrange(20)}",
            }
            if action == "click":
                ev["link"] = rng.choice(("https://example.com/pricing", "https://example.com/blog"))
            if action == "bounce":
                ev["bounce_type"] = rng.choice(("hard", "soft", "soft"))
            events.append(ev)
        elif r < 0.995:
            action = rng.choices(wacts, ww)[0]
            ev = {
                "event_id": eid,
                "lead_id": lead,
                "source": "webinar",
                "time": t,
                "action": action,
                "webinar_id": f"w{rng.randrange(5)}",
            }
            if action == "attended":
                ev["minutes_attended"] = rng.choice((10, 25, 40, 55))
            events.append(ev)
        else:
            events.append(
                {
                    "event_id": eid,
                    "lead_id": lead,
                    "source": "profile",
                    "time": t,
                    "attributes": {
                        "seniority": rng.choice(("vp", "director", "manager", "c_level")),
                        "company_size": rng.choice((20, 150, 800, 12000)),
                        "industry": rng.choice(("software", "retail", "financial_services")),
                        "country": rng.choice(("US", "DE", "BR")),
                        "budget_status": rng.choice(("unknown", "planned", "approved")),
                        "decision_role": rng.choice(("user", "influencer", "decision_maker")),
                        "pain_identified": rng.random() < 0.5,
                        "purchase_timeline": rng.choice(("within_3_months", "over_12_months")),
                    },
                }
            )
    return events


def run_apply(events: list[dict[str, Any]]) -> tuple[float, int, dict[str, LeadState]]:
    model = load_default_model()
    states: dict[str, LeadState] = {}
    n_transitions = 0
    get = states.get
    new = LeadState
    start = time.perf_counter()
    for ev in events:
        lead = ev["lead_id"]
        state = get(lead)
        if state is None:
            state = new(lead)
        state, transitions = apply(state, ev, model)
        states[lead] = state
        n_transitions += len(transitions)
    return time.perf_counter() - start, n_transitions, states


def run_baseline(events: list[dict[str, Any]]) -> float:
    counts: dict[str, int] = {}
    get = counts.get
    start = time.perf_counter()
    for ev in events:
        lead = ev["lead_id"]
        counts[lead] = get(lead, 0) + 1
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--leads", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    events = generate(args.events, args.leads)
    n = len(events)
    best_apply = min(run_apply(events)[0] for _ in range(args.runs))
    _, n_transitions, states = run_apply(events)
    best_base = min(run_baseline(events) for _ in range(args.runs))
    model = load_default_model()
    start = time.perf_counter()
    for state in states.values():
        state.nc_valid = False
        next_change_at(state, model)
    nc_time = time.perf_counter() - start
    stages: dict[str, int] = {}
    for state in states.values():
        stages[state.stage] = stages.get(state.stage, 0) + 1
    apply_rate = n / best_apply
    base_rate = n / best_base
    print(f"events: {n:,} over {len(states):,} leads; transitions: {n_transitions:,}")
    print(f"stages at the end: {dict(sorted(stages.items()))}")
    print(
        f"apply:    {apply_rate:12,.0f} events/s  ({1e6 / apply_rate:.2f} us/event, "
        f"best of {args.runs})"
    )
    print(
        f"baseline: {base_rate:12,.0f} events/s  ({1e6 / base_rate:.3f} us/event, dict increment)"
    )
    print(f"ratio:    {base_rate / apply_rate:12.1f}x slower than the baseline")
    print(f"next_change_at (cold cache): {1e6 * nc_time / len(states):.2f} us/lead")
    return 0


if __name__ == "__main__":
    sys.exit(main())
