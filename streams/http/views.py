"""HTTP views on Faust's web server: lead query, lead history, liveness, readiness,
metrics.

Views only translate: the lead view reads the loop's newest state of a lead and
formats ``scoring.snapshot``; the history view formats the lead's recent scored and
filtered events and stage changes (``streams.leadhistory``); ``/metrics`` returns
what prometheus_client renders. ``/leads/{lead_id}`` and ``/leads/{lead_id}/history``
are answered by the worker owning the lead's partition; any other worker forwards
the request there (Faust's table_route, headers included).

With an API token (``LEADSTREAM_API_TOKEN`` or ``_FILE``), ``/leads/...`` (and
``/metrics`` if ``LEADSTREAM_METRICS_REQUIRE_TOKEN``, and Faust's ``/router``) answer
401 without ``Authorization: Bearer <token>``; ``/health`` and ``/ready`` stay open.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web as aiohttp_web
from prometheus_client import generate_latest

from scoring import snapshot
from streams.core.contract import format_time, readable_points
from streams.faust_adapter.web import add_middleware
from streams.leadhistory import history_body

if TYPE_CHECKING:
    from streams.faust_adapter.app import Leadstream

#: aiohttp refuses a charset inside content_type; the text format is UTF-8 anyway.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"


class BearerToken:
    """Checks ``Authorization: Bearer <token>`` in constant time; None: no token set."""

    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None

    @property
    def required(self) -> bool:
        return self._expected is not None

    def allows(self, request: Any) -> bool:
        if self._expected is None:
            return True
        given = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, self._expected)


def unauthorized(web: Any) -> Any:
    response = web.json({"error": "missing or wrong bearer token"}, status=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="leadstream"'
    return response


def lead_view_body(ls: Leadstream, lead_id: str, now: float) -> dict[str, Any] | None:
    state = ls.loop.lead_state(lead_id, ls.table.get)
    if state is None:
        return None
    body = readable_points(snapshot(state, ls.model, now))
    for key in ("clock", "next_change_at", "sla_due", "stage_entered_at"):
        if isinstance(body.get(key), float):
            body[key] = format_time(body[key])
    return body


def history_view_body(ls: Leadstream, lead_id: str, now: float) -> dict[str, Any] | None:
    state = ls.loop.lead_state(lead_id, ls.table.get)
    if state is None:
        return None
    return history_body(state, ls.model, now)


#: Faust's own views that stay on (lead forwarding needs them): behind the token.
GUARDED_PREFIXES = ("/router",)


def register_views(ls: Leadstream) -> None:
    app = ls.app
    token = BearerToken(ls.settings.http_token)
    metrics_token = token if ls.settings.metrics_require_token else BearerToken(None)

    @aiohttp_web.middleware
    async def guard_internal_views(request: Any, handler: Any) -> Any:
        if request.path.startswith(GUARDED_PREFIXES) and not token.allows(request):
            return aiohttp_web.json_response(
                {"error": "missing or wrong bearer token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="leadstream"'},
            )
        return await handler(request)

    add_middleware(app, guard_internal_views)

    async def lead_body(web: Any, request: Any, lead_id: str) -> Any:
        body = lead_view_body(ls, lead_id, time.time())
        if body is None:
            return web.json({"error": "unknown lead", "lead_id": lead_id}, status=404)
        return web.json(body)

    # On the lead's owner: this worker's answer; elsewhere, the request forwarded.
    routed_lead: Any = app.table_route(table=ls.table, match_info="lead_id")(lead_body)

    @app.page("/leads/{lead_id}")
    async def lead(web: Any, request: Any, lead_id: str) -> Any:
        # Checked before forwarding: an unauthenticated request learns nothing, not
        # even which worker owns the lead.
        if not token.allows(request):
            return unauthorized(web)
        return await routed_lead(web, request, lead_id)

    async def history_body_view(web: Any, request: Any, lead_id: str) -> Any:
        body = history_view_body(ls, lead_id, time.time())
        if body is None:
            return web.json({"error": "unknown lead", "lead_id": lead_id}, status=404)
        return web.json(body)

    routed_history: Any = app.table_route(table=ls.table, match_info="lead_id")(history_body_view)

    @app.page("/leads/{lead_id}/history")
    async def history(web: Any, request: Any, lead_id: str) -> Any:
        if not token.allows(request):  # as /leads/{lead_id}: checked before forwarding
            return unauthorized(web)
        return await routed_history(web, request, lead_id)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        """Liveness: the event loop answers."""
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        """Readiness: partitions assigned and state recovered."""
        if ls.loop.ready and not app.rebalancing:
            return web.json({"status": "ready"})
        return web.json({"status": "starting"}, status=503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        if not metrics_token.allows(request):
            return unauthorized(web)
        return web.bytes(generate_latest(ls.metrics.registry), content_type=METRICS_CONTENT_TYPE)
