"""The ASGI app of ``vocoder serve`` (FastAPI): synthesis, streaming, info, health and Prometheus metrics.

Routes:

* ``POST /v1/synthesize[?format=pcm16|float32][&convention=NAME]``: body a ``.npy`` mel ``[n_mels, T]`` (or
  ``[1, n_mels, T]``; ``Content-Type`` ``application/octet-stream``, ``application/x-npy`` or none) or JSON
  ``{"mel": [[...], ...], "convention": "espnet"}`` (``Content-Type: application/json``) -> ``audio/wav`` at the
  model's rate (headers ``X-Sample-Rate``, ``X-Audio-Samples``, ``X-Batch-Id``, ``X-Batch-Size``). Concurrent
  requests are decoded in one batch (see :mod:`vocoder.serving.batching`). Errors: JSON ``{"detail": message}``
  with 400 (bad mel, bad JSON, a mel over the model's mel limit, bad format, unknown convention), 401 (API
  key), 408 (a body that stalled for ``body_timeout_s``; the connection is closed), 413 (body or mel too large),
  415 (content type), 422 (the model produced NaN / inf audio for this mel: never returned), 503 +
  ``Retry-After`` (queue full, or ``max_body_readers`` bodies being read).
* ``WS /v1/stream[?convention=NAME]``: mel chunks in, exact audio out as soon as it is final
  (:mod:`vocoder.serving.protocol` documents the frames and close codes).
* ``GET /v1/info``, ``GET /healthz`` (never needs the key), ``GET /metrics`` (Prometheus text).
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from typing import Optional

import numpy as np
import torch
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import ClientDisconnect
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ..audio.mel import NonFiniteAudio
from .batching import STREAM_PRIORITY, Batcher, ModelWorker, Overloaded, StreamPool
from .config import ServeConfig
from .protocol import (CLOSE_CODES, FORMATS, BadInput, check_mel, decode_mel_frame, encode_audio_frame, encode_wav,
                       parse_json, parse_npy)

log = logging.getLogger(__name__)

__all__ = ["create_app", "ServingState", "Metrics", "ROUTES"]

ROUTES = ("/v1/synthesize", "/v1/stream", "/v1/info", "/healthz", "/metrics")
NPY_TYPES = ("", "application/octet-stream", "application/x-npy", "application/npy")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


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


# ---------------------------------------------------------------------------------------------- the gate
def _header(scope, name: bytes) -> Optional[str]:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return v.decode("latin-1")
    return None


class _Gate:
    """ASGI middleware: the API key on every route but ``/healthz``, and request metrics for HTTP routes."""

    def __init__(self, app, state: ServingState):
        self.app = app
        self.state = state

    def _authorized(self, scope) -> bool:
        key = self.state.config.api_key
        if key is None or scope["path"] == "/healthz":
            return True
        given = _header(scope, b"x-api-key")
        auth = _header(scope, b"authorization")
        if given is None and auth is not None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given.encode(), key.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in ROUTES else "other"
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


# ---------------------------------------------------------------------------------------------- helpers
def _error(status: int, message: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


class _SlowBody(Exception):
    """A request body that stalled for ``body_timeout_s``: answered 408, connection closed."""


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, at most ``limit`` bytes (413 past it), each piece within ``timeout`` s of the one before
    (:class:`_SlowBody` otherwise)."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            n = int(length)
        except ValueError:
            raise BadInput(f"bad Content-Length {length!r}") from None
        if n > limit:
            raise BadInput(f"body of {n} bytes is over the limit of {limit} bytes (--max-body-mb)", 413)
    chunks, size = [], 0
    while True:
        try:
            message = await asyncio.wait_for(request.receive(), timeout)
        except asyncio.TimeoutError:
            raise _SlowBody(f"request body stalled: no bytes for {timeout:g} s after {size} "
                            f"(--body-timeout-s)") from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BadInput(f"body is over the limit of {limit} bytes (--max-body-mb)", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _reason(text: str) -> str:
    """A WebSocket close reason: at most 123 bytes of UTF-8."""
    b = text.encode("utf-8")
    return text if len(b) <= 123 else b[:120].decode("utf-8", "ignore") + "..."


def _flush(sv) -> np.ndarray:
    return sv.flush().float().cpu().numpy()


def check_audio(audio: np.ndarray, what: str) -> np.ndarray:
    """Decoded samples unchanged if finite, else :class:`NonFiniteAudio` (422 / close 1007) naming ``what``."""
    if not np.isfinite(audio).all():
        raise NonFiniteAudio(f"the model produced {int((~np.isfinite(audio)).sum())} NaN / inf samples of "
                             f"{audio.size} for {what}; refused")
    return audio


# ---------------------------------------------------------------------------------------------- the app
def create_app(voc, config: Optional[ServeConfig] = None) -> FastAPI:
    """The service for a loaded :class:`vocoder.Vocoder` (``Vocoder.from_pretrained(...)``, on any device).

    The model worker, the batcher and the stream pool start with the app's lifespan (uvicorn, Ray Serve and
    ``httpx``/Starlette test clients all run it) and stop with it.
    """
    config = config or ServeConfig()
    state = ServingState(voc, config)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(title="vocoder", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.vocoder = state
    app.add_middleware(_Gate, state=state)
    metrics = state.metrics
    sr, hop, n_mels = voc.sample_rate, voc.hop_length, voc.n_mels
    mel_config = getattr(voc, "mel_config", None)  # values over its mel_limit are refused (400 / close 1007)

    @app.get("/healthz")
    async def healthz():
        if not (state.ready and state.worker.alive):
            return _error(503, "starting up or shutting down")
        return {"status": "ok"}

    @app.get("/v1/info")
    async def info():
        return state.info()

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/synthesize")
    async def synthesize(request: Request):
        try:
            fmt = request.query_params.get("format", "pcm16")
            if fmt not in FORMATS:
                raise BadInput(f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
            convention = request.query_params.get("convention")
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json" and ctype not in NPY_TYPES:
                raise BadInput(f"unsupported Content-Type {ctype!r}; send a .npy body (application/octet-stream) "
                               f"or JSON (application/json)", 415)
            if state.body_readers >= config.max_body_readers:
                metrics.body_refusals.labels("busy").inc()
                return _error(503, f"server busy: {state.body_readers} requests are sending their bodies "
                                   f"(--max-body-readers); try again later", {"Retry-After": "1",
                                                                              "Connection": "close"})
            state.body_readers += 1
            try:
                body = await _read_body(request, config.max_body_bytes, config.body_timeout_s)
            finally:
                state.body_readers -= 1
            if ctype == "application/json":
                mel, body_convention = await asyncio.to_thread(parse_json, body)
                if body_convention is not None and convention is not None and body_convention != convention:
                    raise BadInput(f"convention {body_convention!r} in the body and {convention!r} in the query")
                convention = body_convention or convention
            else:
                mel = parse_npy(body)
            mel = check_mel(mel, n_mels, config.max_frames, convention, mel_config)
            audio, batch = await state.batcher.submit(mel)
            check_audio(audio, f"this request's mel {tuple(mel.shape)}")  # the last guard (Vocoder checks too)
        except _SlowBody as e:
            metrics.body_refusals.labels("timeout").inc()
            return _error(408, str(e), {"Connection": "close"})
        except BadInput as e:
            return _error(e.status, str(e))
        except NonFiniteAudio as e:
            metrics.nonfinite.labels("/v1/synthesize").inc()
            return _error(422, str(e))
        except Overloaded as e:
            return _error(503, str(e), {"Retry-After": str(e.retry_after)})
        except ValueError as e:  # the model refused the mel (checked above, so rare: e.g. too few frames)
            return _error(400, f"the model cannot decode this mel: {e}")
        except ClientDisconnect:  # gone while sending its body: nobody to answer
            return Response(status_code=499)
        except Exception as e:
            log.exception("synthesis failed")
            return _error(500, f"synthesis failed: {type(e).__name__}: {e}")
        metrics.audio_seconds.labels("/v1/synthesize").inc(audio.size / sr)
        wav = await asyncio.to_thread(encode_wav, audio, sr, fmt)
        return Response(wav, media_type="audio/wav", headers={
            "X-Sample-Rate": str(sr), "X-Audio-Samples": str(audio.size), "X-Frames": str(mel.shape[1]),
            "X-Batch-Id": str(batch.batch_id), "X-Batch-Size": str(batch.size)})

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        t0 = time.perf_counter()
        await ws.accept()
        code, outcome = CLOSE_CODES["normal"], "completed"

        async def close(c: int, reason: str):
            nonlocal code
            code = c
            if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await ws.close(c, _reason(reason))

        convention = ws.query_params.get("convention")
        if convention is not None:
            try:
                from vocoder.plugins.conventions import get_convention

                time_first = get_convention(convention).time_first
            except ValueError as e:
                await close(CLOSE_CODES["invalid"], str(e))
                metrics.streams.labels("bad_input").inc()
                metrics.record("/v1/stream", code, time.perf_counter() - t0)
                return
        else:
            time_first = False
        sv = await state.pool.acquire()
        if sv is None:
            await close(CLOSE_CODES["try_later"], f"server busy: {state.pool.max_streams} streams open "
                                                  f"(--max-streams); try again later")
            metrics.streams.labels("rejected").inc()
            metrics.record("/v1/stream", code, time.perf_counter() - t0)
            return
        frames_in, first_chunk_at, first_audio_sent = 0, None, False
        max_chunk = config.max_body_bytes // (4 * n_mels)
        try:
            while True:
                try:
                    message = await asyncio.wait_for(ws.receive(), config.stream_idle_s)
                except asyncio.TimeoutError:
                    outcome = "idle"
                    await close(CLOSE_CODES["policy"], f"no message for {config.stream_idle_s:g} s (--stream-idle-s)")
                    break
                if message["type"] == "websocket.disconnect":
                    outcome = "disconnected" if frames_in else "completed"
                    code = message.get("code", CLOSE_CODES["normal"])
                    break
                data = message.get("bytes")
                if data is None:
                    raise BadInput("expected binary mel frames (16-byte VMEL header + float32 frames), got a text "
                                   "message", close_code=CLOSE_CODES["unsupported"])
                if len(data) > config.max_body_bytes:
                    raise BadInput(f"message of {len(data)} bytes is over the limit of {config.max_body_bytes} "
                                   f"(--max-body-mb)", 413, CLOSE_CODES["too_big"])
                frame = decode_mel_frame(data, max_chunk)
                if frame.n_mels != n_mels:
                    raise BadInput(f"stream frame has {frame.n_mels} mels, the model takes {n_mels}")
                if frame.frames:
                    if frames_in + frame.frames > config.max_frames:
                        raise BadInput(f"utterance reached {frames_in + frame.frames} frames, the limit is "
                                       f"{config.max_frames} (--max-frames)", 413, CLOSE_CODES["too_big"])
                    chunk = frame.payload if time_first else frame.payload.T
                    chunk = check_mel(chunk, n_mels, frame.frames, convention, mel_config)
                    if first_chunk_at is None:
                        first_chunk_at = time.perf_counter()
                    audio = await state.worker.submit_push(sv, chunk)
                    check_audio(audio, f"the chunk of {frame.frames} frames ending at frame "
                                       f"{frames_in + frame.frames}")  # a batched round leaves it to us
                    frames_in += frame.frames
                    if audio.size:
                        await ws.send_bytes(encode_audio_frame(audio, sr))
                        metrics.audio_seconds.labels("/v1/stream").inc(audio.size / sr)
                        if not first_audio_sent:
                            first_audio_sent = True
                            metrics.first_audio.observe(time.perf_counter() - first_chunk_at)
                elif not frame.end:
                    raise BadInput("stream frame with no mel frames and no end flag")
                if frame.end:
                    if frames_in == 0:
                        raise BadInput("end of utterance before any mel frame")
                    audio = await state.worker.submit(_flush, sv, priority=STREAM_PRIORITY)
                    frames_in, first_chunk_at, first_audio_sent = 0, None, False
                    await ws.send_bytes(encode_audio_frame(audio, sr, end=True))
                    metrics.audio_seconds.labels("/v1/stream").inc(audio.size / sr)
        except BadInput as e:
            outcome = "bad_input"
            await close(e.close_code, str(e))
        except NonFiniteAudio as e:
            outcome = "bad_input"
            metrics.nonfinite.labels("/v1/stream").inc()
            await close(CLOSE_CODES["invalid"], str(e))
        except (WebSocketDisconnect, ConnectionError):
            outcome = "disconnected"
        except ValueError as e:  # the streaming decoder refused the input (e.g. fewer frames than it needs)
            outcome = "bad_input"
            await close(CLOSE_CODES["invalid"], f"the model cannot decode this stream: {e}")
        except Exception as e:
            if ws.client_state != WebSocketState.CONNECTED or ws.application_state != WebSocketState.CONNECTED:
                outcome = "disconnected"  # sending to a client that has gone
            else:
                outcome = "error"
                log.exception("stream failed")
                await close(CLOSE_CODES["internal"], f"stream failed: {type(e).__name__}: {e}")
        finally:
            if outcome == "completed" and frames_in == 0:
                state.pool.release(sv)  # ended after a flush (which resets the decoder): free the slot at once
            else:
                # Forget the utterance on the worker (after any step still queued for it), then free the slot.
                try:
                    await state.worker.submit(sv.reset, priority=STREAM_PRIORITY)
                    state.pool.release(sv)
                except BaseException:
                    state.pool.release(sv, reusable=False)
                    raise
            metrics.streams.labels(outcome).inc()
            error = outcome not in ("completed",)
            metrics.record("/v1/stream", code, time.perf_counter() - t0, error=error)
        if outcome == "completed" and ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_CODES["normal"])

    return app
