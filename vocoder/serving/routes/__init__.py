"""The service's routes, one :class:`fastapi.APIRouter` per concern; :func:`vocoder.serving.app.create_app`
includes :data:`ROUTERS`, and the metrics label each route by its path (:func:`vocoder.serving.metrics.route_labels`).

* :mod:`.synthesize`: ``POST /v1/synthesize`` (a mel in, a WAV out; batched).
* :mod:`.stream`: ``WS /v1/stream`` (mel chunks in, audio out as soon as it is final).
* :mod:`.info`: ``GET /v1/info``, ``GET /healthz`` (never needs the key).
* :mod:`.prometheus`: ``GET /metrics`` (Prometheus text).
"""
from __future__ import annotations

from . import info, prometheus, stream, synthesize

__all__ = ["ROUTERS"]

ROUTERS = (info.router, prometheus.router, synthesize.router, stream.router)
