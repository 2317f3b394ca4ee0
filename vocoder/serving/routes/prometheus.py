"""``GET /metrics``: the app's metrics (:class:`vocoder.serving.metrics.Metrics`) as Prometheus text."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..state import serving_state

__all__ = ["router", "PATH"]

PATH = "/metrics"

router = APIRouter()


@router.get(PATH)
async def prometheus(request: Request):
    return Response(generate_latest(serving_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
