"""The ASGI middleware in front of every route: the API key (all routes but ``/healthz``) and the request metrics
of HTTP routes (streams count themselves when they close), under the route's own label."""
from __future__ import annotations

import hmac
import json
import time
from typing import FrozenSet, List, Optional

from .metrics import route_label, route_labels
from .protocol import CLOSE_CODES
from .routes.info import HEALTH_PATH
from .state import ServingState

__all__ = ["Gate"]


def _header(scope, name: bytes) -> Optional[str]:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return v.decode("latin-1")
    return None


class Gate:
    """ASGI middleware: the API key on every route but ``/healthz``, and request metrics for HTTP routes.

    ``routes``: the app's route list (``app.routes``); the metrics' labels are derived from it at the first request,
    once every router is in.
    """

    def __init__(self, app, state: ServingState, routes: List):
        self.app = app
        self.state = state
        self._routes = routes
        self._labels: Optional[FrozenSet[str]] = None

    @property
    def labels(self) -> FrozenSet[str]:
        if self._labels is None:
            self._labels = route_labels(self._routes)
        return self._labels

    def _authorized(self, scope) -> bool:
        key = self.state.config.api_key
        if key is None or scope["path"] == HEALTH_PATH:
            return True
        given = _header(scope, b"x-api-key")
        auth = _header(scope, b"authorization")
        if given is None and auth is not None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given.encode(), key.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        route = route_label(scope["path"], self.labels)
        metrics = self.state.metrics
        msg = "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
        if not self._authorized(scope):
            if scope["type"] == "http":
                body = json.dumps({"detail": msg}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                metrics.record(route, 401)
            else:  # accept, then close with a reason the client can read (a refusal before accept is a bare 403)
                await receive()
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_CODES["policy"], "reason": msg})
                metrics.record(route, CLOSE_CODES["policy"], error=True)
                metrics.streams.labels("unauthorized").inc()
            return
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        status = [500]
        t0 = time.perf_counter()

        async def send_(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_)
        finally:
            metrics.record(route, status[0], time.perf_counter() - t0)
