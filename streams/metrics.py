"""Prometheus metrics of the pipeline.

A fresh :class:`Metrics` per app, each on its own ``CollectorRegistry`` (injected), so
tests read exact values with ``registry.get_sample_value`` and two apps in one process
never share counters. Labels are bounded sets (topic, outcome, reason, stage, cause,
partition, grade, model version, KPI span); a lead id is never a label.

The sales funnel's live KPIs come from the stage changes the pipeline publishes:
leads entering each stage by grade and model version (conversion between stages is
the ratio of two stages' rates), the time from one stage to another
(:data:`KPI_SPANS`), and follow-up SLA breaches.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Seconds; batches take milliseconds, decay timers should fire well under 2 s late.
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Seconds; a window's write is paced over 80% of the time the window was open and
#: takes longer when the worker falls behind: at 2 s windows often past 2.5 s.
_WINDOW_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)
#: Seconds between an event's own time and its processing: from sub-second to days.
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)


#: Seconds from one stage to another: minutes (an SLA) to a quarter (a sales cycle).
_STAGE_BUCKETS = (
    60,
    300,
    900,
    3600,
    4 * 3600,
    8 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    30 * 86400,
    60 * 86400,
    90 * 86400,
)
#: The time-to-stage KPIs: (span label, from stage, to stage). "lead" is the lead's
#: first event. A span from a stage is observed when the lead leaves that stage for
#: the other directly (a lead that skipped MQL has no MQL-to-SQL time).
KPI_SPANS: tuple[tuple[str, str, str], ...] = (
    ("mql_to_sql", "mql", "sql"),
    ("sql_to_accepted", "sql", "accepted"),
    ("lead_to_opportunity", "lead", "opportunity"),
)


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry
    events: Counter
    bots: Counter
    dlq: Counter
    transitions: Counter
    stage_entries: Counter
    time_to_stage: Histogram
    sla_breaches: Counter
    batch_duration: Histogram
    batch_size: Histogram
    event_lag: Histogram
    decay_timer_delay: Histogram
    state_writes: Counter
    flush_duration: Histogram
    discarded: Counter
    migrated: Counter
    gc_pause: Histogram
    consumer_lag: Gauge
    leads: Gauge
    scheduled: Gauge
    state_cache: Gauge
    events_acked: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        reg = registry if registry is not None else CollectorRegistry(auto_describe=True)
        return cls(
            registry=reg,
            events=Counter(
                "leadstream_events",
                "Input messages handled, by source topic and outcome "
                "(scored, bot, duplicate, late, replayed, rerouted, tick).",
                ["topic", "outcome"],
                registry=reg,
            ),
            bots=Counter(
                "leadstream_bots_filtered",
                "Events filtered as not a person's and never scored, by source topic and "
                "reason (tracker_flag, user_agent, email_after_delivery, email_click_gap, "
                "email_links, web_burst, email_no_open); includes events scored first and "
                "taken back once a pattern showed, which leadstream_events_total counted as "
                "scored, and clicks held for want of an open that one later released.",
                ["topic", "reason"],
                registry=reg,
            ),
            dlq=Counter(
                "leadstream_dlq",
                "Messages sent to the dead-letter topic, by source topic and reason.",
                ["topic", "reason"],
                registry=reg,
            ),
            transitions=Counter(
                "leadstream_transitions",
                "Stage changes published on lead.qualified.",
                ["from_stage", "to_stage", "cause"],
                registry=reg,
            ),
            stage_entries=Counter(
                "leadstream_stage_entries",
                "Leads entering a stage (every cause), by the lead's grade then and the "
                "model version that moved it: the funnel.",
                ["stage", "grade", "model_version"],
                registry=reg,
            ),
            time_to_stage=Histogram(
                "leadstream_time_to_stage_seconds",
                "Seconds from one stage to the next (span: mql_to_sql, sql_to_accepted, "
                "lead_to_opportunity from the lead's first event).",
                ["span"],
                buckets=_STAGE_BUCKETS,
                registry=reg,
            ),
            sla_breaches=Counter(
                "leadstream_sla_breaches",
                "Follow-up SLAs breached: a lead waited in the stage past its deadline "
                "without an outcome meeting it.",
                ["stage"],
                registry=reg,
            ),
            batch_duration=Histogram(
                "leadstream_batch_duration_seconds",
                "Time to score one batch and hand its writes to the producer.",
                buckets=_FAST_BUCKETS,
                registry=reg,
            ),
            batch_size=Histogram(
                "leadstream_batch_size_events",
                "Messages per processed batch.",
                buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
                registry=reg,
            ),
            event_lag=Histogram(
                "leadstream_event_lag_seconds",
                "Processing time minus event time of scored events.",
                buckets=_LAG_BUCKETS,
                registry=reg,
            ),
            decay_timer_delay=Histogram(
                "leadstream_decay_timer_delay_seconds",
                "How late a decay-driven stage change was processed after its exact time.",
                buckets=_FAST_BUCKETS,
                registry=reg,
            ),
            state_writes=Counter(
                "leadstream_state_writes",
                "Lead states written to the table (and its changelog): once per lead "
                "per write-behind window.",
                registry=reg,
            ),
            events_acked=Counter(
                "leadstream_events_acked",
                "Input messages whose write-behind window is written (table and "
                "changelog) and whose offsets are acked; behind leadstream_events_total "
                "and leadstream_dlq_total by the windows still open or being written.",
                registry=reg,
            ),
            flush_duration=Histogram(
                "leadstream_state_flush_duration_seconds",
                "Time to write one window's lead states and ack its offsets.",
                buckets=_WINDOW_BUCKETS,
                registry=reg,
            ),
            discarded=Counter(
                "leadstream_events_discarded",
                "Events scored but not acked because a rebalance came before their "
                "window was written (the write at the revoke failed or overran, or, "
                "exactly-once, the group refused a window of a member it had dropped); "
                "the partition's owner reads them again.",
                registry=reg,
            ),
            migrated=Counter(
                "leadstream_states_migrated",
                "Lead states carried over to the scoring model in use (scored under "
                "another one), as they were first read.",
                registry=reg,
            ),
            gc_pause=Histogram(
                "leadstream_gc_pause_seconds",
                "Pauses of Python's cyclic garbage collector, by generation collected.",
                ["generation"],
                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                registry=reg,
            ),
            consumer_lag=Gauge(
                "leadstream_consumer_lag",
                "Messages between the committed offset and the end of each assigned "
                "input partition.",
                ["topic", "partition"],
                registry=reg,
            ),
            leads=Gauge(
                "leadstream_leads",
                "Leads whose state this worker holds (active partitions).",
                registry=reg,
            ),
            scheduled=Gauge(
                "leadstream_decay_scheduled",
                "Leads with a pending decay-driven stage change on this worker.",
                registry=reg,
            ),
            state_cache=Gauge(
                "leadstream_state_cache_leads",
                "Decoded lead states held in memory, as of the last window write "
                "(bounded by LEADSTREAM_STATE_CACHE_LEADS).",
                registry=reg,
            ),
        )
