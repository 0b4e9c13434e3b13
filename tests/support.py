"""Helpers shared by unit and integration tests."""

from __future__ import annotations

from typing import Any


def close_app_loops(app: Any) -> None:
    """Close the event loop ``create_app`` leaves in Faust's (never started) consumer
    thread; unclosed, it turns into a ResourceWarning whenever gc gets to it. The
    in-loop consumer (the default) has no loop of its own: nothing to close."""
    consumer = getattr(app, "_consumer", None)
    thread = getattr(consumer, "_thread", None)
    loop = getattr(thread, "thread_loop", None)
    owned = getattr(thread, "_close_thread_loop_on_stop", False)
    if owned and loop is not None and not loop.is_closed():
        loop.close()
