"""Realistic, deterministic input traffic: the benchmark's, the tests' and the demo's.

Everything here is pure: one ``random.Random(seed)`` drives every choice, so the same
arguments give the same bytes on every machine and Python 3.11+ version. Nothing is
read from the clock; callers pass times.

- :func:`generate_events` yields a finite stream spread over a time span: Zipf-skewed
  lead activity, the four input kinds in a given mix, a fraction delivered out of
  order and a fraction of exact duplicates (same bytes, same ``event_id``).
- :class:`DemoTraffic` chooses the next live demo message (event time = now): random
  background traffic plus a few scripted "hot" leads that qualify within the first
  minute under the default scoring model, and about 1 in 200 deliberately invalid
  messages so the dead-letter path shows.

Leads are ``lead-000123``; personas (firmographics, BANT) are fixed per lead and seed,
so a lead's profile updates agree with each other. Domains and company names are
made up; no message carries a person's name or email address.
"""

from __future__ import annotations

import random
import time
from bisect import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Final, NamedTuple

import orjson

from streams.core.contract import right_sized

KINDS: Final[tuple[str, str, str, str]] = ("web", "email", "webinar", "profile")
LEAD_ID_FORMAT: Final = "lead-{:06d}"


def lead_id(index: int) -> str:
    """The id of lead number ``index`` (``lead-000123``)."""
    return LEAD_ID_FORMAT.format(index)


# ------------------------------------------------------------------------ vocabulary

SITE: Final = "https://www.northwind-analytics.example"

#: (path template, weight, title). ``{slug}`` is filled from the section's slugs.
PAGES: Final[tuple[tuple[str, float, str], ...]] = (
    ("/", 10.0, "Home"),
    ("/blog/{slug}", 22.0, "Blog"),
    ("/docs/{slug}", 14.0, "Documentation"),
    ("/product", 6.0, "Product"),
    ("/features/{slug}", 7.0, "Features"),
    ("/integrations/{slug}", 4.0, "Integrations"),
    ("/solutions/{slug}", 3.0, "Solutions"),
    ("/customers/{slug}", 3.0, "Customer stories"),
    ("/pricing", 6.0, "Pricing"),
    ("/demo", 2.0, "Book a demo"),
    ("/request-demo", 1.0, "Request a demo"),
    ("/contact-sales", 1.5, "Talk to sales"),
    ("/careers", 2.0, "Careers"),
    ("/jobs/{slug}", 1.0, "Open positions"),
    ("/about", 2.0, "About us"),
    ("/login", 4.0, "Log in"),
)
SLUGS: Final[Mapping[str, tuple[str, ...]]] = {
    "blog": (
        "attribution-models-explained",
        "lead-scoring-101",
        "b2b-funnel-benchmarks-2026",
        "intent-data-primer",
        "webinar-playbook",
        "account-based-marketing-checklist",
        "revops-dashboard-templates",
        "why-mqls-stall",
    ),
    "docs": (
        "getting-started",
        "api/events",
        "api/auth",
        "sdk/python",
        "sdk/js",
        "sso",
        "webhooks",
    ),
    "features": ("dashboards", "alerts", "forecasting", "segments", "sso"),
    "integrations": ("salesforce", "slack", "snowflake", "bigquery", "zapier"),
    "solutions": ("marketing", "sales", "finance", "enterprise"),
    "customers": ("globex", "initech", "umbrella-health", "stark-freight"),
    "jobs": ("senior-backend-engineer", "account-executive", "product-designer"),
}
REFERRERS: Final = (
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://www.linkedin.com/",
    "https://news.ycombinator.com/",
    "https://duckduckgo.com/",
    "https://www.g2.com/",
)
UTM: Final = (
    "?utm_source=linkedin&utm_medium=paid",
    "?utm_source=newsletter&utm_medium=email",
    "?utm_source=google&utm_medium=cpc",
)
EMAIL_ACTIONS: Final = (
    ("delivered", 45.0),
    ("open", 32.0),
    ("click", 17.0),
    ("bounce", 3.0),
    ("unsubscribe", 2.0),
    ("spam_report", 1.0),
)
CAMPAIGNS: Final = (
    "newsletter-2026-10",
    "newsletter-2026-11",
    "nurture-onboarding-02",
    "nurture-q4-03",
    "product-launch-forecasting",
    "webinar-invite-roi",
)
EMAIL_LINKS: Final = ("/pricing", "/demo", "/blog/lead-scoring-101", "/features/forecasting", "/")
WEBINAR_ACTIONS: Final = (
    ("registered", 45.0),
    ("attended", 30.0),
    ("no_show", 15.0),
    ("question", 10.0),
)
WEBINARS: Final = ("wbn-2026-10-roi", "wbn-2026-11-forecasting", "wbn-2026-12-revops")

COMPANY_WORDS: Final = (
    ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent"),
    ("Logistics", "Health", "Systems", "Capital", "Foods", "Labs", "Retail", "Energy", "Media"),
)
FREE_MAIL: Final = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com")
COMPETITORS: Final = ("hubspot.com", "marketo.com", "salesforce.com")
INDUSTRIES: Final = (
    "software",
    "technology",
    "financial_services",
    "professional_services",
    "retail",
    "manufacturing",
    "healthcare",
    "education",
    "logistics",
)
COUNTRIES: Final = ("US", "US", "US", "GB", "DE", "FR", "NL", "CA", "AU", "IN", "BR", "JP")
DEPARTMENTS: Final = ("marketing", "sales", "revenue_operations", "it", "engineering", "finance")
TITLES: Final[Mapping[str, tuple[str, ...]]] = {
    "c_level": ("CMO", "CRO", "CEO", "COO"),
    "vp": ("VP Marketing", "VP Sales", "VP Revenue Operations"),
    "director": ("Director of Demand Generation", "Sales Director", "Director of IT"),
    "manager": ("Marketing Manager", "Sales Operations Manager", "Engineering Manager"),
    "individual_contributor": ("Marketing Specialist", "SDR", "Data Analyst", "Developer"),
    "student": ("Student", "MBA Candidate"),
    "other": ("Consultant", "Freelancer"),
}

#: Persona segments and their shares of the lead population.
SEGMENTS: Final = (
    ("great", 12.0),
    ("good", 28.0),
    ("average", 30.0),
    ("poor", 22.0),
    ("student", 5.0),
    ("competitor", 3.0),
)


def _cum(weights: Sequence[float]) -> list[float]:
    total = float(sum(weights))
    out = [w / total for w in accumulate(weights)]
    out[-1] = 1.0
    return out


_PAGE_CUM: Final = _cum([w for _, w, _ in PAGES])
_EMAIL_CUM: Final = _cum([w for _, w in EMAIL_ACTIONS])
_WEBINAR_CUM: Final = _cum([w for _, w in WEBINAR_ACTIONS])
_SEGMENT_CUM: Final = _cum([w for _, w in SEGMENTS])


# ----------------------------------------------------------------------------- times

_OFFSETS: Final = ((120, "+02:00"), (-300, "-05:00"), (60, "+01:00"), (330, "+05:30"))


class _Stamper:
    """Formats ``occurred_at`` the way a mix of producers would, with a per-second cache.

    70% RFC 3339 UTC (``...Z``), 10% RFC 3339 with a local offset, 20% epoch millis.
    """

    __slots__ = ("_cache", "_rng")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._cache: dict[int, str] = {}

    def __call__(self, ms: int) -> str | int:
        r = self._rng.random()
        if r < 0.2:
            return ms
        suffix = "Z"
        if r < 0.3:
            minutes, suffix = _OFFSETS[int(r * 100) % len(_OFFSETS)]
            ms += minutes * 60_000
        sec, milli = divmod(ms, 1000)
        prefix = self._cache.get(sec)
        if prefix is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            self._cache[sec] = prefix
        return f"{prefix}.{milli:03d}{suffix}"


# --------------------------------------------------------------------------- personas


def persona(seed: int, index: int) -> dict[str, Any]:
    """The full profile attributes of lead ``index`` (fixed per seed)."""
    rng = random.Random(seed * 1_000_003 + index)
    return _persona(rng, SEGMENTS[bisect(_SEGMENT_CUM, rng.random())][0])


def great_fit_persona(rng: random.Random) -> dict[str, Any]:
    """An ideal customer: senior buyer at a mid-size software company, BANT complete."""
    return _persona(rng, "great")


def _persona(rng: random.Random, segment: str) -> dict[str, Any]:
    company = f"{rng.choice(COMPANY_WORDS[0])} {rng.choice(COMPANY_WORDS[1])}"
    domain = company.lower().replace(" ", "-") + rng.choice((".com", ".io", ".co.uk", ".de"))
    a: dict[str, Any]
    if segment == "great":
        seniority = rng.choice(("c_level", "vp", "director"))
        a = {
            "email_domain": domain,
            "seniority": seniority,
            "department": rng.choice(("marketing", "sales", "revenue_operations")),
            "company_name": company,
            "company_size": rng.randint(250, 4800),
            "industry": rng.choice(("software", "saas", "financial_services")),
            "annual_revenue": rng.randint(20, 900) * 1_000_000,
            "country": rng.choice(("US", "US", "GB", "DE", "CA", "NL")),
            "budget_status": rng.choice(("planned", "approved")),
            "decision_role": "decision_maker",
            "pain_identified": True,
            "purchase_timeline": rng.choice(("within_3_months", "within_6_months")),
        }
    elif segment in ("good", "average"):
        good = segment == "good"
        seniority = rng.choice(
            ("director", "manager") if good else ("manager", "individual_contributor")
        )
        a = {
            "email_domain": domain,
            "seniority": seniority,
            "department": rng.choice(DEPARTMENTS),
            "company_name": company,
            "company_size": rng.randint(200, 3000) if good else rng.randint(20, 400),
            "industry": rng.choice(INDUSTRIES[:4] if good else INDUSTRIES),
            "annual_revenue": rng.randint(5, 200) * 1_000_000
            if good
            else rng.randint(1, 30) * 500_000,
            "country": rng.choice(COUNTRIES),
            "budget_status": rng.choice(
                ("unknown", "planned", "none") if good else ("unknown", "none")
            ),
            "decision_role": rng.choice(
                ("influencer", "decision_maker") if good else ("user", "influencer")
            ),
            "pain_identified": rng.random() < (0.6 if good else 0.3),
            "purchase_timeline": rng.choice(
                ("within_6_months", "within_12_months", "unknown")
                if good
                else ("unknown", "over_12_months", "within_12_months")
            ),
        }
    elif segment == "poor":
        seniority = rng.choice(("individual_contributor", "other"))
        a = {
            "email_domain": rng.choice(FREE_MAIL),
            "seniority": seniority,
            "company_size": rng.randint(1, 9),
            "industry": rng.choice(INDUSTRIES[4:]),
            "country": rng.choice(COUNTRIES),
            "budget_status": "none",
            "decision_role": "user",
            "pain_identified": False,
            "purchase_timeline": "unknown",
        }
    elif segment == "student":
        seniority = "student"
        a = {"email_domain": rng.choice(FREE_MAIL), "seniority": seniority, "industry": "education"}
    else:  # competitor
        seniority = rng.choice(("manager", "individual_contributor"))
        a = {
            "email_domain": rng.choice(COMPETITORS),
            "seniority": seniority,
            "department": "marketing",
            "company_size": rng.randint(5000, 12000),
            "industry": "software",
        }
    a["job_title"] = rng.choice(TITLES[seniority])
    return a


# ------------------------------------------------------------------------- factory


class EventFactory:
    """Builds valid input messages; every random choice comes from ``rng``."""

    __slots__ = ("_profiled", "_rng", "_seed", "_stamp")

    def __init__(self, rng: random.Random, seed: int) -> None:
        self._rng = rng
        self._seed = seed
        self._stamp = _Stamper(rng)
        self._profiled: set[int] = set()

    def event_id(self) -> str:
        h = f"{self._rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def body(self, kind: str, index: int) -> dict[str, Any]:
        """The kind-specific fields of one random event of lead ``index``."""
        if kind == "web":
            return self.web()
        if kind == "email":
            return self.email()
        if kind == "webinar":
            return self.webinar()
        if kind == "profile":
            return self.profile(index)
        raise ValueError(f"unknown kind {kind!r}")

    def message(self, kind: str, index: int, ts: float) -> bytes:
        """One complete message (bytes) of ``kind`` for lead ``index`` at time ``ts``."""
        return self.encode(index, ts, self.body(kind, index))

    def encode(self, index: int, ts: float, body: Mapping[str, Any]) -> bytes:
        return right_sized(
            orjson.dumps(
                {
                    "event_id": self.event_id(),
                    "lead_id": lead_id(index),
                    "occurred_at": self._stamp(round(ts * 1000)),
                    **body,
                }
            )
        )

    def web(self, path: str | None = None) -> dict[str, Any]:
        rng = self._rng
        r = rng.random()
        title = "Page"
        if path is None:
            template, _, title = PAGES[bisect(_PAGE_CUM, rng.random())]
            if "{slug}" in template:
                section = template.split("/")[1]
                template = template.replace("{slug}", rng.choice(SLUGS[section]))
            path = template
        url = SITE + path + (UTM[int(r * 1000) % len(UTM)] if r < 0.15 else "")
        out: dict[str, Any] = {"url": url}
        if r < 0.3:
            out["path"] = path
        if rng.random() < 0.5:
            out["referrer"] = rng.choice(REFERRERS)
        if rng.random() < 0.7:
            out["duration_seconds"] = round(rng.expovariate(1 / 45.0), 1)
        if r > 0.6:
            out["title"] = title
        return out

    def email(self, action: str | None = None, link: str | None = None) -> dict[str, Any]:
        rng = self._rng
        if action is None:
            action = EMAIL_ACTIONS[bisect(_EMAIL_CUM, rng.random())][0]
        out: dict[str, Any] = {"action": action, "campaign_id": rng.choice(CAMPAIGNS)}
        if action == "click":
            out["link"] = SITE + (link or rng.choice(EMAIL_LINKS))
        elif action == "bounce":
            out["bounce_type"] = "hard" if rng.random() < 0.3 else "soft"
        return out

    def webinar(self, action: str | None = None, minutes: float | None = None) -> dict[str, Any]:
        rng = self._rng
        if action is None:
            action = WEBINAR_ACTIONS[bisect(_WEBINAR_CUM, rng.random())][0]
        out: dict[str, Any] = {"action": action, "webinar_id": rng.choice(WEBINARS)}
        if action == "attended":
            out["minutes_attended"] = (
                minutes if minutes is not None else round(rng.triangular(3, 60, 40))
            )
        return out

    def profile(self, index: int) -> dict[str, Any]:
        """The full persona the first time, then a few changed or re-sent attributes."""
        full = persona(self._seed, index)
        if index not in self._profiled:
            self._profiled.add(index)
            return {"attributes": full}
        keys = self._rng.sample(sorted(full), k=min(len(full), self._rng.randint(1, 3)))
        return {"attributes": {k: full[k] for k in keys}}


class ZipfLeads:
    """Lead numbers 1..n with P(rank k) ~ 1/k**s; which lead has which rank is shuffled."""

    __slots__ = ("_cum", "_leads", "_rng")

    def __init__(self, rng: random.Random, n_leads: int, s: float, *, first: int = 1) -> None:
        self._rng = rng
        self._cum = _cum([1.0 / k**s for k in range(1, n_leads + 1)])
        self._leads = list(range(first, first + n_leads))
        rng.shuffle(self._leads)

    def __call__(self) -> int:
        return self._leads[bisect(self._cum, self._rng.random())]

    @property
    def by_rank(self) -> list[int]:
        """Leads from the most to the least active."""
        return list(self._leads)


def _kind_cum(mix: Sequence[float], profile_ratio: float) -> list[float]:
    if len(mix) != 3 or any(m < 0 for m in mix) or sum(mix) <= 0:
        raise ValueError("mix: three non-negative web/email/webinar shares, not all zero")
    if not 0 <= profile_ratio < 1:
        raise ValueError("profile_ratio must be in [0, 1)")
    total = sum(mix)
    return _cum([m / total * (1 - profile_ratio) for m in mix] + [profile_ratio])


# ------------------------------------------------------------------------- generate


def generate_events(
    *,
    n_events: int,
    n_leads: int,
    seed: int,
    start: float,
    span_s: float,
    zipf_s: float = 1.1,
    mix: tuple[float, float, float] = (0.7, 0.2, 0.1),
    profile_ratio: float = 0.02,
    out_of_order: float = 0.05,
    duplicates: float = 0.01,
    first_lead: int = 1,
) -> Iterator[tuple[str, str, bytes]]:
    """``n_events`` messages ``(kind, lead_id, value)`` with times in ``[start, start+span_s]``.

    Lead numbers run from ``first_lead`` to ``first_lead + n_leads - 1``: disjoint
    ranges give disjoint leads.

    Event times rise through the span; ``out_of_order`` of them arrive late (their time
    is at least two slots before their position), ``duplicates`` are exact re-sends of
    a recent message. ``mix`` splits web/email/webinar; ``profile_ratio`` of all
    messages are profile updates (a lead's first is its full persona).
    """
    if n_events < 0 or n_leads <= 0 or span_s < 0:
        raise ValueError("need n_events >= 0, n_leads > 0 and span_s >= 0")
    if not (0 <= out_of_order <= 1 and 0 <= duplicates <= 1):
        raise ValueError("out_of_order and duplicates are fractions in [0, 1]")
    kind_cum = _kind_cum(mix, profile_ratio)
    rng = random.Random(seed)
    factory = EventFactory(rng, seed)
    next_lead = ZipfLeads(rng, n_leads, zipf_s, first=first_lead)
    gap = span_s / n_events if n_events else 0.0
    max_lag = max(2 * gap, min(span_s * 0.02, 900.0))
    recent: list[tuple[str, str, bytes]] = []
    rand = rng.random
    for i in range(n_events):
        if recent and rand() < duplicates:
            yield recent[int(rand() * len(recent))]
            continue
        kind = KINDS[bisect(kind_cum, rand())]
        index = next_lead()
        ts = start + gap * (i + rand())
        if rand() < out_of_order:
            ts = max(start, ts - 2 * gap - rand() * max_lag)
        item = (kind, lead_id(index), factory.message(kind, index, ts))
        if len(recent) < 256:
            recent.append(item)
        else:
            recent[i & 255] = item
        yield item


# ----------------------------------------------------------------------------- demo

#: One scripted step: seconds after the lead's script starts, kind, and how to build it.
#: Points under the default model: pricing 10, demo 20, webinar registered 10,
#: attended 15 (+10 for 30+ minutes), contact-sales 15, email click 8 (+5 pricing link);
#: cold -> warm (20) -> mql (50, grade B) -> sql (80, grade B, 3 of 4 BANT).
HOT_SCRIPT: Final[tuple[tuple[float, str, tuple[Any, ...]], ...]] = (
    (0.0, "profile", ()),
    (3.0, "web", ("/pricing",)),
    (6.0, "web", ("/demo",)),
    (9.0, "webinar", ("registered",)),
    (12.0, "webinar", ("attended", 45)),
    (15.0, "web", ("/contact-sales",)),
    (18.0, "email", ("click", "/pricing")),
    (21.0, "web", ("/pricing",)),
)
#: A good-fit lead that warms up and then reports an email as spam (disqualified: a down
#: move). Not an unsubscribe: the default model only stops scoring email after one.
CHURN_SCRIPT: Final[tuple[tuple[float, str, tuple[Any, ...]], ...]] = (
    (0.0, "profile", ()),
    (3.0, "web", ("/pricing",)),
    (6.0, "web", ("/demo",)),
    (12.0, "email", ("spam_report",)),
)
#: Seconds between the starts of consecutive scripted leads, and before the first.
SCRIPT_STAGGER_S: Final = 8.0
SCRIPT_DELAY_S: Final = 3.0
INVALID_KINDS: Final = ("invalid_json", "unknown_action", "missing_field", "no_offset")


class DemoMessage(NamedTuple):
    kind: str  # web | email | webinar | profile: which input topic
    lead_id: str  # the message key
    value: bytes
    label: str  # "random", "scripted" or one of INVALID_KINDS


@dataclass(slots=True)
class _Step:
    due: float
    kind: str
    index: int
    args: tuple[Any, ...]


@dataclass(slots=True)
class DemoTraffic:
    """Chooses the demo's next message. Pure: the caller passes the time.

    Background leads are ``1..n_leads`` (Zipf activity); scripted leads come after
    them: ``hot_leads`` hot ones then one that churns.
    """

    n_leads: int
    seed: int
    start: float
    hot_leads: int = 3
    invalid_ratio: float = 1 / 200
    zipf_s: float = 1.1
    mix: tuple[float, float, float] = (0.7, 0.2, 0.1)
    profile_ratio: float = 0.02
    _rng: random.Random = field(init=False)
    _factory: EventFactory = field(init=False)
    _next_lead: ZipfLeads = field(init=False)
    _kind_cum: list[float] = field(init=False)
    _script: list[_Step] = field(init=False)

    def __post_init__(self) -> None:
        if self.n_leads <= 0 or self.hot_leads < 0 or not 0 <= self.invalid_ratio <= 1:
            raise ValueError("need n_leads > 0, hot_leads >= 0 and invalid_ratio in [0, 1]")
        self._rng = random.Random(self.seed)
        self._factory = EventFactory(self._rng, self.seed)
        self._next_lead = ZipfLeads(self._rng, self.n_leads, self.zipf_s)
        self._kind_cum = _kind_cum(self.mix, self.profile_ratio)
        steps: list[_Step] = []
        scripts = [HOT_SCRIPT] * self.hot_leads + [CHURN_SCRIPT]
        for n, script in enumerate(scripts):
            index = self.n_leads + 1 + n
            begin = self.start + SCRIPT_DELAY_S + n * SCRIPT_STAGGER_S
            steps.extend(_Step(begin + at, kind, index, args) for at, kind, args in script)
        steps.sort(key=lambda s: s.due)
        self._script = steps

    @property
    def hot_lead_ids(self) -> tuple[str, ...]:
        return tuple(lead_id(self.n_leads + 1 + n) for n in range(self.hot_leads))

    @property
    def churn_lead_id(self) -> str:
        return lead_id(self.n_leads + 1 + self.hot_leads)

    @property
    def scripted_pending(self) -> int:
        return len(self._script)

    def next_message(self, now: float) -> DemoMessage:
        """The message to send at ``now`` (its event time is ``now``)."""
        if self._script and self._script[0].due <= now:
            step = self._script.pop(0)
            body = self._scripted_body(step)
            return DemoMessage(
                step.kind,
                lead_id(step.index),
                self._factory.encode(step.index, now, body),
                "scripted",
            )
        rng = self._rng
        kind = KINDS[bisect(self._kind_cum, rng.random())]
        index = self._next_lead()
        if rng.random() < self.invalid_ratio:
            return self._invalid(index, now)
        value = self._factory.message(kind, index, now)
        return DemoMessage(kind, lead_id(index), value, "random")

    def _scripted_body(self, step: _Step) -> dict[str, Any]:
        f = self._factory
        if step.kind == "profile":
            return {"attributes": great_fit_persona(random.Random(self.seed * 7919 + step.index))}
        if step.kind == "web":
            return f.web(*step.args)
        if step.kind == "email":
            return f.email(*step.args)
        return f.webinar(*step.args)

    def _invalid(self, index: int, now: float) -> DemoMessage:
        rng = self._rng
        label = INVALID_KINDS[int(rng.random() * len(INVALID_KINDS))]
        lid = lead_id(index)
        f = self._factory
        if label == "invalid_json":
            value = f.message("web", index, now)
            return DemoMessage("web", lid, value[: len(value) // 2], label)
        if label == "unknown_action":
            body = f.email()
            body["action"] = rng.choice(("forwarded", "replied", "printed"))
            return DemoMessage("email", lid, f.encode(index, now, body), label)
        if label == "missing_field":
            body = f.webinar()
            del body["webinar_id"]
            return DemoMessage("webinar", lid, f.encode(index, now, body), label)
        event = orjson.loads(f.message("web", index, now))
        event["occurred_at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        return DemoMessage("web", lid, orjson.dumps(event), label)


# ---------------------------------------------------------------------- lead states


def sample_states(n: int, *, seed: int, now: float, model: Any, cached: bool = True) -> list[Any]:
    """``n`` lead states like a worker stores under ``model``: a persona and a few web,
    email and webinar events a day or two before ``now``. ``cached``: the next change
    computed, as the worker does before every write. For benchmarks and tests that
    need realistic stored states without running a worker."""
    from scoring import LeadState, apply, next_change_at
    from streams.core.contract import decode_event

    rng = random.Random(seed)
    factory = EventFactory(rng, seed)
    out = []
    for i in range(n):
        lead = f"seed-{seed}-{i}"
        state = LeadState(lead)
        t = now - 86400 * (1 + rng.random())
        bodies: list[tuple[str, dict[str, Any]]] = [
            ("profile", {"attributes": great_fit_persona(rng)})
        ]
        bodies += [("web", factory.web()) for _ in range(rng.randint(0, 5))]
        bodies += [("email", factory.email()) for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.3:
            bodies.append(("webinar", factory.webinar()))
        for kind, body in bodies:
            t += rng.random() * 600
            fields = {"event_id": factory.event_id(), "lead_id": lead, "occurred_at": int(t * 1000)}
            event = decode_event(kind, orjson.dumps(fields | body), now=now, max_future_skew_s=300)
            state, _ = apply(state, event, model)
        if cached:
            next_change_at(state, model)
        out.append(state)
    return out
