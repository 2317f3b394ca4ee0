"""``GET /v1/info`` (the model and the limits, for clients to check their mels against) and ``GET /healthz``
(200 once the model worker runs, 503 while starting up or shutting down; never needs the API key)."""
from __future__ import annotations

from fastapi import APIRouter, Request

from ..state import serving_state
from .common import error

__all__ = ["router", "INFO_PATH", "HEALTH_PATH"]

INFO_PATH = "/v1/info"
HEALTH_PATH = "/healthz"

router = APIRouter()


@router.get(HEALTH_PATH)
async def healthz(request: Request):
    state = serving_state(request)
    if not (state.ready and state.worker.alive):
        return error(503, "starting up or shutting down")
    return {"status": "ok"}


@router.get(INFO_PATH)
async def info(request: Request):
    return serving_state(request).info()
