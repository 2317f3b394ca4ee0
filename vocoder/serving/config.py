"""Settings of ``vocoder serve`` (one dataclass shared by the CLI, the app factory and the Ray deployment)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

__all__ = ["ServeConfig", "API_KEY_ENV", "LOOPBACK_HOSTS"]

#: Environment variable read for the API key when ``--api-key`` is not given.
API_KEY_ENV = "VOCODER_API_KEY"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    """Limits and behaviour of the service (the CLI flags of the same names, ``-`` for ``_``).

    Attributes:
        max_batch: most requests decoded together.
        max_wait_ms: how long the first waiting request waits for others to join its batch.
        max_batch_frames: most mel frames in one batched decode (summed over its items).
        max_queue: most requests admitted and not yet answered; past it: 503 + ``Retry-After``.
        max_frames: longest mel a request (or a stream's utterance) may have (413 / close 1009 past it).
        max_body_mb: largest request body or stream message, in MiB (413 / close 1009 past it).
        max_streams: most streams open at once (close 1013 past it).
        stream_idle_s: a stream with no message for this long is closed (1008).
        body_timeout_s: a request body that makes no progress (no bytes) for this long is answered 408 and its
            connection closed (a slow or stalled client must not hold a connection and a reader slot forever).
        max_body_readers: most requests reading their bodies at once; past it: 503 + ``Retry-After``, unread.
        stream_script: ``StreamingVocoder(script=...)``: ``"off"`` (default: eager, cheap to build), ``"on"``,
            ``"auto"`` (TorchScript copy for short chunks; seconds to build per stream slot).
        stream_prewarm: stream decoders built at startup (more are built on demand, then reused).
        api_key: when set, every route but ``/healthz`` requires ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``.
            A request carrying ``X-API-Key`` is judged by it alone: an empty or wrong one is a 401 even next to a
            correct Bearer token (conflicting credentials are refused, not guessed between).
        model_name: what ``/v1/info`` calls the model (the ``--model`` argument).
        warmup: run one small decode at startup.
    """

    max_batch: int = 8
    max_wait_ms: float = 10.0
    max_batch_frames: int = 16384
    max_queue: int = 64
    max_frames: int = 8192
    max_body_mb: float = 16.0
    max_streams: int = 16
    stream_idle_s: float = 30.0
    body_timeout_s: float = 5.0
    max_body_readers: int = 64
    stream_script: str = "off"
    stream_prewarm: int = 1
    api_key: Optional[str] = None
    model_name: Optional[str] = None
    warmup: bool = True

    def __post_init__(self):
        for name in ("max_batch", "max_batch_frames", "max_queue", "max_frames"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0 or self.max_body_mb <= 0 or self.stream_idle_s <= 0 or self.max_streams < 0:
            raise ValueError("max_wait_ms must be >= 0, max_body_mb and stream_idle_s > 0, max_streams >= 0")
        if not self.body_timeout_s > 0 or int(self.max_body_readers) < 1:
            raise ValueError(f"body_timeout_s must be > 0 and max_body_readers >= 1, got {self.body_timeout_s}, "
                             f"{self.max_body_readers}")
        if self.stream_script not in ("off", "on", "auto"):
            raise ValueError(f"stream_script must be 'off', 'on' or 'auto', got {self.stream_script!r}")
        if self.api_key == "":
            self.api_key = None

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def script(self):
        return {"off": False, "on": True, "auto": "auto"}[self.stream_script]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def limits(self) -> dict:
        """What ``/v1/info`` shows (never the key)."""
        d = self.to_dict()
        d.pop("api_key")
        d.pop("model_name")
        d["api_key_required"] = self.api_key is not None
        return d
