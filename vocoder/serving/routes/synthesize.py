"""``POST /v1/synthesize[?format=pcm16|float32][&convention=NAME]``: one mel in, its WAV out.

The body is a ``.npy`` mel ``[n_mels, T]`` (or ``[1, n_mels, T]``; ``Content-Type`` ``application/octet-stream``,
``application/x-npy`` or none) or JSON ``{"mel": [[...], ...], "convention": "espnet"}`` (``Content-Type:
application/json``); the answer is ``audio/wav`` at the model's rate (headers ``X-Sample-Rate``,
``X-Audio-Samples``, ``X-Frames``, ``X-Batch-Id``, ``X-Batch-Size``). Concurrent requests are decoded in one batch
(see :mod:`vocoder.serving.batching`). Errors: JSON ``{"detail": message}`` with 400 (bad mel, bad JSON, a mel
over the model's mel limit, bad format, unknown convention), 401 (API key), 408 (a body that stalled for
``body_timeout_s``; the connection is closed), 413 (body or mel too large), 415 (content type), 422 (the model
produced NaN / inf audio for this mel: never returned), 503 + ``Retry-After`` (queue full, or ``max_body_readers``
bodies being read).
"""
from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from ...audio.mel import NonFiniteAudio
from ..batching import Overloaded
from ..protocol import FORMATS, BadInput, request_mel, encode_wav, parse_json, parse_npy
from ..state import serving_state
from .common import check_audio, error

log = logging.getLogger("vocoder.serving.app")  # the name these messages always had

__all__ = ["router", "PATH", "NPY_TYPES"]

PATH = "/v1/synthesize"
NPY_TYPES = ("", "application/octet-stream", "application/x-npy", "application/npy")

router = APIRouter()


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


@router.post(PATH)
async def synthesize(request: Request):
    state = serving_state(request)
    config, metrics, voc = state.config, state.metrics, state.voc
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
            return error(503, f"server busy: {state.body_readers} requests are sending their bodies "
                              f"(--max-body-readers); try again later", {"Retry-After": "1", "Connection": "close"})
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
        mel = request_mel(mel, voc.n_mels, config.max_frames, convention)
        audio, batch = await state.batcher.submit(mel)
        check_audio(audio, f"this request's mel {tuple(mel.shape)}")  # the last guard (Vocoder checks too)
    except _SlowBody as e:
        metrics.body_refusals.labels("timeout").inc()
        return error(408, str(e), {"Connection": "close"})
    except BadInput as e:
        return error(e.status, str(e))
    except NonFiniteAudio as e:
        metrics.nonfinite.labels(PATH).inc()
        return error(422, str(e))
    except Overloaded as e:
        return error(503, str(e), {"Retry-After": str(e.retry_after)})
    except ValueError as e:  # the model's mel check (NaN / inf, a dB or power mel, too few frames)
        return error(400, f"the model cannot decode this mel: {e}")
    except ClientDisconnect:  # gone while sending its body: nobody to answer
        return Response(status_code=499)
    except Exception as e:
        log.exception("synthesis failed")
        return error(500, f"synthesis failed: {type(e).__name__}: {e}")
    sr = voc.sample_rate
    metrics.audio_seconds.labels(PATH).inc(audio.size / sr)
    wav = await asyncio.to_thread(encode_wav, audio, sr, fmt)
    return Response(wav, media_type="audio/wav", headers={
        "X-Sample-Rate": str(sr), "X-Audio-Samples": str(audio.size), "X-Frames": str(mel.shape[1]),
        "X-Batch-Id": str(batch.batch_id), "X-Batch-Size": str(batch.size)})
