"""Running the assembled app under Faust's worker, with a deadline on stopping."""

from __future__ import annotations

import logging

import faust

from streams.faust_adapter.app import Leadstream, exit_after
from streams.logs import fold_repeats, quiet_bad_requests

log = logging.getLogger("leadstream")


def _worker_with_deadline(faust_worker: type, stop_timeout_s: float) -> type:
    class Worker(faust_worker):
        """Faust's worker with a deadline on graceful stops (see ``exit_after``)."""

        def _on_sigint(self) -> None:
            exit_after(stop_timeout_s)
            super()._on_sigint()

        def _on_sigterm(self) -> None:
            exit_after(stop_timeout_s)
            super()._on_sigterm()

        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            # mode replaces the root handlers just before: fold Kafka's repeats there.
            fold_repeats()
            quiet_bad_requests()

    return Worker


def run(ls: Leadstream, *, loglevel: int) -> None:
    """Run the worker until SIGINT/SIGTERM (a graceful stop, then exit)."""
    # The same numeric level for our logging and mode's: the bench saw the root
    # logger at DEBUG with the name "warn", and log records cost hot-path CPU.
    worker_class = _worker_with_deadline(faust.Worker, ls.settings.stop_timeout_s)
    worker = worker_class(ls.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
