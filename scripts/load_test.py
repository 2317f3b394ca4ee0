"""Load test of ``vocoder serve`` on loopback: concurrent synthesis requests and streams against the in-process
ceiling, every answer checked against offline synthesis.

    python scripts/load_test.py [--model hifigan_v1] [--clients 16] [--seconds 3] [--duration 60]
                                [--stream-model hifigan_v3] [--streams 16] [--chunk-frames 10] [--json out.json]

What it does (all bounded in time and count; traffic only to 127.0.0.1):

1. Builds the model (a preset with random weights unless ``--model`` is a checkpoint), saves it to a temporary
   ``.pt`` and makes ``--utterances`` different mels of ``--seconds`` each (copy synthesis of harmonic test signals),
   with their offline audio ``voc(mel)`` as the reference.
2. In-process ceiling: ``voc(batch, lengths=...)`` on ``--clients`` mels at a time, for ``--ceiling-s`` seconds
   (at least two batches), before and again after the HTTP phase (the table shows the mean of the two): audio
   seconds per second; for streams, one ``StreamingVocoder`` pass per utterance (first audio, real-time factor).
3. Starts ``vocoder serve`` on that ``.pt`` in a subprocess on a free 127.0.0.1 port (``--max-batch`` = clients),
   and drives it: ``--clients`` concurrent clients each sending one request after another (``format=float32``) for
   ``--duration`` seconds or ``--max-requests`` in all. Throughput = audio seconds answered / wall time; latency
   p50/p95/p99; every 200 is compared with the offline audio (max abs diff < 1e-4), a mismatch or short answer is
   counted as ``truncated/wrong``, any other answer as an error by status.
4. With ``--streams``: a second server on ``--stream-model``; one stream alone, then ``--streams`` concurrent ones,
   each sending its utterance in ``--chunk-frames`` chunks as fast as it can; time to first audio (from opening the
   stream), per-stream real-time factor (stream wall time / audio duration), equality with offline (< 1e-4).

Prints a table (and writes ``--json``). The figures are only comparable within one run (ratios), on the same
machine and load.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

import numpy as np
import torch

TOLERANCE = 1e-4


# ------------------------------------------------------------------------------------------------- helpers
def percentile(xs: List[float], q: float) -> Optional[float]:
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _check_loopback(url: str) -> None:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if not (host == "localhost" or host == "::1" or host.startswith("127.")):
        raise SystemExit(f"load_test.py only drives servers on loopback (127.0.0.0/8, ::1), not {host!r}")


def test_signal(seconds: float, sample_rate: int, seed: int) -> torch.Tensor:
    """A harmonic tone with vibrato and a syllable-like envelope (speech-ish spectra for the mel)."""
    g = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 110 + 60 * g.random() + 30 * np.sin(2 * math.pi * (2 + 2 * g.random()) * t)
    phase = 2 * math.pi * np.cumsum(f0) / sample_rate
    wav = sum(np.sin(k * phase) / k for k in range(1, 25) if k * 170 < sample_rate / 2)
    env = 0.5 * (1 - np.cos(2 * math.pi * (3 + g.random()) * t)) * 0.3
    wav = env * wav / 3 + 0.003 * g.standard_normal(t.shape)
    return torch.from_numpy(wav.astype(np.float32))


def make_utterances(voc, n: int, seconds: float):
    """``n`` mels of ``seconds`` each (``[n_mels, T]`` float32 numpy) and their offline audio."""
    mels, refs = [], []
    frames = max(1, int(round(seconds * voc.sample_rate / voc.hop_length)))
    for i in range(n):
        wav = test_signal(seconds + 0.1, voc.sample_rate, i)
        mel = voc.mel(wav)[:, :frames].contiguous()
        mels.append(mel.numpy().astype(np.float32))
        refs.append(voc(mel).cpu().numpy())
    return mels, refs


# ------------------------------------------------------------------------------------------------- ceiling
def inprocess_batched(voc, mels, batch: int, duration: float) -> dict:
    """``voc(batch, lengths=...)`` of ``batch`` mels at a time, repeated for ``duration`` s (at least twice)."""
    hop, sr = voc.hop_length, voc.sample_rate
    lat, audio_s, rounds = [], 0.0, 0
    t_start = time.perf_counter()
    while rounds < 2 or time.perf_counter() - t_start < duration:
        items = [mels[(rounds * batch + j) % len(mels)] for j in range(batch)]
        lengths = [m.shape[1] for m in items]
        x = np.zeros((batch, items[0].shape[0], max(lengths)), np.float32)
        for j, m in enumerate(items):
            x[j, :, : m.shape[1]] = m
        t0 = time.perf_counter()
        voc(torch.from_numpy(x), lengths=lengths)
        lat.append(time.perf_counter() - t0)
        audio_s += sum(lengths) * hop / sr
        rounds += 1
    wall = time.perf_counter() - t_start
    return {"batches": rounds, "batch": batch, "audio_s": audio_s, "wall_s": wall,
            "throughput": audio_s / wall, "batch_latency_p50": percentile(lat, 50)}


def inprocess_stream(voc, mels, chunk: int) -> dict:
    """One ``StreamingVocoder`` pass per utterance, chunks pushed as fast as possible."""
    from vocoder.streaming import StreamingVocoder

    sv = StreamingVocoder(voc, script=False)
    sv.push(torch.from_numpy(mels[0][:, :chunk]))  # warm-up
    sv.flush()
    first, rtf, diffs = [], [], []
    for mel, ref in zip(mels, [voc(torch.from_numpy(m)).numpy() for m in mels]):
        t0 = time.perf_counter()
        outs, t_first = [], None
        for i in range(0, mel.shape[1], chunk):
            y = sv.push(torch.from_numpy(mel[:, i:i + chunk])).numpy()
            if y.size and t_first is None:
                t_first = time.perf_counter() - t0
            outs.append(y)
        outs.append(sv.flush().numpy())
        wall = time.perf_counter() - t0
        out = np.concatenate(outs)
        first.append(t_first if t_first is not None else wall)
        rtf.append(wall / (out.size / voc.sample_rate))
        diffs.append(float(np.abs(out - ref).max()))
    # One stream at a time on this process: 1 / RTF audio seconds per second is what streams can get in all.
    return {"first_audio_p50": percentile(first, 50), "rtf_p50": percentile(rtf, 50), "max_diff": max(diffs),
            "throughput": 1.0 / percentile(rtf, 50)}


# ------------------------------------------------------------------------------------------------- load
async def http_load(url: str, mels, refs, clients: int, duration: float, max_requests: int,
                    api_key: Optional[str] = None, timeout: float = 120.0) -> dict:
    """``clients`` concurrent clients, one request after another, until ``duration`` s or ``max_requests``."""
    from vocoder.serving import AsyncClient, ServingError

    _check_loopback(url)
    sample_rate = None
    lat, audio_s, ok, wrong, errors, batch_sizes = [], 0.0, 0, 0, {}, []
    issued = 0
    deadline = time.perf_counter() + duration

    async def one_client(k: int, c):
        nonlocal issued, audio_s, ok, wrong, sample_rate
        i = k
        while time.perf_counter() < deadline and issued < max_requests:
            issued += 1
            j = i % len(mels)
            i += clients
            try:
                r = await c.request(mels[j], format="float32")
            except ServingError as e:
                key = str(e.status or e.close_code or "client")
                errors[key] = errors.get(key, 0) + 1
                if e.retry_after:
                    await asyncio.sleep(min(e.retry_after, 1.0))
                continue
            except Exception as e:  # connection errors, timeouts
                key = type(e).__name__
                errors[key] = errors.get(key, 0) + 1
                continue
            sample_rate = r.sample_rate
            if r.audio.shape != refs[j].shape or not np.abs(r.audio - refs[j]).max() < TOLERANCE:
                wrong += 1
                continue
            ok += 1
            lat.append(r.seconds)
            audio_s += r.audio.size / r.sample_rate
            if r.batch_size:
                batch_sizes.append(r.batch_size)

    async with AsyncClient(url, api_key=api_key, timeout=timeout, max_connections=clients) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(k, c) for k in range(clients)))
        wall = time.perf_counter() - t0
    return {"clients": clients, "requests": issued, "ok": ok, "truncated_or_wrong": wrong, "errors": errors,
            "wall_s": wall, "audio_s": audio_s, "throughput": audio_s / wall if wall else 0.0,
            "p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99),
            "mean_batch": statistics.mean(batch_sizes) if batch_sizes else None}


async def stream_load(url: str, mels, refs, streams: int, chunk: int, duration: float, max_utterances: int,
                      api_key: Optional[str] = None, sample_rate: int = 22050) -> dict:
    """``streams`` concurrent clients, each streaming one utterance after another in ``chunk``-frame chunks."""
    from vocoder.serving import AsyncClient, ServingError

    _check_loopback(url)
    first, rtf, ok, wrong, errors, audio_s = [], [], 0, 0, {}, 0.0
    issued = 0
    deadline = time.perf_counter() + duration

    async def one_client(k: int, c):
        nonlocal issued, ok, wrong, audio_s
        i = k
        while time.perf_counter() < deadline and issued < max_utterances:
            issued += 1
            j = i % len(mels)
            i += streams
            mel = mels[j]
            chunks = [mel[:, a:a + chunk] for a in range(0, mel.shape[1], chunk)]
            outs, t_first = [], None
            t0 = time.perf_counter()
            try:
                async for audio in c.stream(chunks):
                    if t_first is None:
                        t_first = time.perf_counter() - t0
                    outs.append(audio)
            except ServingError as e:
                key = str(e.close_code or e.status or "client")
                errors[key] = errors.get(key, 0) + 1
                continue
            except Exception as e:
                key = type(e).__name__
                errors[key] = errors.get(key, 0) + 1
                continue
            wall = time.perf_counter() - t0
            out = np.concatenate(outs) if outs else np.zeros(0, np.float32)
            if out.shape != refs[j].shape or not np.abs(out - refs[j]).max() < TOLERANCE:
                wrong += 1
                continue
            ok += 1
            first.append(t_first)
            rtf.append(wall / (out.size / sample_rate))
            audio_s += out.size / sample_rate

    async with AsyncClient(url, api_key=api_key) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(k, c) for k in range(streams)))
        wall = time.perf_counter() - t0
    return {"streams": streams, "utterances": issued, "ok": ok, "truncated_or_wrong": wrong, "errors": errors,
            "wall_s": wall, "audio_s": audio_s, "throughput": audio_s / wall if wall else 0.0,
            "first_audio_p50": percentile(first, 50), "first_audio_p95": percentile(first, 95),
            "first_audio_max": max(first) if first else None, "rtf_p50": percentile(rtf, 50),
            "rtf_max": max(rtf) if rtf else None, "faster_than_real_time": bool(rtf) and max(rtf) < 1.0}


# ------------------------------------------------------------------------------------------------- server
class ServerProcess:
    """``vocoder serve`` in a subprocess on 127.0.0.1 and a free port; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, model_path: str, *flags: str, startup_timeout: float = 180.0):
        from vocoder.serving.server import bind_socket

        s = bind_socket("127.0.0.1", 0)
        self.port = s.getsockname()[1]
        s.close()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "vocoder", "serve", "--model", model_path, "--host", "127.0.0.1",
               "--port", str(self.port), *flags]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait(startup_timeout)

    def _wait(self, timeout: float) -> None:
        import httpx

        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vocoder serve exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.close()
        raise RuntimeError(f"vocoder serve did not answer /healthz within {timeout} s")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------------------------------- report
def _ms(x) -> str:
    return "-" if x is None else f"{1000 * x:.0f}"


def table(result: dict) -> str:
    lines = ["| what | clients | throughput (audio s/s) | vs in-process | p50 / p95 / p99 ms | first audio ms "
             "(p50 / p95) | per-stream RTF (p50 / max) | ok | truncated/wrong | errors |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ceil = result.get("inprocess")
    if ceil:
        spread = (f" ({ceil['throughput_before']:.2f} before, {ceil['throughput_after']:.2f} after)"
                  if "throughput_before" in ceil else "")
        lines.append(f"| in-process `voc(batch, lengths)` | {ceil['batch']} (batch) | {ceil['throughput']:.2f}{spread} | 1.00 | "
                     f"batch of {ceil['batch']}: {_ms(ceil['batch_latency_p50'])} | - | - | - | - | - |")
    h = result.get("http")
    if h:
        ratio = h["throughput"] / ceil["throughput"] if ceil else float("nan")
        lines.append(f"| POST /v1/synthesize | {h['clients']} | {h['throughput']:.2f} | {ratio:.2f} | "
                     f"{_ms(h['p50'])} / {_ms(h['p95'])} / {_ms(h['p99'])} | - | - | {h['ok']} | "
                     f"{h['truncated_or_wrong']} | {h['errors'] or 0} |")
    s_in = result.get("inprocess_stream")
    if s_in:
        lines.append(f"| in-process `StreamingVocoder` | 1 | {s_in['throughput']:.2f} | 1.00 | - | "
                     f"{_ms(s_in['first_audio_p50'])} | {s_in['rtf_p50']:.3f} | - | - | - |")
    for key in ("stream_1", "stream_n"):
        s = result.get(key)
        if s:
            ratio = f"{s['throughput'] / s_in['throughput']:.2f}" if s_in else "-"
            lines.append(f"| WS /v1/stream | {s['streams']} | {s['throughput']:.2f} | {ratio} | - | "
                         f"{_ms(s['first_audio_p50'])} / "
                         f"{_ms(s['first_audio_p95'])} | {_fmt(s['rtf_p50'])} / {_fmt(s['rtf_max'])} | {s['ok']} | "
                         f"{s['truncated_or_wrong']} | {s['errors'] or 0} |")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="hifigan_v1", help="preset (random weights) or checkpoint (default: hifigan_v1)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=3.0, help="utterance length (default: 3)")
    p.add_argument("--utterances", type=int, default=8, help="different mels used (default: 8)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load per phase (default: 60)")
    p.add_argument("--max-requests", type=int, default=5000, help="requests at most (default: 5000)")
    p.add_argument("--ceiling-s", type=float, default=20.0, help="seconds of in-process batched calls (default: 20)")
    p.add_argument("--max-wait-ms", type=float, default=20.0, help="server batching window (default: 20)")
    p.add_argument("--threads", type=int, default=None, help="torch threads, here and in the servers")
    p.add_argument("--stream-model", default=None, help="model of the stream phase (e.g. hifigan_v3); none: skipped")
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--chunk-frames", type=int, default=10)
    p.add_argument("--stream-duration", type=float, default=30.0, help="seconds of the concurrent stream phase")
    p.add_argument("--no-http", action="store_true", help="skip the synthesis phase (streams only)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)

    from vocoder import Vocoder

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = ["--threads", str(args.threads)] if args.threads else []
    result = {"args": vars(args), "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_http:
            voc = Vocoder.from_pretrained(args.model, random_init=not os.path.exists(args.model))
            path = os.path.join(tmp, "model.pt")
            voc.save(path)
            mels, refs = make_utterances(voc, args.utterances, args.seconds)
            print(f"model {args.model}: {voc.sample_rate} Hz, hop {voc.hop_length}; {args.utterances} utterances of "
                  f"{args.seconds} s; torch threads {torch.get_num_threads()}", file=sys.stderr)
            before = inprocess_batched(voc, mels, args.clients, args.ceiling_s)
            print(f"in-process: {before['throughput']:.2f} audio s/s", file=sys.stderr)
            with ServerProcess(path, "--max-batch", str(args.clients), "--max-wait-ms", str(args.max_wait_ms),
                               "--max-queue", str(4 * args.clients), "--stream-prewarm", "0", *threads) as srv:
                asyncio.run(http_load(srv.url, mels[:1], refs[:1], 1, 5.0, 2))  # warm-up (first-call costs)
                result["http"] = asyncio.run(http_load(srv.url, mels, refs, args.clients, args.duration,
                                                       args.max_requests))
            print(f"http: {result['http']['throughput']:.2f} audio s/s", file=sys.stderr)
            # The ceiling again after the load (the machine's load may have changed): the table uses the mean.
            after = inprocess_batched(voc, mels, args.clients, args.ceiling_s)
            print(f"in-process again: {after['throughput']:.2f} audio s/s", file=sys.stderr)
            result["inprocess"] = dict(before, throughput=(before["throughput"] + after["throughput"]) / 2,
                                       throughput_before=before["throughput"], throughput_after=after["throughput"])
        if args.stream_model:
            svoc = Vocoder.from_pretrained(args.stream_model, random_init=not os.path.exists(args.stream_model))
            spath = os.path.join(tmp, "stream.pt")
            svoc.save(spath)
            smels, srefs = make_utterances(svoc, args.utterances, args.seconds)
            hop_s = svoc.hop_length / svoc.sample_rate
            result["stream_budget_s"] = (args.chunk_frames + svoc.lookahead_frames) * hop_s + 0.020
            result["inprocess_stream"] = inprocess_stream(svoc, smels[:4], args.chunk_frames)
            # Slots to spare: a client that reconnects at once may arrive before the server has seen its last
            # stream close (that one would be refused with 1013, which is not what this measures).
            with ServerProcess(spath, "--max-streams", str(2 * args.streams), "--stream-prewarm",
                               str(args.streams), *threads) as srv:
                asyncio.run(stream_load(srv.url, smels[:1], srefs[:1], 1, args.chunk_frames, 10.0, 1,
                                        sample_rate=svoc.sample_rate))  # warm-up
                result["stream_1"] = asyncio.run(stream_load(srv.url, smels, srefs, 1, args.chunk_frames, 10.0, 4,
                                                             sample_rate=svoc.sample_rate))
                result["stream_n"] = asyncio.run(stream_load(srv.url, smels, srefs, args.streams, args.chunk_frames,
                                                             args.stream_duration, 10 * args.streams,
                                                             sample_rate=svoc.sample_rate))
    print(table(result))
    if "stream_budget_s" in result:
        print(f"\nfirst-audio budget (one chunk + lookahead + 20 ms): {_ms(result['stream_budget_s'])} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    bad = (result.get("http", {}).get("truncated_or_wrong", 0)
           + sum(result.get(k, {}).get("truncated_or_wrong", 0) for k in ("stream_1", "stream_n")))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
