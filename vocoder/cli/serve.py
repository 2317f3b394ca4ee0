"""``vocoder serve``: the model as an HTTP / WebSocket service (FastAPI + uvicorn), or on Ray Serve with ``--ray``.

    vocoder serve --model MODEL [--host 127.0.0.1] [--port 8000] [--device cpu|cuda] [--max-batch 8] [--max-wait-ms 10]
    vocoder serve --model MODEL --ray --replicas N [--ray-address auto]
    vocoder serve --model org/name [--revision REV]      # a Hugging Face Hub repo (fetched once into its cache)

Routes: POST /v1/synthesize (a .npy or JSON mel -> audio/wav), WS /v1/stream (mel chunks -> exact audio as soon as
it is final), GET /v1/info, GET /healthz, GET /metrics (Prometheus). The server binds to loopback unless --host
says otherwise; --api-key (or the VOCODER_API_KEY environment variable) makes every route but /healthz require
'Authorization: Bearer KEY' or 'X-API-Key: KEY'. Needs the 'serve' extra: pip install 'vocoder[serve]'
(and 'ray[serve]' for --ray). See vocoder.serving for the wire formats and the clients.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from .model_args import add_model_arguments, hub_options, load_model

log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="run the model as an HTTP / WebSocket service (batching, streaming)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p, device_help="cpu, cuda, ... (default: cpu)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, loopback only; 0.0.0.0 exposes the service)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free port)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--api-key", default=None,
                   help="require this key on every route but /healthz (default: $VOCODER_API_KEY, else none)")
    g = p.add_argument_group("batching and limits")
    g.add_argument("--max-batch", type=int, default=8, help="most requests decoded together (default: 8)")
    g.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="how long a request waits for others to join its batch (default: 10)")
    g.add_argument("--max-batch-frames", type=int, default=16384,
                   help="most mel frames in one batched decode (default: 16384)")
    g.add_argument("--max-queue", type=int, default=64,
                   help="most requests admitted and not yet answered; past it: 503 + Retry-After (default: 64)")
    g.add_argument("--max-frames", type=int, default=8192,
                   help="longest mel per request or streamed utterance, in frames (default: 8192)")
    g.add_argument("--max-body-mb", type=float, default=16.0,
                   help="largest request body or stream message, MiB (default: 16)")
    g.add_argument("--max-streams", type=int, default=16, help="most streams open at once (default: 16)")
    g.add_argument("--stream-idle-s", type=float, default=30.0,
                   help="close a stream that sent nothing for this long (default: 30)")
    g.add_argument("--body-timeout-s", type=float, default=5.0,
                   help="answer 408 to a request body that sends nothing for this long (default: 5)")
    g.add_argument("--max-body-readers", type=int, default=64,
                   help="most requests reading their bodies at once; past it: 503 (default: 64)")
    g.add_argument("--stream-script", choices=("off", "on", "auto"), default="off",
                   help="TorchScript copy of the streaming network per stream slot (faster small chunks, seconds "
                        "to build; default: off)")
    g.add_argument("--stream-prewarm", type=int, default=1, help="stream decoders built at startup (default: 1)")
    r = p.add_argument_group("Ray Serve")
    r.add_argument("--ray", action="store_true", help="run as a Ray Serve application instead of one uvicorn process")
    r.add_argument("--replicas", type=int, default=1, help="replicas with --ray (default: 1)")
    r.add_argument("--ray-address", default=None,
                   help="join this Ray cluster (e.g. 'auto'); default: start a local instance")
    r.add_argument("--cpus-per-replica", type=float, default=1.0, help="Ray CPUs per replica (default: 1)")
    return p


def _model_name(args):
    """``--model`` as ``/v1/info`` names it: a repo id with the ``--revision`` it was read at (``org/name@rev``)."""
    revision = getattr(args, "revision", None)
    if args.model and revision and "@" not in args.model and not os.path.exists(args.model):
        return f"{args.model}@{revision}"
    return args.model


def config_from_args(args):
    from vocoder.serving.config import API_KEY_ENV, ServeConfig

    return ServeConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_batch_frames=args.max_batch_frames,
                       max_queue=args.max_queue, max_frames=args.max_frames, max_body_mb=args.max_body_mb,
                       max_streams=args.max_streams, stream_idle_s=args.stream_idle_s,
                       body_timeout_s=args.body_timeout_s, max_body_readers=args.max_body_readers,
                       stream_script=args.stream_script, stream_prewarm=args.stream_prewarm,
                       api_key=args.api_key or os.environ.get(API_KEY_ENV) or None, model_name=_model_name(args))


def run(args) -> int:
    try:
        from vocoder.serving.server import is_loopback
        config = config_from_args(args)
    except ImportError as e:
        print(f"vocoder serve: needs the 'serve' extra (pip install 'vocoder[serve]'): {e}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(f"vocoder serve: listening on {args.host}: reachable from other machines"
              + ("" if config.api_key else " WITHOUT an API key (--api-key or $VOCODER_API_KEY)"), file=sys.stderr)
    if args.ray:
        try:
            from vocoder.serving import ray_serve
        except ImportError as e:
            print(f"vocoder serve --ray: {e}", file=sys.stderr)
            return 2
        ray_serve.run(args.model, config, replicas=args.replicas, host=args.host, port=args.port,
                      address=args.ray_address, device=args.device, random_init=args.random_init,
                      model_config=args.config, cpus_per_replica=args.cpus_per_replica, threads=args.threads,
                      hub=hub_options(args))
        return 0
    import torch

    from vocoder.serving.app import create_app
    from vocoder.serving.server import run as run_server

    if args.threads:
        torch.set_num_threads(args.threads)
    voc = load_model(args)
    app = create_app(voc, config)
    print(f"vocoder serve: {config.model_name or 'default model'} ({voc.sample_rate} Hz, hop {voc.hop_length}, "
          f"{voc.n_mels} mels) on http://{args.host}:{args.port}", file=sys.stderr)
    if voc.offline_phase:
        print(f"vocoder serve: /v1/synthesize decodes with {voc.phase_description()}; /v1/stream: "
              f"{voc.streaming_decode()}", file=sys.stderr)
    run_server(app, args.host, args.port, log_level="info" if args.verbose else "warning")
    return 0
