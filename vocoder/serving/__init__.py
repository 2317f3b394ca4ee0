"""``vocoder serve``: the inference API as a network service (FastAPI + uvicorn), its clients and a Ray Serve
deployment.

* :func:`create_app` (:mod:`.app`): the ASGI app for a loaded :class:`vocoder.Vocoder`, with :class:`ServeConfig`:
  the routers of :mod:`.routes` (one per concern) behind :mod:`.gate` (API key, request metrics), sharing
  :mod:`.state`; :mod:`.metrics` labels each request by its route, read from the app.
* :class:`Client`, :class:`AsyncClient` (:mod:`.client`): ``.synthesize(mel)``, ``.stream(chunks)``.
* :class:`BackgroundServer` (:mod:`.server`): the app served in a thread on a free loopback port.
* :mod:`.protocol`: the request bodies, the WAV answers and the stream frames.
* :mod:`.ray_serve`: ``serve run vocoder.serving:app`` (model from ``VOCODER_MODEL``) or
  ``vocoder serve --ray --replicas N``.

Names are imported on first use, so the client does not pull in FastAPI, and nothing here pulls in Ray unless
``app`` (the Ray Serve application) is asked for.
"""
from __future__ import annotations

import importlib

__all__ = ["create_app", "ServeConfig", "Client", "AsyncClient", "ServingError", "Synthesis", "BackgroundServer",
           "app"]

_WHERE = {
    "create_app": ".app",
    "ServeConfig": ".config",
    "Client": ".client",
    "AsyncClient": ".client",
    "ServingError": ".client",
    "Synthesis": ".client",
    "BackgroundServer": ".server",
}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    if name == "app":  # `serve run vocoder.serving:app`: the Ray Serve application, configured from the environment
        from .ray_serve import app_from_env

        return app_from_env()
    raise AttributeError(f"module 'vocoder.serving' has no attribute {name!r}")
