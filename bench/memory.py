"""The worker's memory: its RSS at ready and after the backlog, and its growth per
100k leads when, at the end, leads never seen before arrive (the one-off part, fetch
and producer buffers, is paid by then)."""

from __future__ import annotations

import time

from bench.backlog import preload
from bench.common import Topics, say
from bench.worker import BenchWorker

#: Number of the first lead of the memory phase: far above any backlog's leads.
NEW_LEADS_FIRST = 10_000_000
#: Time given, once the events are counted, to the last batch's window write, so
#: RSS includes it (the same after the backlog and after the new leads).
SETTLE_S = 0.5


def backlog_memory(worker: BenchWorker, rss_ready: int, active: int) -> str:
    """RSS at ready -> after the backlog of ``active`` leads, and per 100k leads (as
    a table cell)."""
    time.sleep(SETTLE_S)
    rss_loaded = worker.rss_kib()
    grown_mib = (rss_loaded - rss_ready) / 1024
    # A small run's leads can weigh less than what the worker frees after its
    # start (fetch buffers, the preload): then there is no figure to scale up.
    memory = f"{rss_ready / 1024:.0f} -> {rss_loaded / 1024:.0f} MiB" + (
        f" ({grown_mib * 100_000 / max(active, 1):.0f} MiB per 100k leads)"
        if grown_mib > 0
        else " (not measurable at this size)"
    )
    say(
        f"memory: RSS {rss_ready / 1024:.0f} MiB at ready, {rss_loaded / 1024:.0f} MiB "
        f"after {active} leads -> {memory}"
    )
    return memory


def marginal_memory(
    worker: BenchWorker, bootstrap: str, topics: Topics, n_leads: int
) -> tuple[str, int]:
    """RSS per 100k leads the worker had never seen (as a table cell), and how many
    such leads arrived.

    The backlog's mix over ``n_leads`` new lead numbers, three events per number: the
    Zipf draw leaves some numbers out, so the leads that did arrive are counted.
    """
    rss_before = worker.rss_kib()
    done_before = worker.events_done()
    new_leads = preload(
        bootstrap, topics, 3 * n_leads, n_leads, seed=44, first_lead=NEW_LEADS_FIRST
    )
    worker.wait_events_done(done_before + 3 * n_leads)
    time.sleep(SETTLE_S)
    grown_mib = (worker.rss_kib() - rss_before) / 1024
    say(f"memory: {grown_mib:+.0f} MiB for {new_leads} new leads")
    # A few thousand leads can weigh less than what the allocator hands back meanwhile.
    cell = (
        f"{grown_mib * 100_000 / max(new_leads, 1):.0f} MiB"
        if grown_mib > 0
        else f"not measurable at this size (RSS {grown_mib:+.0f} MiB)"
    )
    return cell, new_leads
