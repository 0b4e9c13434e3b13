"""The naive baseline: a Faust agent that handles one event at a time.

Run by ``bench/run.py`` as a subprocess::

    python -m bench.naive_faust <bootstrap> <app_id> <result.json> <stop_after> <topic>...

Faust's data directory goes next to ``result.json`` (the bench's temporary directory).

Iterates the topics per event (raw values + ``orjson.loads``), updates a memory-store
table per event (``table[lead] = table[lead] + 1``) and, after ``stop_after`` events,
writes ``{"events": n, "seconds": t}`` (first to last event) to ``result.json``: to a
temporary name first, then renamed, so the reader never sees a partial file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import faust
import orjson

from bench.common import kafka_security
from streams.faust_adapter.app import broker_credentials


def main(argv: list[str]) -> None:
    bootstrap, app_id, result_path, stop_after_s, *topics = argv
    stop_after = int(stop_after_s)
    result = Path(result_path)
    app = faust.App(
        app_id,
        broker=";".join(f"kafka://{hp}" for hp in bootstrap.split(",")),
        # The baseline connects as the worker does, whatever the cluster requires.
        broker_credentials=broker_credentials(kafka_security()),
        store="memory://",
        topic_partitions=4,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=str(result.parent / f"{app_id}-data"),
        table_standby_replicas=0,
    )
    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    table = app.Table("naive-counts", default=int, partitions=4)
    state: dict[str, Any] = {"n": 0, "first": 0.0}

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for event in stream.events():
            doc = orjson.loads(event.value)
            lead = doc["lead_id"]
            table[lead] = table[lead] + 1
            n = state["n"] = state["n"] + 1
            if n == 1:
                state["first"] = time.perf_counter()
            elif n == stop_after:
                seconds = time.perf_counter() - state["first"]
                partial = result.with_suffix(".partial")
                partial.write_bytes(  # once, at the end: blocking is fine
                    orjson.dumps({"events": n - 1, "seconds": seconds})
                )
                partial.rename(result)

    worker = faust.Worker(app, loglevel="warn", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
