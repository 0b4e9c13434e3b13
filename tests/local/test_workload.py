"""streams.local.workload: valid, deterministic, realistically shaped traffic; demo script."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from typing import Any

import orjson
import pytest

from scoring import LeadState, apply, load_default_model
from streams.core import contract
from streams.local import workload

START = 1_790_000_000.0
SPAN = 86_400.0
END = START + SPAN


def events(**kw: Any) -> list[tuple[str, str, bytes]]:
    args: dict[str, Any] = {
        "n_events": 20_000,
        "n_leads": 2_000,
        "seed": 11,
        "start": START,
        "span_s": SPAN,
    }
    args.update(kw)
    return list(workload.generate_events(**args))


@pytest.fixture(scope="module")
def sample() -> list[tuple[str, str, bytes]]:
    return events()


@pytest.fixture(scope="module")
def decoded(sample: list[tuple[str, str, bytes]]) -> list[dict[str, Any]]:
    return [contract.decode_event(k, v, now=END, max_future_skew_s=0) for k, _, v in sample]


def test_every_message_is_valid_and_keyed_by_its_lead(
    sample: list[tuple[str, str, bytes]], decoded: list[dict[str, Any]]
) -> None:
    assert len(sample) == 20_000
    for (kind, key, _), event in zip(sample, decoded, strict=True):
        assert event["source"] == kind
        assert event["lead_id"] == key
        assert START <= event["time"] <= END
        assert key.startswith("lead-") and len(key) == len("lead-000123")


def test_uses_all_time_formats_and_value_shapes(decoded: list[dict[str, Any]]) -> None:
    stamps = [e["occurred_at"] for e in decoded]
    assert any(isinstance(s, int) for s in stamps)
    assert any(isinstance(s, str) and s.endswith("Z") for s in stamps)
    assert any(isinstance(s, str) and s[-6] in "+-" for s in stamps)
    web = [e for e in decoded if e["source"] == "web"]
    paths = {e["path"].split("/")[1] for e in web}
    assert {"pricing", "demo", "product", "blog", "docs", "careers", "contact-sales"} <= paths
    email = Counter(e["action"] for e in decoded if e["source"] == "email")
    assert email["delivered"] > email["click"] > email["bounce"] > 0
    assert email["unsubscribe"] > 0 and email["spam_report"] > 0
    assert all(e["link"] for e in decoded if e.get("action") == "click")
    attended = [e for e in decoded if e["source"] == "webinar" and e["action"] == "attended"]
    assert attended and all(e["minutes_attended"] >= 0 for e in attended)


def test_profiles_are_consistent_per_lead_and_varied(decoded: list[dict[str, Any]]) -> None:
    seen: dict[str, dict[str, Any]] = {}
    for e in decoded:
        if e["source"] != "profile":
            continue
        known = seen.setdefault(e["lead_id"], {})
        for key, value in e["attributes"].items():
            assert known.setdefault(key, value) == value, "a lead's persona must not change"
    assert len(seen) > 50
    seniority = Counter(a.get("seniority") for a in seen.values())
    assert seniority["student"] > 0 and (seniority["vp"] + seniority["c_level"]) > 0
    domains = [a.get("email_domain", "") for a in seen.values()]
    assert any(d in workload.FREE_MAIL for d in domains)
    assert any(d and d not in workload.FREE_MAIL for d in domains)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = events(n_events=2_000)
    assert a == events(n_events=2_000)
    assert a != events(n_events=2_000, seed=12)


def test_lead_numbers_start_at_first_lead() -> None:
    leads = {
        lead
        for _, lead, _ in workload.generate_events(
            n_events=2000, n_leads=50, seed=3, start=0.0, span_s=60.0, first_lead=1000
        )
    }
    numbers = {int(lead.removeprefix("lead-")) for lead in leads}
    assert min(numbers) >= 1000 and max(numbers) < 1050
    assert len(numbers) > 25  # the range is used, not one lead


def test_kind_mix_within_tolerance(sample: list[tuple[str, str, bytes]]) -> None:
    counts = Counter(k for k, _, _ in sample)
    n = len(sample)
    assert counts["profile"] / n == pytest.approx(0.02, abs=0.005)
    rest = n - counts["profile"]
    for kind, share in zip(("web", "email", "webinar"), (0.7, 0.2, 0.1), strict=True):
        assert counts[kind] / rest == pytest.approx(share, abs=0.02)
    other = Counter(k for k, _, _ in events(n_events=5_000, mix=(0, 1, 1), profile_ratio=0))
    assert set(other) == {"email", "webinar"}


def test_duplicate_fraction_and_duplicates_are_exact(
    sample: list[tuple[str, str, bytes]], decoded: list[dict[str, Any]]
) -> None:
    ids = Counter(e["event_id"] for e in decoded)
    repeats = sum(c - 1 for c in ids.values())
    assert repeats / len(sample) == pytest.approx(0.01, abs=0.004)
    by_id: dict[str, bytes] = {}
    for (_, _, value), e in zip(sample, decoded, strict=True):
        assert by_id.setdefault(e["event_id"], value) == value
    none = events(n_events=5_000, duplicates=0)
    assert len({orjson.loads(v)["event_id"] for _, _, v in none}) == 5_000


def _late_fraction(decoded: list[dict[str, Any]]) -> float:
    seen: set[str] = set()
    latest = float("-inf")
    late = total = 0
    for e in decoded:
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        total += 1
        if e["time"] < latest:
            late += 1
        latest = max(latest, e["time"])
    return late / total


def test_out_of_order_fraction_within_tolerance(decoded: list[dict[str, Any]]) -> None:
    assert _late_fraction(decoded) == pytest.approx(0.05, abs=0.01)
    in_order = events(n_events=5_000, out_of_order=0, duplicates=0)
    times = [
        contract.decode_event(k, v, now=END, max_future_skew_s=0)["time"] for k, _, v in in_order
    ]
    assert times == sorted(times)


def test_zipf_skew_top_percent_of_leads_dominates(sample: list[tuple[str, str, bytes]]) -> None:
    per_lead = Counter(key for _, key, _ in sample)
    top = sum(c for _, c in per_lead.most_common(20))  # top 1% of 2,000 leads
    assert top / len(sample) > 0.15
    flat = Counter(key for _, key, _ in events(n_events=20_000, zipf_s=0.0))
    assert sum(c for _, c in flat.most_common(20)) / 20_000 < 0.03


def test_rejects_nonsense_arguments() -> None:
    for bad in ({"n_leads": 0}, {"mix": (0, 0, 0)}, {"profile_ratio": 1.0}, {"duplicates": 2}):
        with pytest.raises(ValueError):
            events(**bad)


# ----------------------------------------------------------------------------- demo


def _run_demo(traffic: workload.DemoTraffic, seconds: float, rate: float) -> list[Any]:
    t = traffic.start
    out = []
    while t < traffic.start + seconds:
        out.append((t, traffic.next_message(t)))
        t += 1 / rate
    return out


def test_demo_hot_leads_reach_sql_within_a_minute_under_the_default_model() -> None:
    traffic = workload.DemoTraffic(n_leads=200, seed=7, start=START)
    model = load_default_model()
    states: dict[str, LeadState] = {}
    reached: dict[str, dict[str, float]] = {}
    for t, msg in _run_demo(traffic, 60, 50):
        try:
            event = contract.decode_event(msg.kind, msg.value, now=t, max_future_skew_s=300)
        except contract.Rejected:
            assert msg.label in workload.INVALID_KINDS
            continue
        assert msg.label not in workload.INVALID_KINDS
        assert event["time"] == pytest.approx(t, abs=0.001)
        state = states.get(msg.lead_id) or LeadState(msg.lead_id)
        states[msg.lead_id], transitions = apply(state, event, model)
        for tr in transitions:
            reached.setdefault(tr["lead_id"], {}).setdefault(tr["to_stage"], t - START)
    assert traffic.scripted_pending == 0
    for hot in traffic.hot_lead_ids:
        assert {"warm", "mql", "sql"} <= set(reached[hot]), reached.get(hot)
        assert reached[hot]["sql"] < 60
    assert "disqualified" in reached[traffic.churn_lead_id]


def test_demo_sends_about_one_invalid_in_200_of_each_kind() -> None:
    traffic = workload.DemoTraffic(n_leads=200, seed=3, start=START)
    labels = Counter(m.label for _, m in _run_demo(traffic, 800, 50))
    invalid = sum(labels[k] for k in workload.INVALID_KINDS)
    assert invalid / 40_000 == pytest.approx(1 / 200, rel=0.25)
    assert all(labels[k] > 0 for k in workload.INVALID_KINDS)


@pytest.mark.parametrize(
    ("label", "reasons"),
    [
        ("invalid_json", {"invalid_json"}),
        ("unknown_action", {"unknown_event_type"}),
        ("missing_field", {"schema_violation"}),
        ("no_offset", {"bad_timestamp"}),
    ],
)
def test_demo_invalid_messages_hit_the_intended_dlq_reason(label: str, reasons: set[str]) -> None:
    traffic = workload.DemoTraffic(n_leads=50, seed=5, start=START, invalid_ratio=1.0, hot_leads=0)
    got = set()
    t = START
    for _ in range(200):
        msg = traffic.next_message(t)
        if msg.label == label:
            with pytest.raises(contract.Rejected) as info:
                contract.decode_event(msg.kind, msg.value, now=t, max_future_skew_s=300)
            got.add(info.value.reason)
    assert got == reasons


def test_generated_messages_hold_only_their_bytes() -> None:
    # The bench keeps millions of generated messages; orjson's own bytes would keep a
    # 4 KiB buffer each (orjson >= 3.12), ~19x the message.
    n = 2_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        values = [
            value
            for _kind, _lead, value in workload.generate_events(
                n_events=n, n_leads=100, seed=5, start=1.7e9, span_s=3600.0
            )
        ]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    mean_len = sum(map(len, values)) / n
    assert held / n < 2 * mean_len + 200, (held / n, mean_len)
