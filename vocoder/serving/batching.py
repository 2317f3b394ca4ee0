"""The model's one worker thread, dynamic batching of whole-utterance requests, and the pool of stream decoders.

* :class:`ModelWorker`: a thread that owns the model. Jobs (a batch decode, one stream step) run there one at a
  time, stream steps before batches (they are short and someone is waiting to hear them); the event loop only
  awaits futures the thread resolves, so it never blocks on inference. The stream steps queued when the worker
  takes one (one per open stream at most: a stream waits for its audio before it sends on) run as one round of
  :func:`vocoder.streaming.push_together`, which batches those whose decoders line up: with many streams open the
  per-call cost is paid once per round, not once per stream.
* :class:`Batcher`: requests that arrive within ``max_wait_s`` of the first waiting one are decoded together, up
  to ``max_batch`` items and ``max_batch_frames`` frames, with the inference API's per-item ``lengths`` (each item
  equals its own decode). While the worker is busy, the next batch fills up. More than ``max_queue`` requests
  admitted and not yet answered: :class:`Overloaded` (the server answers 503 with ``Retry-After``).
* :class:`StreamPool`: one :class:`vocoder.streaming.StreamingVocoder` per open stream, at most ``max_streams``,
  kept and reused after their utterance (building one copies the weights and, with scripting, compiles it).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

import numpy as np
import torch

from vocoder.streaming import push_together

log = logging.getLogger(__name__)

__all__ = ["ModelWorker", "Batcher", "BatchInfo", "Overloaded", "StreamPool", "STREAM_PRIORITY", "BATCH_PRIORITY"]

STREAM_PRIORITY = 0
BATCH_PRIORITY = 1
_STOP_PRIORITY = 9


class Overloaded(Exception):
    """The queue is full: try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = int(retry_after)


def _resolve(fut: asyncio.Future, result: Any = None, exc: Optional[BaseException] = None) -> None:
    if fut.done():  # the awaiting request was cancelled (client gone, shutdown)
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _stream_push(decoder, chunk: np.ndarray) -> np.ndarray:
    """One stream step on its own (the fallback of a round, and what a round of one does)."""
    return decoder.push(torch.from_numpy(chunk)).float().cpu().numpy()


class ModelWorker:
    """One thread that runs every job touching the model, lowest ``priority`` first, then in submission order.

    Args:
        max_stream_round: most stream steps run together in one :meth:`submit_push` round.
        on_stream_round: called with each round's size and how many network calls it took (metrics).
    """

    def __init__(self, name: str = "vocoder-model", max_stream_round: int = 64,
                 on_stream_round: Optional[Callable[[int, int], None]] = None):
        self._q: "queue.PriorityQueue" = queue.PriorityQueue()
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.busy_seconds = 0.0
        self.jobs_done = 0
        self.max_stream_round = max(1, int(max_stream_round))
        self.on_stream_round = on_stream_round
        self.stream_rounds = 0
        self.stream_calls = 0  # network calls the rounds took (== steps when nothing could be batched)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, fn: Callable, *args, priority: int = BATCH_PRIORITY) -> asyncio.Future:
        """Run ``fn(*args)`` on the worker; returns a future of the running event loop."""
        if not self.alive:
            raise RuntimeError("the model worker is not running")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._q.put((priority, next(self._seq), fn, args, loop, fut))
        return fut

    def submit_push(self, decoder, chunk: np.ndarray) -> asyncio.Future:
        """``decoder.push(chunk)`` (a :class:`vocoder.streaming.StreamingVocoder`, ``[n_mels, t]`` float32) on the
        worker, batched with the other stream steps waiting then; a future of the audio (``[samples]`` float32)."""
        return self.submit(_stream_push, decoder, chunk, priority=STREAM_PRIORITY)

    def _loop(self) -> None:
        held = None  # a job taken off the queue while gathering a round, run next
        while True:
            item, held = (held, None) if held is not None else (self._q.get(), None)
            fn = item[2]
            if fn is None:
                return
            if fn is _stream_push:
                jobs = [item]
                while len(jobs) < self.max_stream_round:
                    try:
                        nxt = self._q.get_nowait()
                    except queue.Empty:
                        break
                    # A second step of a decoder already in the round waits for the next round (order matters).
                    if nxt[2] is _stream_push and all(nxt[3][0] is not j[3][0] for j in jobs):
                        jobs.append(nxt)
                    else:
                        held = nxt
                        break
                try:
                    self._run_round(jobs)
                except BaseException as e:  # never lose the worker thread: every waiting stream gets the error
                    for _, _, _, _, loop, fut in jobs:
                        self._post(loop, fut, None, e)
                continue
            t0 = time.perf_counter()
            self._call(item)
            self.busy_seconds += time.perf_counter() - t0
            self.jobs_done += 1

    def _call(self, item) -> bool:
        """Run one queued job and hand its result or exception to the awaiting coroutine; whether it succeeded."""
        _, _, fn, args, loop, fut = item
        try:
            result = fn(*args)
        except BaseException as e:
            self._post(loop, fut, None, e)
            return False
        self._post(loop, fut, result, None)
        return True

    def _run_round(self, jobs: list) -> None:
        """Stream steps together (:func:`vocoder.streaming.push_together`). If that refuses an input, the steps it
        had not run yet run one by one, so that only the stream at fault gets the error."""
        t0 = time.perf_counter()
        decoders = [j[3][0] for j in jobs]
        before = [d.frames_in for d in decoders]
        stats: dict = {}
        try:
            audio = push_together(decoders, [torch.from_numpy(j[3][1]) for j in jobs], stats=stats)
        except Exception as e:
            calls = 0
            for d, n0, job in zip(decoders, before, jobs):
                if d.frames_in != n0:  # this one had been decoded when another failed: its audio is lost
                    self._post(job[4], job[5], None, RuntimeError(f"stream step failed in a batched round: {e}"))
                else:
                    calls += self._call(job)
        else:
            calls = int(stats.get("calls", len(jobs)))
            for (_, _, _, _, loop, fut), y in zip(jobs, audio):
                self._post(loop, fut, y.float().cpu().numpy(), None)
        self.busy_seconds += time.perf_counter() - t0
        self.jobs_done += len(jobs)
        self.stream_rounds += 1
        self.stream_calls += calls
        if self.on_stream_round is not None:
            self.on_stream_round(len(jobs), calls)

    @staticmethod
    def _post(loop, fut, result, exc) -> None:
        try:
            loop.call_soon_threadsafe(_resolve, fut, result, exc)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs, then end the thread."""
        if self._started and self.alive:
            self._q.put((_STOP_PRIORITY, next(self._seq), None, (), None, None))
            self._thread.join(timeout)


@dataclass
class BatchInfo:
    """What a request's batch was: the server returns it in ``X-Batch-Id`` / ``X-Batch-Size`` headers."""

    batch_id: int
    size: int
    frames: int
    seconds: float


@dataclass
class _Item:
    mel: np.ndarray  # [n_mels, T] float32
    fut: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)

    @property
    def frames(self) -> int:
        return self.mel.shape[1]


class Batcher:
    """Dynamic batching of ``[n_mels, T]`` mels for one :class:`vocoder.Vocoder` on a :class:`ModelWorker`.

    Args:
        voc: the model (its ``voc(mel, lengths=...)`` batched decode is used).
        worker: the thread that owns it.
        max_batch: most requests in one decode.
        max_wait_s: how long the first waiting request waits for others to join it.
        max_batch_frames: most frames (summed over items) in one decode.
        max_queue: most requests admitted and not yet answered (waiting or being decoded); past it,
            :meth:`submit` raises :class:`Overloaded`.
        on_batch: called with each :class:`BatchInfo` (metrics).
    """

    def __init__(self, voc, worker: ModelWorker, max_batch: int = 8, max_wait_s: float = 0.01,
                 max_batch_frames: int = 16384, max_queue: int = 64, on_batch: Optional[Callable] = None):
        if max_batch < 1 or max_batch_frames < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch, max_batch_frames and max_queue must be >= 1 and max_wait_s >= 0")
        self.voc = voc
        self.worker = worker
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_batch_frames = max_batch_frames
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._waiting: List[_Item] = []
        self._wakeup: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task] = None
        self.pending = 0           # admitted, not answered
        self.pending_frames = 0
        self.batches = 0
        self._seconds_per_frame = None  # running estimate for Retry-After

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vocoder-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for item in self._waiting:
            _resolve(item.fut, exc=Overloaded("the server is shutting down", 1))
        self._waiting.clear()

    # ------------------------------------------------------------------------------------------ requests
    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (1..60)."""
        spf = self._seconds_per_frame or 1e-3
        return int(min(60, max(1, math.ceil(self.pending_frames * spf))))

    async def submit(self, mel: np.ndarray):
        """Decode one ``[n_mels, T]`` mel with whatever else is waiting: ``(float32 audio [T * hop], BatchInfo)``."""
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        if self.pending >= self.max_queue:
            raise Overloaded(f"server busy: {self.pending} requests queued (limit {self.max_queue}, --max-queue)",
                             self.retry_after())
        item = _Item(mel, asyncio.get_running_loop().create_future())
        self.pending += 1
        self.pending_frames += item.frames
        self._waiting.append(item)
        self._wakeup.set()
        try:
            return await item.fut
        finally:
            self.pending -= 1
            self.pending_frames -= item.frames

    # ------------------------------------------------------------------------------------------ the loop
    def _full(self) -> bool:
        return (len(self._waiting) >= self.max_batch
                or sum(i.frames for i in self._waiting) >= self.max_batch_frames)

    async def _run(self) -> None:
        while True:
            self._waiting = [i for i in self._waiting if not i.fut.done()]
            if not self._waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._waiting[0].arrived + self.max_wait_s
            while not self._full():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch, frames = [], 0
            while self._waiting and len(batch) < self.max_batch:
                item = self._waiting[0]
                if item.fut.done():
                    self._waiting.pop(0)
                    continue
                if batch and frames + item.frames > self.max_batch_frames:
                    break
                batch.append(self._waiting.pop(0))
                frames += item.frames
            if batch:
                await self._decode(batch, frames)

    async def _decode(self, batch: List[_Item], frames: int) -> None:
        self.batches += 1
        batch_id = self.batches
        t0 = time.perf_counter()
        try:
            results = await self.worker.submit(self._decode_sync, [i.mel for i in batch], priority=BATCH_PRIORITY)
        except Exception as e:  # the worker is gone or the decode failed as a whole
            for item in batch:
                _resolve(item.fut, exc=e)
            return
        seconds = time.perf_counter() - t0
        spf = seconds / max(frames, 1)
        self._seconds_per_frame = spf if self._seconds_per_frame is None else 0.8 * self._seconds_per_frame + 0.2 * spf
        info = BatchInfo(batch_id, len(batch), frames, seconds)
        if self.on_batch is not None:
            try:
                self.on_batch(info)
            except Exception:  # metrics must never fail a request
                log.exception("on_batch callback failed")
        for item, res in zip(batch, results):
            if isinstance(res, BaseException):
                _resolve(item.fut, exc=res)
            else:
                _resolve(item.fut, (res, info))

    # ------------------------------------------------------------------------------------------ on the worker
    def _decode_sync(self, mels: List[np.ndarray]) -> list:
        """Runs on the worker: one padded batch with per-item lengths; if that raises ``ValueError`` (an item the
        model refuses), each item on its own, so only that item fails."""
        try:
            return self._decode_batch(mels)
        except ValueError:
            if len(mels) == 1:
                raise
        out = []
        for m in mels:
            try:
                out.extend(self._decode_batch([m]))
            except ValueError as e:
                out.append(e)
        return out

    def _decode_batch(self, mels: List[np.ndarray]) -> List[np.ndarray]:
        voc, hop = self.voc, self.voc.hop_length
        if len(mels) == 1:
            return [voc(torch.from_numpy(mels[0])).float().cpu().numpy()]
        lengths = [m.shape[1] for m in mels]
        batch = np.zeros((len(mels), mels[0].shape[0], max(lengths)), dtype=np.float32)
        for i, m in enumerate(mels):
            batch[i, :, : m.shape[1]] = m
        wav = voc(torch.from_numpy(batch), lengths=lengths).float().cpu().numpy()
        return [wav[i, : n * hop].copy() for i, n in enumerate(lengths)]


class StreamPool:
    """At most ``max_streams`` :class:`vocoder.streaming.StreamingVocoder` objects, one per open stream, reused.

    Args:
        voc: the model.
        max_streams: most streams open at once; :meth:`acquire` returns ``None`` past it.
        script: ``StreamingVocoder``'s ``script`` argument (``False``: no TorchScript compile, cheap to build).
    """

    def __init__(self, voc, max_streams: int = 16, script=False):
        if max_streams < 0:
            raise ValueError("max_streams must be >= 0")
        self.voc = voc
        self.max_streams = max_streams
        self.script = script
        self._free: list = []
        self.in_use = 0

    def _build(self):
        from vocoder.streaming import StreamingVocoder

        return StreamingVocoder(self.voc, script=self.script)

    async def prewarm(self, n: int) -> None:
        """Build ``n`` decoders ahead of the first streams (off the event loop)."""
        for _ in range(max(0, min(n, self.max_streams) - len(self._free) - self.in_use)):
            self._free.append(await asyncio.to_thread(self._build))

    async def acquire(self):
        """A decoder with no utterance in progress, or ``None`` when ``max_streams`` are open."""
        if self.in_use >= self.max_streams:
            return None
        self.in_use += 1
        if self._free:
            return self._free.pop()
        try:
            # Built off the event loop and off the model worker: building reads the weights, it does not run them.
            return await asyncio.to_thread(self._build)
        except BaseException:
            self.in_use -= 1
            raise

    def release(self, sv, reusable: bool = True) -> None:
        self.in_use -= 1
        if reusable:
            self._free.append(sv)
