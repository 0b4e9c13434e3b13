from hypothesis import given
from hypothesis import strategies as st

from streams.core.schedule import DecaySchedule


def test_latest_due_time_wins_and_pops_once() -> None:
    s = DecaySchedule()
    s.set(1, "a", 10.0)
    s.set(1, "a", 30.0)
    s.set(1, "b", 20.0)
    assert s.pop_due(1, now=25.0) == ["b"]
    assert s.pop_due(1, now=25.0) == []
    assert s.pop_due(1, now=30.0) == ["a"]
    assert len(s) == 0


def test_none_unschedules() -> None:
    s = DecaySchedule()
    s.set(0, "a", 5.0)
    s.set(0, "a", None)
    assert s.pop_due(0, now=100.0) == []


def test_partitions_are_independent_and_can_be_dropped() -> None:
    s = DecaySchedule()
    s.set(0, "a", 1.0)
    s.set(1, "b", 1.0)
    s.drop_partitions_except({1})
    assert s.partitions() == [1]
    assert s.pop_due(0, now=2.0) == []
    assert s.pop_due(1, now=2.0) == ["b"]


def test_limit_bounds_one_pop() -> None:
    s = DecaySchedule()
    for i in range(5):
        s.set(0, f"l{i}", float(i))
    assert s.pop_due(0, now=10.0, limit=2) == ["l0", "l1"]
    assert s.pop_due(0, now=10.0) == ["l2", "l3", "l4"]


@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.floats(0, 100)), max_size=50),
    st.floats(0, 100),
)
def test_pops_exactly_the_leads_whose_last_due_time_passed(
    sets: list[tuple[str, float]], now: float
) -> None:
    s = DecaySchedule()
    last: dict[str, float] = {}
    for lead, due in sets:
        s.set(0, lead, due)
        last[lead] = due
    popped = s.pop_due(0, now)
    assert sorted(popped) == sorted(lead for lead, due in last.items() if due <= now)
    assert popped == sorted(popped, key=lambda lead: (last[lead], lead))
