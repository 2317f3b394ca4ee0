"""The ASGI app of ``vocoder serve`` (FastAPI): synthesis, streaming, info, health and Prometheus metrics.

Routes (each declared once, in its router under :mod:`vocoder.serving.routes`, which documents it):

* ``POST /v1/synthesize``: a mel in, its WAV out, concurrent requests decoded in one batch.
* ``WS /v1/stream``: mel chunks in, exact audio out as soon as it is final.
* ``GET /v1/info``, ``GET /healthz`` (never needs the key), ``GET /metrics`` (Prometheus text).

In front of them, :class:`vocoder.serving.gate.Gate` checks the API key and counts each request under its route's
path, the labels read from the app's routes (:func:`vocoder.serving.metrics.route_labels`).
"""
from __future__ import annotations

import contextlib
from typing import Optional

from fastapi import FastAPI

from .config import ServeConfig
from .gate import Gate
from .metrics import Metrics
from .routes import ROUTERS
from .state import ServingState

__all__ = ["create_app", "ServingState", "Metrics"]


def create_app(voc, config: Optional[ServeConfig] = None) -> FastAPI:
    """The service for a loaded :class:`vocoder.Vocoder` (``Vocoder.from_pretrained(...)``, on any device).

    The model worker, the batcher and the stream pool start with the app's lifespan (uvicorn, Ray Serve and
    ``httpx``/Starlette test clients all run it) and stop with it.
    """
    state = ServingState(voc, config or ServeConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(title="vocoder", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.vocoder = state
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(Gate, state=state, routes=app.routes)
    return app
