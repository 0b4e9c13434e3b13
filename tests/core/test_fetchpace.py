"""FetchPace: busy fetches under load, quiet ones when records come slower than the
busy request would poll, and back to busy as soon as a burst shows."""

from __future__ import annotations

from streams.core.fetchpace import QUIET, WINDOW_S, FetchMode, FetchPace

BUSY = FetchMode(min_bytes=64 * 1024, max_wait_ms=10)  # polls 100 times a second


def feed(
    pace: FetchPace, per_fetch: int, fetches: int, start: float, step: float
) -> list[FetchMode]:
    """Fetches of ``per_fetch`` records every ``step`` seconds; the switches seen."""
    switches = []
    for i in range(fetches):
        mode = pace.observe(per_fetch, start + i * step)
        if mode is not None:
            switches.append(mode)
    return switches


def test_starts_busy_and_stays_busy_under_load() -> None:
    pace = FetchPace(BUSY)
    assert pace.mode is BUSY
    assert feed(pace, per_fetch=300, fetches=500, start=0.0, step=0.01) == []


def test_turns_quiet_when_a_window_ends_with_fewer_records_than_busy_polls() -> None:
    pace = FetchPace(BUSY)
    # 50 records a second: half of what the busy request would poll.
    assert feed(pace, per_fetch=1, fetches=100, start=0.0, step=0.02) == [QUIET]
    assert pace.mode is QUIET


def test_empty_fetches_when_idle_turn_quiet_after_one_window() -> None:
    pace = FetchPace(BUSY)
    assert pace.observe(0, 0.0) is None
    assert pace.observe(0, WINDOW_S * 0.5) is None
    assert pace.observe(0, WINDOW_S) is QUIET


def test_a_burst_turns_busy_within_the_window_it_starts_in() -> None:
    pace = FetchPace(BUSY)
    feed(pace, per_fetch=0, fetches=3, start=0.0, step=WINDOW_S)
    assert pace.mode is QUIET
    # 100 records in the first 0.1 s of a window: busy at once, not at its end.
    switches = feed(pace, per_fetch=20, fetches=5, start=2.5, step=0.02)
    assert switches == [BUSY]
    assert pace.mode is BUSY


def test_at_exactly_the_busy_poll_rate_it_stays_busy() -> None:
    pace = FetchPace(BUSY)
    assert feed(pace, per_fetch=1, fetches=300, start=0.0, step=0.01) == []
