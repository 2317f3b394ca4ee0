"""Wire formats of ``vocoder serve``: the mel a request carries, the WAV it gets back, the stream frames.

Nothing here imports a web framework: the server, the clients and the tests share these functions.

Stream frames (``WS /v1/stream``), all little-endian, one binary WebSocket message each:

* client -> server, a mel chunk: a 16-byte header ``struct.pack("<4sBBHII", b"VMEL", 1, flags, 0, n_mels, frames)``
  followed by ``frames * n_mels`` float32 values, **frame-major** (each frame's ``n_mels`` values together; numpy:
  ``mel[:, a:b].T.astype("<f4").tobytes()`` for a ``[n_mels, T]`` mel, as ``vocoder stream`` reads stdin).
  ``flags`` bit 0 (:data:`FLAG_END`) ends the utterance: the server decodes the chunk's frames (there may be none),
  flushes, and answers with a final audio frame. Another utterance may follow on the same connection.
* server -> client, audio: a 16-byte header ``struct.pack("<4sBBHII", b"VWAV", 1, flags, 0, sample_rate, samples)``
  followed by ``samples`` float32 values. Audio frames are sent as soon as samples are final (none for a chunk that
  made nothing final); ``flags`` bit 0 (:data:`FLAG_END`) marks the last frame of the utterance (after the flush,
  possibly empty). The concatenation equals the offline synthesis of the whole mel.

Errors close the socket with a code and a reason naming the problem (:data:`CLOSE_CODES`).
"""
from __future__ import annotations

import io
import json
import re
import struct
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

__all__ = [
    "MEL_MAGIC", "WAV_MAGIC", "VERSION", "FLAG_END", "HEADER", "HEADER_SIZE", "CLOSE_CODES", "BadInput",
    "encode_mel_frame", "decode_mel_frame", "encode_audio_frame", "decode_audio_frame", "parse_npy", "parse_json",
    "request_mel", "encode_wav", "decode_wav", "FORMATS", "json_depth", "MAX_JSON_DEPTH", "MAX_NUMBER_CHARS",
]

MEL_MAGIC = b"VMEL"
WAV_MAGIC = b"VWAV"
VERSION = 1
FLAG_END = 1
HEADER = struct.Struct("<4sBBHII")
HEADER_SIZE = HEADER.size  # 16

#: WebSocket close codes the server uses (RFC 6455 section 7.4.1); the reason string names the problem.
CLOSE_CODES = {
    "normal": 1000,          # the client closed after its last utterance
    "going_away": 1001,      # the server is shutting down
    "unsupported": 1003,     # a text message where binary mel frames were expected
    "invalid": 1007,         # malformed header, wrong band count, NaN/inf, values over the mel limit, payload
                             # size, too few frames, a chunk the model turned into NaN / inf audio
    "policy": 1008,          # missing / wrong API key, idle too long
    "too_big": 1009,         # a chunk or an utterance over the limits (--max-body-mb, --max-frames)
    "internal": 1011,        # the model failed
    "try_later": 1013,       # all stream slots taken (--max-streams)
}

#: Audio formats of ``POST /v1/synthesize`` (WAV subtypes).
FORMATS = ("pcm16", "float32")


class BadInput(ValueError):
    """A request the server refuses: ``status`` is the HTTP code (400, 413, 415), ``close_code`` the WebSocket one."""

    def __init__(self, message: str, status: int = 400, close_code: int = CLOSE_CODES["invalid"]):
        super().__init__(message)
        self.status = status
        self.close_code = close_code


# --------------------------------------------------------------------------------------------- stream frames
def encode_mel_frame(chunk: Optional[np.ndarray], end: bool = False, n_mels: Optional[int] = None) -> bytes:
    """``[n_mels, t]`` mel chunk -> one binary stream message (``chunk=None`` with ``end=True``: end marker only,
    which needs ``n_mels``)."""
    if chunk is None:
        if n_mels is None:
            raise ValueError("an empty frame needs n_mels")
        return HEADER.pack(MEL_MAGIC, VERSION, FLAG_END if end else 0, 0, int(n_mels), 0)
    a = np.asarray(chunk)
    if a.ndim != 2:
        raise ValueError(f"expected a mel chunk [n_mels, t], got shape {a.shape}")
    payload = np.ascontiguousarray(a.T, dtype="<f4").tobytes()
    return HEADER.pack(MEL_MAGIC, VERSION, FLAG_END if end else 0, 0, a.shape[0], a.shape[1]) + payload


@dataclass
class MelFrame:
    n_mels: int
    frames: int
    end: bool
    payload: np.ndarray  # [frames, n_mels] float32 (frame-major, as sent)


def decode_mel_frame(data: bytes, max_frames: Optional[int] = None) -> MelFrame:
    """One client message -> :class:`MelFrame`; :class:`BadInput` (close code 1007 / 1009) naming what is wrong."""
    if len(data) < HEADER_SIZE:
        raise BadInput(f"stream frame of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    magic, version, flags, reserved, n_mels, frames = HEADER.unpack_from(data)
    if magic != MEL_MAGIC:
        raise BadInput(f"stream frame starts with {magic!r}, expected {MEL_MAGIC!r}")
    if version != VERSION:
        raise BadInput(f"stream protocol version {version}, this server speaks {VERSION}")
    if flags & ~FLAG_END or reserved:
        raise BadInput(f"unknown header flags {flags:#x} / reserved {reserved}")
    if max_frames is not None and frames > max_frames:
        raise BadInput(f"chunk of {frames} frames is over the limit of {max_frames}", 413, CLOSE_CODES["too_big"])
    expected = frames * n_mels * 4
    got = len(data) - HEADER_SIZE
    if got != expected:
        raise BadInput(f"header says {frames} frames x {n_mels} mels (float32: {expected} bytes), "
                       f"payload has {got} bytes")
    payload = np.frombuffer(data, dtype="<f4", offset=HEADER_SIZE).reshape(frames, n_mels).astype(np.float32)
    return MelFrame(n_mels, frames, bool(flags & FLAG_END), payload)


def encode_audio_frame(audio: np.ndarray, sample_rate: int, end: bool = False) -> bytes:
    a = np.ascontiguousarray(audio, dtype="<f4").reshape(-1)
    return HEADER.pack(WAV_MAGIC, VERSION, FLAG_END if end else 0, 0, int(sample_rate), a.size) + a.tobytes()


def decode_audio_frame(data: bytes) -> Tuple[np.ndarray, int, bool]:
    """One server message -> ``(float32 samples, sample_rate, end)``."""
    if len(data) < HEADER_SIZE:
        raise ValueError(f"audio frame of {len(data)} bytes is shorter than the header")
    magic, version, flags, _, rate, samples = HEADER.unpack_from(data)
    if magic != WAV_MAGIC or version != VERSION:
        raise ValueError(f"not an audio frame: magic {magic!r}, version {version}")
    if len(data) - HEADER_SIZE != 4 * samples:
        raise ValueError(f"audio frame says {samples} samples, carries {len(data) - HEADER_SIZE} bytes")
    return np.frombuffer(data, dtype="<f4", offset=HEADER_SIZE).astype(np.float32), rate, bool(flags & FLAG_END)


# --------------------------------------------------------------------------------------------- request bodies
def parse_npy(body: bytes) -> np.ndarray:
    """A ``.npy`` body -> array (no pickles)."""
    if not body:
        raise BadInput("empty body: expected a .npy mel [n_mels, T] (or JSON with Content-Type: application/json)")
    if not body.startswith(b"\x93NUMPY"):
        raise BadInput("body is not a .npy file (no \\x93NUMPY magic); send np.save output, or JSON with "
                       "Content-Type: application/json")
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except Exception as e:  # truncated, object arrays (pickles), ...
        raise BadInput(f"cannot read the body as a .npy array: {e}") from None


#: Deepest JSON nesting a request body may have: ``{"mel": [[[...]]]}`` is 4.
MAX_JSON_DEPTH = 8
#: Most digits of one JSON integer (float32 tops out at 39 digits; 10^400 has no float32 value).
MAX_NUMBER_CHARS = 64
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def json_depth(body: bytes) -> int:
    """Deepest bracket nesting of a JSON text, counted without parsing (brackets inside strings count too,
    which only errs towards refusing)."""
    a = np.frombuffer(body, np.uint8)
    depth = deepest = 0
    for i in range(0, a.size, 1 << 20):  # 1 MiB at a time: a few MiB of temporaries whatever the body
        block = a[i:i + (1 << 20)]
        level = depth + np.cumsum(np.isin(block, _OPEN).astype(np.int8) - np.isin(block, _CLOSE).astype(np.int8),
                                  dtype=np.int64)
        deepest, depth = max(deepest, int(level.max())), int(level[-1])
    return deepest


def _integer(text: str) -> float:
    """A JSON integer as a float, bounded first (``int("1" + "0" * 400)`` would not fit a float32 mel)."""
    if len(text) > MAX_NUMBER_CHARS:
        raise BadInput(f"JSON number of {len(text)} digits ({text[:12]}...) is out of float32 range; a mel holds "
                       f"float32 log-magnitudes")
    value = float(text)
    if abs(value) > 3.4028234663852886e38:
        raise BadInput(f"JSON number {text[:24]}... is out of float32 range")
    return value


def _constant(text: str) -> float:
    raise BadInput(f"JSON constant {text} is not a mel value (NaN / Infinity are refused)")


_BOOLEAN = re.compile(rb"\btrue\b|\bfalse\b")


def parse_json(body: bytes) -> Tuple[np.ndarray, Optional[str]]:
    """``{"mel": [[...], ...], "convention": "espnet"}`` -> ``(array, convention or None)``.

    Bounded before and while parsing (400, never a RecursionError / OverflowError): nesting deeper than
    :data:`MAX_JSON_DEPTH` is refused before the parser runs; integers longer than :data:`MAX_NUMBER_CHARS`
    digits or outside float32, and ``NaN`` / ``Infinity``, as the parser meets them (floats like ``1e400``
    parse as inf, which :func:`request_mel` refuses). Values must be JSON numbers: strings (``"1.5"``) and
    booleans are refused, not converted.
    """
    if not body:
        raise BadInput('empty body: expected JSON {"mel": [[...], ...], "convention": optional}')
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise BadInput(f"JSON nested {depth} levels deep; a mel body is {{\"mel\": [[...], ...]}} (at most "
                       f"{MAX_JSON_DEPTH} levels)")
    try:
        obj = json.loads(body, parse_int=_integer, parse_constant=_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        if isinstance(e, BadInput):
            raise
        raise BadInput(f"body is not valid JSON: {e}") from None
    if not isinstance(obj, dict) or "mel" not in obj:
        raise BadInput('expected a JSON object {"mel": [[...], ...], "convention": optional}')
    conv = obj.get("convention")
    if conv is not None and not isinstance(conv, str):
        raise BadInput(f"convention must be a string, got {type(conv).__name__}")
    unknown = sorted(set(obj) - {"mel", "convention"})
    if unknown:
        raise BadInput(f"unknown JSON keys {unknown}; expected 'mel' and optionally 'convention'")
    if _BOOLEAN.search(body):  # numpy would read them as 1.0 / 0.0
        raise BadInput("JSON true / false in the body: mel values must be JSON numbers")
    try:
        mel = np.asarray(obj["mel"])
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        raise BadInput(f"'mel' is not a rectangular array of numbers: {e}") from None
    if mel.dtype.kind not in "fiu":  # strings ("1.5" would convert), objects (ragged), booleans
        raise BadInput(f"'mel' must be a rectangular array of JSON numbers, got {mel.dtype.kind!r} values "
                       f"({'strings' if mel.dtype.kind in 'US' else 'ragged rows or mixed types'})")
    return mel.astype(np.float32), conv


def request_mel(mel: np.ndarray, n_mels: int, max_frames: int, convention: Optional[str] = None) -> np.ndarray:
    """A request's mel by the wire's rules -> C-contiguous float32 ``[n_mels, T]`` (``T >= 1``).

    The wire's own rules only: an array of floats, the layout its ``convention`` names (time-first or not; with a
    hint when it looks transposed), at least one and at most ``max_frames`` frames (413), the conversion from that
    convention. What any mel must satisfy (NaN / inf, values over the model's
    :func:`vocoder.audio.mel.mel_limit`: a dB or power mel) is the one mel check,
    :func:`vocoder.audio.mel.check_mel`, which the model runs where the mel enters it (``Vocoder``,
    ``StreamingVocoder``); the routes answer its ``ValueError`` with 400 / close code 1007, and the batcher decodes
    a refused batch item by item so that only the request at fault fails.
    """
    if not isinstance(mel, np.ndarray):
        raise BadInput(f"expected an array, got {type(mel).__name__}")
    if mel.dtype.kind != "f":
        raise BadInput(f"expected float log-mel values (float16/32/64), got dtype {mel.dtype}")
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    time_first = False
    conv = None
    if convention is not None:
        from vocoder.plugins.conventions import get_convention

        try:
            conv = get_convention(convention)
        except ValueError as e:
            raise BadInput(str(e)) from None
        time_first = conv.time_first
    layout = f"[T, n_mels={n_mels}] ({conv.name} layout)" if time_first else f"[n_mels={n_mels}, T]"
    if mel.ndim != 2:
        raise BadInput(f"expected a mel {layout}, got shape {tuple(mel.shape)}")
    bands = mel.shape[1] if time_first else mel.shape[0]
    frames = mel.shape[0] if time_first else mel.shape[1]
    if bands != n_mels:
        other = mel.shape[0] if time_first else mel.shape[1]
        hint = " (it looks transposed)" if other == n_mels else ""
        raise BadInput(f"expected {n_mels} mel bands, got shape {tuple(mel.shape)} for layout {layout}{hint}")
    if frames == 0:
        raise BadInput(f"expected at least one mel frame, got shape {tuple(mel.shape)}")
    if frames > max_frames:
        raise BadInput(f"mel has {frames} frames, the limit is {max_frames} (--max-frames)", 413,
                       CLOSE_CODES["too_big"])
    mel = mel.astype(np.float32, copy=False)
    if conv is not None:
        from vocoder.plugins.conventions import to_vocoder_mel

        try:
            mel = to_vocoder_mel(np.ascontiguousarray(mel), conv)
        except ValueError as e:
            raise BadInput(f"cannot convert from the {conv.name} convention: {e}") from None
    return np.ascontiguousarray(mel, dtype=np.float32)


# --------------------------------------------------------------------------------------------- WAV
def encode_wav(audio: np.ndarray, sample_rate: int, fmt: str = "pcm16") -> bytes:
    """Mono float audio -> WAV bytes: ``pcm16`` (clipped to [-1, 1], x32767, rounded) or ``float32`` (IEEE float)."""
    import soundfile as sf

    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    a = np.asarray(audio, dtype=np.float32).reshape(-1)
    buf = io.BytesIO()
    if fmt == "pcm16":
        sf.write(buf, (np.clip(a, -1.0, 1.0) * 32767.0).round().astype(np.int16), sample_rate, format="WAV",
                 subtype="PCM_16")
    else:
        sf.write(buf, a, sample_rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def decode_wav(data: bytes) -> Tuple[np.ndarray, int]:
    """WAV bytes -> ``(float32 samples, sample_rate)``; pcm16 is divided by 32767 (the inverse of :func:`encode_wav`)."""
    import soundfile as sf

    with sf.SoundFile(io.BytesIO(data)) as f:
        if f.subtype == "PCM_16":
            a = f.read(dtype="int16").astype(np.float32) / 32767.0
        else:
            a = f.read(dtype="float32")
        return np.asarray(a, dtype=np.float32).reshape(-1), f.samplerate
