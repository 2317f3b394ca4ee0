"""The service's Prometheus metrics, and the ``route`` label each request is counted under.

The labels are the app's own routes (:func:`route_labels`), read from ``app.routes`` rather than listed by hand, so
a new route is counted under its path from the start; any other path (``/openapi.json``, a typo) is ``"other"``.
"""
from __future__ import annotations

from typing import FrozenSet, Iterable, Optional

from fastapi.routing import APIRoute, APIWebSocketRoute
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

try:  # recent FastAPI keeps an included router as one entry of app.routes, and flattens them here
    from fastapi.routing import iter_route_contexts as _flat_routes
except ImportError:  # older FastAPI: include_router copies the router's routes into app.routes
    _flat_routes = iter

__all__ = ["Metrics", "route_labels", "route_label", "OTHER"]

OTHER = "other"  # the label of a path that is none of the app's routes
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def route_labels(routes: Iterable) -> FrozenSet[str]:
    """The paths of the routes we declared (``app.routes``: FastAPI's HTTP and WebSocket routes; Starlette's own,
    such as ``/openapi.json``, are not ours)."""
    return frozenset(r.path for r in _flat_routes(routes)
                     if isinstance(getattr(r, "original_route", r), (APIRoute, APIWebSocketRoute)))


def route_label(path: str, labels: FrozenSet[str]) -> str:
    """``path`` when it is one of ``labels``, else :data:`OTHER` (the label set stays bounded)."""
    return path if path in labels else OTHER


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (several apps can live in one process)."""

    def __init__(self, max_batch: int):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("vocoder_requests", "HTTP requests and WebSocket streams by route and status "
                                "(HTTP code, or WebSocket close code)", ["route", "code"], registry=r)
        self.errors = Counter("vocoder_errors", "requests answered with an error (HTTP 4xx/5xx, streams closed "
                              "with a code other than 1000)", ["route", "code"], registry=r)
        self.latency = Histogram("vocoder_request_latency_seconds", "time from request to response (streams: to "
                                 "the close)", ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        sizes = sorted({1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, max_batch})
        self.batch_size = Histogram("vocoder_batch_size", "requests per batched decode", buckets=sizes, registry=r)
        self.batch_frames = Histogram("vocoder_batch_frames", "mel frames per batched decode",
                                      buckets=(64, 256, 1024, 4096, 16384, 65536), registry=r)
        self.batch_seconds = Histogram("vocoder_batch_seconds", "time of a batched decode (waiting for the worker "
                                       "included)", buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("vocoder_queue_depth", "synthesis requests admitted and not yet answered", registry=r)
        self.active_streams = Gauge("vocoder_active_streams", "open streams", registry=r)
        self.streams = Counter("vocoder_streams", "streams by outcome (completed, disconnected, bad_input, "
                               "rejected, idle, error)", ["outcome"], registry=r)
        self.audio_seconds = Counter("vocoder_audio_seconds", "seconds of audio produced", ["route"], registry=r)
        self.first_audio = Histogram("vocoder_stream_first_audio_seconds", "time from a stream's first mel chunk to "
                                     "its first audio", buckets=_LATENCY_BUCKETS, registry=r)
        self.stream_round = Histogram("vocoder_stream_round_size", "stream steps the model worker ran together in "
                                      "one round", buckets=sizes, registry=r)
        self.stream_calls = Counter("vocoder_stream_network_calls", "network calls of those rounds (fewer than "
                                    "steps when steps were batched)", registry=r)
        self.body_refusals = Counter("vocoder_body_refusals", "request bodies not read: 'timeout' (no progress for "
                                     "--body-timeout-s, answered 408), 'busy' (--max-body-readers reached, 503)",
                                     ["reason"], registry=r)
        self.nonfinite = Counter("vocoder_nonfinite_audio", "decodes refused because the model produced NaN / inf "
                                 "audio (HTTP 422, stream close 1007)", ["route"], registry=r)
        self.worker_busy = Gauge("vocoder_worker_busy_seconds", "seconds the model worker spent running jobs",
                                 registry=r)

    def record(self, route: str, code: int, seconds: Optional[float] = None, error: Optional[bool] = None) -> None:
        self.requests.labels(route, str(code)).inc()
        if error if error is not None else code >= 400:
            self.errors.labels(route, str(code)).inc()
        if seconds is not None:
            self.latency.labels(route).observe(seconds)
