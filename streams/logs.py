"""Logging for a worker that must stay readable while Kafka is away.

With the broker unreachable, aiokafka logs an ERROR per failed request ("Unable
connect to node", "Unable to update metadata"): thousands a second, 157 MB of log in
three minutes once. :class:`RepeatFilter` lets the first record of each kind through
per interval and folds the rest into one line with their count when the interval
ends, so an outage reads as a few lines a minute that still say how bad it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Loggers whose repeated records are folded (Kafka clients and Faust's transport).
NOISY_LOGGERS = ("aiokafka", "faust.transport", "kafka")
#: Seconds over which repeats of one record are folded into a count.
REPEAT_INTERVAL_S = 10.0


class RepeatFilter(logging.Filter):
    """Pass a record's first occurrence per interval; count repeats and report them.

    A record's kind is its logger, level and unformatted message (so "node 1" and
    "node 2" are one kind). When a kind shows up again after its interval, the count
    of what was held back is appended to that record's message.
    """

    def __init__(
        self, interval_s: float = REPEAT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        #: kind -> (start of its interval, records held back in it)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        seen = self._seen.get(kind)
        if seen is not None and now - seen[0] < self.interval_s:
            self._seen[kind] = (seen[0], seen[1] + 1)
            return False
        self._seen[kind] = (now, 0)
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} [{seen[1]} more like this in the last {now - seen[0]:.0f}s]"
        return True


def fold_repeats(interval_s: float = REPEAT_INTERVAL_S) -> None:
    """Install a :class:`RepeatFilter` on each handler of the root logger.

    On the handlers rather than the loggers, so records of child loggers
    (``aiokafka.conn``, ...) pass through it too; one per handler, since every handler
    sees the same record. Only :data:`NOISY_LOGGERS` are folded.
    """
    for handler in logging.getLogger().handlers:
        handler.addFilter(_NoisyOnly(RepeatFilter(interval_s)))


class _NoisyOnly(logging.Filter):
    def __init__(self, repeat: RepeatFilter) -> None:
        super().__init__()
        self.repeat = repeat

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(NOISY_LOGGERS) or self.repeat.filter(record)


class BadRequestFilter(logging.Filter):
    """aiohttp logs every malformed or oversize request at ERROR with a traceback, and
    the error's text quotes the start of the request line (a URL may hold a lead id or
    an email address). One plain line per kind instead, without the request's content,
    folded like Kafka's repeats: a client sending junk cannot flood the log."""

    def __init__(self, interval_s: float = REPEAT_INTERVAL_S) -> None:
        super().__init__()
        self.repeat = RepeatFilter(interval_s)

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        record.msg = f"rejected a malformed HTTP request ({type(exc).__name__})"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return self.repeat.filter(record)


def quiet_bad_requests() -> None:
    """Install :class:`BadRequestFilter` on aiohttp's server logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestFilter) for f in logger.filters):
        logger.addFilter(BadRequestFilter())
