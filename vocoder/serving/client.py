"""Python clients of ``vocoder serve``: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

    from vocoder.serving import Client
    with Client("http://127.0.0.1:8000", api_key=None) as c:
        wav = c.synthesize(mel)                       # [n_mels, T] numpy / torch -> float32 [T * hop]
        for audio in c.stream(mel_chunks):            # [n_mels, t] chunks -> float32 pieces as they arrive
            play(audio)

Both need only ``httpx``, ``websockets``, ``numpy`` and ``soundfile`` (no torch on the client side beyond
accepting tensors). Errors the server answers (4xx, 503, WebSocket close codes) raise :class:`ServingError` with the
server's message, the HTTP status or close code, and ``retry_after`` for a 503.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass
from typing import AsyncIterator, Iterable, Iterator, Optional, Union
from urllib.parse import urlencode, urlsplit

import numpy as np

from .protocol import decode_audio_frame, decode_wav, encode_mel_frame

__all__ = ["Client", "AsyncClient", "ServingError", "Synthesis"]



def _audio_message(data):
    """One message of the stream socket -> ``(audio, end)``; the server only ever sends binary audio frames."""
    if isinstance(data, str):
        raise ServingError(f"unexpected text message from the server: {data[:200]}")
    audio, _, end = decode_audio_frame(data)
    return audio, end

class ServingError(RuntimeError):
    """The server refused or failed a request.

    Attributes:
        status: the HTTP status (``None`` for streams).
        close_code: the WebSocket close code (``None`` for HTTP).
        retry_after: seconds, for a 503 with ``Retry-After``.
    """

    def __init__(self, message: str, status: Optional[int] = None, close_code: Optional[int] = None,
                 retry_after: Optional[float] = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.close_code = close_code
        self.retry_after = retry_after


@dataclass
class Synthesis:
    """One ``/v1/synthesize`` answer: the audio and what the server said about it."""

    audio: np.ndarray
    sample_rate: int
    batch_id: Optional[int]
    batch_size: Optional[int]
    seconds: float


def _as_mel(mel) -> np.ndarray:
    if hasattr(mel, "detach"):  # a torch tensor
        mel = mel.detach().cpu().numpy()
    return np.asarray(mel)


def _npy(mel) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, _as_mel(mel), allow_pickle=False)
    return buf.getvalue()


def _chunk(c) -> np.ndarray:
    a = _as_mel(c)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"expected mel chunks [n_mels, t], got shape {a.shape}")
    return a


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _ws_url(base: str, path: str, params: dict) -> str:
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    q = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{path}" + (f"?{q}" if q else "")


def _http_error(r) -> ServingError:
    try:
        message = r.json().get("detail", r.text)
    except Exception:
        message = r.text
    retry = r.headers.get("retry-after")
    return ServingError(f"HTTP {r.status_code}: {message}", status=r.status_code,
                        retry_after=float(retry) if retry is not None else None)


def _closed_error(e) -> ServingError:
    rcvd = getattr(e, "rcvd", None)
    code = rcvd.code if rcvd is not None else None
    reason = rcvd.reason if rcvd is not None else str(e)
    return ServingError(f"stream closed by the server ({code}): {reason}", close_code=code)


def _synthesis(r, seconds: float) -> Synthesis:
    if r.status_code != 200:
        raise _http_error(r)
    audio, rate = decode_wav(r.content)
    expected = r.headers.get("x-audio-samples")
    if expected is not None and int(expected) != audio.size:
        raise ServingError(f"truncated answer: {audio.size} samples, server said {expected}", status=r.status_code)
    bid, bsize = r.headers.get("x-batch-id"), r.headers.get("x-batch-size")
    return Synthesis(audio, rate, int(bid) if bid else None, int(bsize) if bsize else None, seconds)


class _Base:
    def __init__(self, url: str, api_key: Optional[str], timeout: float):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Loopback never goes through a proxy; elsewhere the environment's proxy settings apply.
        self._direct = _loopback(self.url)

    def _synth_args(self, mel, convention: Optional[str], format: str):
        params = {"format": format}
        if convention is not None:
            params["convention"] = convention
        return dict(content=_npy(mel), params=params,
                    headers={**self.headers, "Content-Type": "application/octet-stream"})

    def _ws_args(self, convention):
        return _ws_url(self.url, "/v1/stream", {"convention": convention}), dict(
            additional_headers=self.headers, max_size=None, compression=None, open_timeout=self.timeout,
            proxy=None if self._direct else True)


class Client(_Base):
    """Blocking client.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer KEY``.
        timeout: seconds for connecting and for each HTTP answer.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: Optional[str] = None, timeout: float = 120.0):
        import httpx

        super().__init__(url, api_key, timeout)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, trust_env=not self._direct)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _get(self, path: str):
        r = self._http.get(path, headers=self.headers)
        if r.status_code != 200:
            raise _http_error(r)
        return r

    def info(self) -> dict:
        return self._get("/v1/info").json()

    def health(self) -> dict:
        return self._get("/healthz").json()

    def metrics(self) -> str:
        return self._get("/metrics").text

    def request(self, mel, convention: Optional[str] = None, format: str = "float32") -> Synthesis:
        """``POST /v1/synthesize``: the audio with the batch it was decoded in and the round-trip time."""
        t0 = time.perf_counter()
        r = self._http.post("/v1/synthesize", **self._synth_args(mel, convention, format))
        return _synthesis(r, time.perf_counter() - t0)

    def synthesize(self, mel, convention: Optional[str] = None, format: str = "float32") -> np.ndarray:
        """A mel ``[n_mels, T]`` (numpy or torch; ``[T, n_mels]`` for time-first conventions) -> float32 audio.
        ``format="float32"`` (default) is exact; ``"pcm16"`` halves the bytes sent back."""
        return self.request(mel, convention, format).audio

    def stream(self, chunks: Iterable, convention: Optional[str] = None) -> Iterator[np.ndarray]:
        """Send ``[n_mels, t]`` chunks as they come from ``chunks``; yield float32 audio pieces as they arrive
        (chunks are sent from a helper thread, so audio is yielded even while the producer is working). The
        concatenation equals :meth:`synthesize` of the whole mel."""
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        url, kw = self._ws_args(convention)
        try:
            conn = connect(url, **kw)
        except Exception as e:
            raise ServingError(f"cannot open the stream: {e}") from e
        failure: "queue.Queue" = queue.Queue()
        with conn as ws:

            def send_all():
                n_mels = None
                try:
                    for c in chunks:
                        c = _chunk(c)
                        n_mels = c.shape[0]
                        ws.send(encode_mel_frame(c))
                    if n_mels is None:
                        raise ValueError("no mel chunks to stream")
                    ws.send(encode_mel_frame(None, end=True, n_mels=n_mels))
                except ConnectionClosed:
                    pass  # the receiving side reports why
                except BaseException as e:
                    failure.put(e)
                    ws.close()

            sender = threading.Thread(target=send_all, name="vocoder-stream-sender", daemon=True)
            sender.start()
            try:
                while True:
                    try:
                        data = ws.recv()
                    except ConnectionClosed as e:
                        if not failure.empty():
                            raise failure.get() from None
                        raise _closed_error(e) from None
                    audio, end = _audio_message(data)
                    if audio.size:
                        yield audio
                    if end:
                        break
            finally:
                ws.close()
                sender.join()
        if not failure.empty():
            raise failure.get()


class AsyncClient(_Base):
    """asyncio client with the same methods as :class:`Client` (``await c.synthesize(mel)``,
    ``async for audio in c.stream(chunks)``; ``chunks`` may be an iterable or an async iterable)."""

    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: Optional[str] = None, timeout: float = 120.0,
                 max_connections: int = 100):
        import httpx

        super().__init__(url, api_key, timeout)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, limits=limits,
                                       trust_env=not self._direct)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def _get(self, path: str):
        r = await self._http.get(path, headers=self.headers)
        if r.status_code != 200:
            raise _http_error(r)
        return r

    async def info(self) -> dict:
        return (await self._get("/v1/info")).json()

    async def health(self) -> dict:
        return (await self._get("/healthz")).json()

    async def metrics(self) -> str:
        return (await self._get("/metrics")).text

    async def request(self, mel, convention: Optional[str] = None, format: str = "float32") -> Synthesis:
        t0 = time.perf_counter()
        r = await self._http.post("/v1/synthesize", **self._synth_args(mel, convention, format))
        return _synthesis(r, time.perf_counter() - t0)

    async def synthesize(self, mel, convention: Optional[str] = None, format: str = "float32") -> np.ndarray:
        return (await self.request(mel, convention, format)).audio

    async def stream(self, chunks: Union[Iterable, "AsyncIterator"], convention: Optional[str] = None
                     ) -> AsyncIterator[np.ndarray]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        url, kw = self._ws_args(convention)
        try:
            ws = await connect(url, **kw)
        except Exception as e:
            raise ServingError(f"cannot open the stream: {e}") from e
        failure = []

        async def send_all():
            n_mels = None
            try:
                if hasattr(chunks, "__aiter__"):
                    async for c in chunks:
                        c = _chunk(c)
                        n_mels = c.shape[0]
                        await ws.send(encode_mel_frame(c))
                else:
                    for c in chunks:
                        c = _chunk(c)
                        n_mels = c.shape[0]
                        await ws.send(encode_mel_frame(c))
                if n_mels is None:
                    raise ValueError("no mel chunks to stream")
                await ws.send(encode_mel_frame(None, end=True, n_mels=n_mels))
            except ConnectionClosed:
                pass
            except Exception as e:
                failure.append(e)
                await ws.close()

        sender = asyncio.ensure_future(send_all())
        try:
            while True:
                try:
                    data = await ws.recv()
                except ConnectionClosed as e:
                    await asyncio.gather(sender, return_exceptions=True)
                    if failure:
                        raise failure[0] from None
                    raise _closed_error(e) from None
                audio, end = _audio_message(data)
                if audio.size:
                    yield audio
                if end:
                    break
        finally:
            if not sender.done():
                sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await ws.close()
        if failure:
            raise failure[0]

