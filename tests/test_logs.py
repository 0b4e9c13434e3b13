"""Repeated Kafka client errors fold into one line per interval, with their count."""

from __future__ import annotations

import logging

from streams.logs import RepeatFilter, _NoisyOnly, fold_repeats


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_one_record_per_kind_per_interval_then_the_count() -> None:
    clock = Clock()
    repeat = RepeatFilter(interval_s=10.0, clock=clock)
    passed = []
    for second in range(25):  # an outage: 100 failed requests a second for 25 s
        clock.t = float(second)
        for node in range(100):
            r = record("aiokafka.conn", "Unable connect to node with id %s", node % 3)
            if repeat.filter(r):
                passed.append((second, r.getMessage()))
    assert passed == [
        (0, "Unable connect to node with id 0"),
        (10, "Unable connect to node with id 0 [999 more like this in the last 10s]"),
        (20, "Unable connect to node with id 0 [999 more like this in the last 10s]"),
    ]


def test_kinds_are_counted_apart() -> None:
    repeat = RepeatFilter(interval_s=10.0, clock=Clock())
    assert repeat.filter(record("aiokafka.client", "Unable to update metadata from %s", [1]))
    assert repeat.filter(record("aiokafka.conn", "Unable connect to node with id %s", 1))
    assert not repeat.filter(record("aiokafka.conn", "Unable connect to node with id %s", 2))


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_installed_on_the_root_handlers_it_folds_only_kafka_loggers() -> None:
    root = logging.getLogger()
    collect = Collect()
    root.addHandler(collect)
    try:
        fold_repeats(interval_s=60.0)
        for _ in range(5):
            logging.getLogger("aiokafka.conn").error("Unable connect to node with id %s", 1)
            logging.getLogger("leadstream.test").error("leadstream: something of ours")
    finally:
        root.removeHandler(collect)
        for handler in root.handlers:  # what fold_repeats added to the others
            handler.filters[:] = [f for f in handler.filters if not isinstance(f, _NoisyOnly)]
    names = [r.name for r in collect.records]
    assert names.count("leadstream.test") == 5 and names.count("aiokafka.conn") == 1


def test_a_malformed_request_is_one_plain_line_without_its_content() -> None:
    from aiohttp.http_exceptions import LineTooLong

    from streams.logs import BadRequestFilter

    bad = BadRequestFilter(interval_s=60.0)
    exc = LineTooLong("GET /leads/jane.doe@example.com" + "x" * 9000, "8190")
    passed = []
    for _ in range(50):
        r = logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request from %s",
            ("127.0.0.1",),
            (LineTooLong, exc, None),
        )
        if bad.filter(r):
            passed.append(r)
    [line] = passed
    assert line.getMessage() == "rejected a malformed HTTP request (LineTooLong)"
    assert line.exc_info is None and line.levelno == logging.WARNING
    other = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "boom", (), None)
    assert bad.filter(other) and other.getMessage() == "boom"
