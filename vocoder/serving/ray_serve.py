"""Ray Serve deployment of the same app: replicas on a Ray cluster behind Ray's HTTP proxy, same routes, same
clients.

Each replica loads the model and runs :func:`vocoder.serving.create_app` (its own model worker, batcher and stream
pool); Ray's proxy spreads requests and WebSocket streams over the replicas. Three ways to start it:

    vocoder serve --model model.pt --ray --replicas 2 [--ray-address auto] [--port 8000]
    VOCODER_MODEL=model.pt serve run vocoder.serving:app                      # Ray's CLI, settings from env
    serve run vocoder.serving.ray_serve:build_app model=model.pt replicas=2    # Ray's CLI, settings as arguments

Settings from the environment (``app``) or arguments (``build_app``): ``VOCODER_MODEL`` / ``model`` (required; a
path every node can read, or a preset with ``random_init``), ``VOCODER_RANDOM_INIT`` / ``random_init``,
``VOCODER_DEVICE`` / ``device``, ``VOCODER_REPLICAS`` / ``replicas``, ``VOCODER_CPUS_PER_REPLICA`` /
``cpus_per_replica``, ``VOCODER_API_KEY`` / ``api_key``, and ``VOCODER_SERVE_CONFIG`` / ``serve_config``: JSON of
:class:`ServeConfig` fields (``{"max_batch": 16, "max_wait_ms": 5}``).

Needs ``pip install 'ray[serve]'`` (the ``ray`` extra).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Optional

from .config import API_KEY_ENV, ServeConfig

log = logging.getLogger(__name__)

__all__ = ["application", "build_app", "app_from_env", "run", "VocoderService"]

try:
    from ray import serve
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("Ray Serve is not installed: pip install 'ray[serve]' (or the package's 'ray' extra)") from e


@serve.ingress()
class VocoderService:
    """One replica: the model, loaded once, behind :func:`vocoder.serving.create_app`."""

    def __init__(self, model: str, config: Optional[dict] = None, device: str = "cpu", random_init: bool = False,
                 model_config: Optional[str] = None, threads: Optional[int] = None, hub: Optional[dict] = None):
        import torch

        from vocoder import Vocoder

        if threads:
            torch.set_num_threads(int(threads))
        self.voc = Vocoder.from_pretrained(model, device=device, config=model_config, random_init=random_init,
                                           **dict(hub or {}))  # revision / cache_dir / local_files_only
        cfg = dict(config or {})
        cfg["model_name"] = cfg.get("model_name") or model
        self.config = ServeConfig(**cfg)

    def __serve_build_asgi_app__(self):
        from .app import create_app

        return create_app(self.voc, self.config)


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def application(model: str, config: Optional[ServeConfig] = None, replicas: int = 1, device: str = "cpu",
                random_init: bool = False, model_config: Optional[str] = None, cpus_per_replica: float = 1.0,
                threads: Optional[int] = None, hub: Optional[dict] = None):
    """The bound Ray Serve application (``serve.run(application(...))``); ``hub``: ``Vocoder.from_pretrained``'s
    ``revision`` / ``cache_dir`` / ``local_files_only`` for a Hub repo id (each replica resolves it in its cache)."""
    config = config or ServeConfig()
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    options = {"num_cpus": float(cpus_per_replica)}
    if str(device).startswith("cuda"):
        options["num_gpus"] = 1
    # Ray's own per-replica cap on in-flight requests would queue requests before our batcher sees them (and
    # hide our 503): let every request and stream the replica admits through.
    ongoing = config.max_queue + config.max_streams + 8
    dep = serve.deployment(VocoderService, name="vocoder", num_replicas=int(replicas), ray_actor_options=options,
                           max_ongoing_requests=ongoing)
    return dep.bind(model, config.to_dict(), device, random_init, model_config, threads, hub)


def build_app(args: dict):
    """Ray Serve application builder: ``serve run vocoder.serving.ray_serve:build_app model=... replicas=2``."""
    args = dict(args or {})
    model = args.pop("model", None)
    if not model:
        raise ValueError("build_app needs model=PATH (or a preset name with random_init=true)")
    cfg = args.pop("serve_config", None)
    cfg = json.loads(cfg) if isinstance(cfg, str) else dict(cfg or {})
    if args.get("api_key"):
        cfg["api_key"] = args.pop("api_key")
    elif os.environ.get(API_KEY_ENV):
        cfg.setdefault("api_key", os.environ[API_KEY_ENV])
    args.pop("api_key", None)
    threads = args.pop("threads", None)
    app = application(model, ServeConfig(**cfg), replicas=int(args.pop("replicas", 1)),
                      device=args.pop("device", "cpu"), random_init=_truthy(args.pop("random_init", False)),
                      model_config=args.pop("model_config", None),
                      cpus_per_replica=float(args.pop("cpus_per_replica", 1)),
                      threads=int(threads) if threads else None)
    if args:
        raise ValueError(f"unknown arguments {sorted(args)}")
    return app


def app_from_env():
    """``serve run vocoder.serving:app``: the application configured from ``VOCODER_*`` environment variables."""
    env = os.environ
    if not env.get("VOCODER_MODEL"):
        raise ValueError("set VOCODER_MODEL (a model path every node can read, or a preset name with "
                         "VOCODER_RANDOM_INIT=1) before `serve run vocoder.serving:app`")
    args = {"model": env["VOCODER_MODEL"]}
    for key, name in (("random_init", "VOCODER_RANDOM_INIT"), ("device", "VOCODER_DEVICE"),
                      ("replicas", "VOCODER_REPLICAS"), ("cpus_per_replica", "VOCODER_CPUS_PER_REPLICA"),
                      ("serve_config", "VOCODER_SERVE_CONFIG"), ("model_config", "VOCODER_MODEL_CONFIG"),
                      ("threads", "VOCODER_THREADS")):
        if env.get(name):
            args[key] = env[name]
    return build_app(args)


def run(model: str, config: Optional[ServeConfig] = None, replicas: int = 1, host: str = "127.0.0.1",
        port: int = 8000, address: Optional[str] = None, blocking: bool = True, **kwargs):
    """Start (or join, with ``address``) a Ray instance, start Serve's HTTP proxy on ``host:port`` and run the
    application under the name ``vocoder`` at ``/``. Blocks until interrupted when ``blocking``."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False) if address else ray.init(include_dashboard=False)
    serve.start(http_options={"host": host, "port": int(port)})
    app = application(model, config, replicas=replicas, **kwargs)
    if not blocking:
        return serve.run(app, name="vocoder", route_prefix="/")
    try:
        serve.run(app, name="vocoder", route_prefix="/", blocking=True)
    except KeyboardInterrupt:
        log.warning("interrupted: shutting down the vocoder application")
    finally:
        serve.delete("vocoder")
        if started and not address:  # our own local instance: take it down; a cluster keeps running
            serve.shutdown()
            ray.shutdown()
