"""``WS /v1/stream[?convention=NAME]``: mel chunks in, exact audio out as soon as it is final
(:mod:`vocoder.serving.protocol` documents the frames and close codes).

Each stream holds a slot of the stream pool for its lifetime; its steps run on the model worker (batched with
other streams' steps). The stream is counted under :data:`PATH` when it closes.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import numpy as np
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from ...audio.mel import NonFiniteAudio
from ..batching import STREAM_PRIORITY
from ..protocol import CLOSE_CODES, BadInput, request_mel, decode_mel_frame, encode_audio_frame
from ..state import serving_state
from .common import check_audio

log = logging.getLogger("vocoder.serving.app")  # the name these messages always had

__all__ = ["router", "PATH"]

PATH = "/v1/stream"

router = APIRouter()


def _reason(text: str) -> str:
    """A WebSocket close reason: at most 123 bytes of UTF-8."""
    b = text.encode("utf-8")
    return text if len(b) <= 123 else b[:120].decode("utf-8", "ignore") + "..."


def _flush(sv) -> np.ndarray:
    return sv.flush().float().cpu().numpy()


@router.websocket(PATH)
async def stream(ws: WebSocket):
    t0 = time.perf_counter()
    state = serving_state(ws)
    config, metrics = state.config, state.metrics
    sr, n_mels = state.voc.sample_rate, state.voc.n_mels
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
            metrics.record(PATH, code, time.perf_counter() - t0)
            return
    else:
        time_first = False
    sv = await state.pool.acquire()
    if sv is None:
        await close(CLOSE_CODES["try_later"], f"server busy: {state.pool.max_streams} streams open "
                                              f"(--max-streams); try again later")
        metrics.streams.labels("rejected").inc()
        metrics.record(PATH, code, time.perf_counter() - t0)
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
                chunk = request_mel(chunk, n_mels, frame.frames, convention)
                if first_chunk_at is None:
                    first_chunk_at = time.perf_counter()
                audio = await state.worker.submit_push(sv, chunk)
                check_audio(audio, f"the chunk of {frame.frames} frames ending at frame "
                                   f"{frames_in + frame.frames}")  # a batched round leaves it to us
                frames_in += frame.frames
                if audio.size:
                    await ws.send_bytes(encode_audio_frame(audio, sr))
                    metrics.audio_seconds.labels(PATH).inc(audio.size / sr)
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
                metrics.audio_seconds.labels(PATH).inc(audio.size / sr)
    except BadInput as e:
        outcome = "bad_input"
        await close(e.close_code, str(e))
    except NonFiniteAudio as e:
        outcome = "bad_input"
        metrics.nonfinite.labels(PATH).inc()
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
        metrics.record(PATH, code, time.perf_counter() - t0, error=error)
    if outcome == "completed" and ws.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_CODES["normal"])
