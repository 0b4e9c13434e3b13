"""Faust's aiohttp web server, reached where Faust's own API stops."""

from __future__ import annotations

from typing import Any


def add_middleware(app: Any, middleware: Any) -> None:
    """Run ``middleware`` (aiohttp's) on every request of the app's web server, Faust's
    own views included: the only way to guard views Faust registers itself."""
    app.web.web_app.middlewares.append(middleware)
