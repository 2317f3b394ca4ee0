"""What the routes share, one per app (``app.state.vocoder``): the model, its worker, the batcher, the stream pool,
the metrics and the settings."""
from __future__ import annotations

import asyncio

import torch

from .batching import Batcher, ModelWorker, StreamPool
from .config import ServeConfig
from .metrics import Metrics
from .protocol import FORMATS

__all__ = ["ServingState", "serving_state"]


class ServingState:
    """Everything the routes share: model, worker, batcher, stream pool, metrics (``app.state.vocoder``)."""

    def __init__(self, voc, config: ServeConfig):
        self.voc = voc
        self.config = config
        self.metrics = Metrics(config.max_batch)
        self.worker = ModelWorker(max_stream_round=max(1, config.max_streams), on_stream_round=self._on_stream_round)
        self.batcher = Batcher(voc, self.worker, max_batch=config.max_batch, max_wait_s=config.max_wait_ms / 1000.0,
                               max_batch_frames=config.max_batch_frames, max_queue=config.max_queue,
                               on_batch=self._on_batch)
        self.pool = StreamPool(voc, config.max_streams, script=config.script)
        self.metrics.queue_depth.set_function(lambda: self.batcher.pending)
        self.metrics.active_streams.set_function(lambda: self.pool.in_use)
        self.metrics.worker_busy.set_function(lambda: self.worker.busy_seconds)
        self.lookahead_frames = int(voc.lookahead_frames)
        self.body_readers = 0  # requests reading their bodies now (one event loop: a plain counter)
        self.ready = False

    def _on_stream_round(self, steps: int, calls: int) -> None:
        self.metrics.stream_round.observe(steps)
        self.metrics.stream_calls.inc(calls)

    def _on_batch(self, info) -> None:
        self.metrics.batch_size.observe(info.size)
        self.metrics.batch_frames.observe(info.frames)
        self.metrics.batch_seconds.observe(info.seconds)

    async def start(self) -> None:
        self.worker.start()
        self.batcher.start()
        if self.config.warmup:
            n = max(self.lookahead_frames * 2 + 2, 16)
            await self.worker.submit(lambda: self.voc(torch.zeros(self.voc.n_mels, n) - 5.0))
        if self.config.stream_prewarm:
            await self.pool.prewarm(self.config.stream_prewarm)
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.batcher.stop()
        await asyncio.to_thread(self.worker.stop)

    def info(self) -> dict:
        voc = self.voc
        d = voc.describe()
        hop_s = voc.hop_length / voc.sample_rate
        from vocoder.plugins.conventions import CONVENTIONS

        return {
            "model": self.config.model_name or d.get("preset") or d.get("generator"),
            "generator": d.get("generator"),
            "preset": d.get("preset"),
            "parameters": d.get("parameters"),
            "sample_rate": voc.sample_rate,
            "hop_length": voc.hop_length,
            "n_mels": voc.n_mels,
            "phase": d.get("phase"),
            "phase_iterations": d.get("phase_iterations"),
            "streaming": d.get("streaming"),
            "lookahead_frames": self.lookahead_frames,
            "lookahead_ms": round(1000.0 * self.lookahead_frames * hop_s, 3),
            "device": str(voc.device),
            "mel": d.get("mel"),
            "conventions": sorted(CONVENTIONS),
            "formats": list(FORMATS),
            "stream_protocol": 1,
            "limits": self.config.limits(),
        }


def serving_state(connection) -> ServingState:
    """The state of the app serving ``connection`` (a ``Request`` or a ``WebSocket``)."""
    return connection.app.state.vocoder
