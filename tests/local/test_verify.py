"""streams.local.verify: what the crash test and the chaos script count."""

from __future__ import annotations

from typing import Any

from streams.local.verify import compare, differences, kept_changes


def change(lead: str, seq: int, to: str, eid: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "lead_id": lead,
        "sequence": seq,
        "event_id": eid or f"{lead}-{seq}",
        "to_stage": to,
        "changed_at": f"t{seq}",
        "emitted_at": "now",
        **extra,
    }


def test_differences_allow_float_noise_and_name_the_rest() -> None:
    a = {"score": 1.0, "rules": {"r": [2.0, 3.0]}, "stage": "warm"}
    assert differences({**a, "score": 1.0 + 1e-9}, a) == []
    assert differences({**a, "stage": "mql"}, a, "lead") == ["lead.stage: 'mql' != 'warm'"]
    assert differences({**a, "rules": {"r": [2.0]}}, a, "l") == ["l.rules.r: 1 items != 2"]


def test_the_kept_view_ignores_sequences_already_applied() -> None:
    changes = [change("L", 1, "warm"), change("L", 2, "mql"), change("L", 1, "warm")]
    assert [c[0] for c in kept_changes(changes)["L"]] == [1, 2]


def test_compare_counts_lost_double_and_inconsistent_repeats() -> None:
    expected = {"A": {"events_seen": 3}, "B": {"events_seen": 3}, "C": {"events_seen": 3}}
    got = {"A": {"events_seen": 2}, "B": {"events_seen": 4}, "C": {"events_seen": 3}}
    ref = [change("A", 1, "warm")]
    mine = [change("A", 1, "warm", score=1.0), change("A", 1, "warm", score=2.0)]
    result = compare(expected, got, ref, mine)
    assert (result.lost, result.double_counted, result.differing) == (1, 1, 0)
    assert (result.repeated_ids, result.inconsistent_repeats) == (1, 1)
    assert result.kept_view_mismatches == 0 and not result.clean and not result.consistent


def test_compare_leaves_out_when_a_state_was_written_not_what_it_holds() -> None:
    held = {"events_seen": 3, "stage": "warm"}
    expected = {"A": {**held, "next_change": 10.0, "next_change_valid": True}}
    got = {"A": {**held, "next_change": None, "next_change_valid": False}}
    assert compare(expected, got, [], []).differing == 0
    got["A"]["stage"] = "mql"
    assert compare(expected, got, [], []).differing == 1
