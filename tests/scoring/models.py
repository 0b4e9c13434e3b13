"""Small test models with half-lives of seconds."""

from __future__ import annotations

from scoring import ScoringModel, load_model_text

TEST_MODEL = """
id = "test"
version = "7"
forced_stages = ["disqualified"]

[settings]
max_lateness = "100s"
dedup_max_ids = 64
reasons_top_n = 3

[decay]
web = "10s"
email = "4s"
webinar = "25s"
profile = "none"

[[rules]]
id = "w-pricing"
description = "Pricing"
source = "web"
points = 30
match = { path = { glob = "/pricing*" } }
cap = { count = 2, per = "10s" }

[[rules]]
id = "w-blog"
description = "Blog"
source = "web"
points = 5
match = { path = { glob = "/blog*" } }

[[rules]]
id = "w-careers"
description = "Careers"
source = "web"
points = -20
match = { path = { glob = "/careers*" } }

[[rules]]
id = "e-click"
description = "Click"
source = "email"
points = 12
match = { action = "click" }

[[rules]]
id = "e-unsub"
description = "Unsubscribe"
source = "email"
points = -5
match = { action = "unsubscribe" }
sets = { unsubscribed = true }

[[rules]]
id = "wb-attended"
description = "Attended"
source = "webinar"
points = 25
match = { action = "attended" }

[[rules]]
id = "p-phone"
description = "Gave a phone number"
source = "profile"
points = 3
match = { phone = { exists = true } }

[fit]
grades = { A = 30, B = 20, C = 10 }

[[fit.rules]]
id = "f-senior"
description = "Senior"
points = 20
match = { seniority = ["vp", "c_level"] }

[[fit.rules]]
id = "f-size"
description = "Size"
points = 10
match = { company_size = { gte = 100 } }

[[fit.rules]]
id = "f-free"
description = "Free mail"
points = -10
match = { email_domain = { suffix = "gmail.com" } }

[bant]
budget = { budget_status = ["planned", "approved"] }
authority = { decision_role = "decision_maker" }
need = { pain_identified = true }
timeline = { purchase_timeline = "within_3_months" }

[[stages]]
name = "cold"

[[stages]]
name = "warm"
entry = { score = 20 }
exit = { score = 10 }

[[stages]]
name = "mql"
entry = { score = 50, grade = "B" }
exit = { score = 40 }

[[stages]]
name = "sql"
entry = { score = 80, grade = "B", bant = 2 }
exit = { score = 65 }

[[disqualifiers]]
id = "unsubscribed"
description = "Unsubscribed"
match = { unsubscribed = true }
stage = "disqualified"

[[disqualifiers]]
id = "student"
description = "Student"
match = { seniority = "student" }
stage = "disqualified"
"""


#: TEST_MODEL with bot filtering, group and total caps, and a rule counted once per
#: webinar; no rule cap on the screened sources, so that which events count is a
#: function of the set of events, whatever their order (see scoring.bots).
SIGNAL_MODEL = (
    TEST_MODEL.replace('cap = { count = 2, per = "10s" }\n', "", 1)
    + """
[bots]
email_after_delivery = "10s"
email_click_gap = "2s"
email_links = { count = 3, within = "10s" }
web_burst = { count = 3, within = "10s", max_dwell = "1s" }

[caps]
web = 45
email = 30
total = 90

[[rules]]
id = "wb-once"
description = "Attended, once per webinar"
source = "webinar"
points = 5
match = { action = "attended" }
cap = { count = 1, by = "webinar_id" }
"""
)


#: TEST_MODEL with the sales loop: sql owned by sales with a 100 s follow-up SLA,
#: stages only outcomes enter, outcome rules, and recycling with score resets.
SALES_MODEL = (
    TEST_MODEL.replace('profile = "none"\n', 'profile = "none"\noutcome = "none"\n', 1).replace(
        'entry = { score = 80, grade = "B", bant = 2 }\nexit = { score = 65 }\n',
        'entry = { score = 80, grade = "B", bant = 2 }\nexit = { score = 65 }\nowner = "sales"\n'
        'sla = "100s"\n',
        1,
    )
    + """
[[sales_stages]]
name = "accepted"
sla = "50s"
sla_met_by = ["contacted"]

[[sales_stages]]
name = "opportunity"

[[sales_stages]]
name = "customer"

[outcomes.accepted]
stage = "accepted"

[outcomes.opportunity_created]
stage = "opportunity"

[outcomes.won]
stage = "customer"

[outcomes.rejected]
stage = "warm"
reset = 0.5

[outcomes.lost]
stage = "warm"
reset = 0.0

[outcomes.recycled]
stage = "warm"
reset = 0.5

[[rules]]
id = "o-opportunity"
description = "Opportunity created"
source = "outcome"
points = 20
match = { outcome = "opportunity_created" }

[[rules]]
id = "o-lost"
description = "Deal lost"
source = "outcome"
points = -10
match = { outcome = "lost" }

[[rules]]
id = "o-recycled-resubscribes"
description = "Recycled to nurture: the CRM's opt-out was cleared"
source = "outcome"
points = 0
match = { outcome = "recycled", reason = "resubscribed" }
sets = { unsubscribed = false }
"""
)


def small_model(text: str = TEST_MODEL) -> ScoringModel:
    return load_model_text(text, "test.toml")


_n = 0


def web(
    path: str, t: float, eid: str | None = None, lead: str = "L", **kw: object
) -> dict[str, object]:
    return _ev("web", t, eid, lead, path=path, url="https://x" + path, **kw)


def email(
    action: str, t: float, eid: str | None = None, lead: str = "L", **kw: object
) -> dict[str, object]:
    return _ev("email", t, eid, lead, action=action, **{"campaign_id": "c1", **kw})


def webinar(action: str, t: float, eid: str | None = None, **kw: object) -> dict[str, object]:
    return _ev("webinar", t, eid, "L", action=action, **{"webinar_id": "w1", **kw})


def profile(t: float, eid: str | None = None, **attrs: object) -> dict[str, object]:
    return _ev("profile", t, eid, "L", attributes=attrs)


def outcome(kind: str, t: float, eid: str | None = None, **kw: object) -> dict[str, object]:
    return _ev("outcome", t, eid, "L", outcome=kind, **kw)


def _ev(source: str, t: float, eid: str | None, lead: str, **kw: object) -> dict[str, object]:
    global _n
    _n += 1
    return {
        "event_id": eid or f"auto-{_n}",
        "lead_id": lead,
        "source": source,
        "time": t,
        **kw,
    }
