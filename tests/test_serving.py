"""``vocoder serve``: every route, stream = offline, batching, bad input, overload (503), the API key, a bounded
load run. Servers run in-process (uvicorn in a thread) on free 127.0.0.1 ports and are stopped by the fixtures."""
import asyncio
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")
pytest.importorskip("websockets")

from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from vocoder import Vocoder  # noqa: E402
from vocoder.plugins import convert_mel  # noqa: E402
from vocoder.serving import AsyncClient, BackgroundServer, Client, ServeConfig, ServingError, create_app  # noqa: E402
from vocoder.serving import protocol  # noqa: E402

from helpers import cli_server, load_script  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-4


@pytest.fixture(scope="module")
def voc():
    torch.manual_seed(0)
    return Vocoder.from_pretrained("hifigan_v3", random_init=True)


def _mel(frames: int, seed: int = 0, n_mels: int = 80) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n_mels, frames)) - 4.0).astype(np.float32)


def _offline(voc, mel) -> np.ndarray:
    return voc(torch.from_numpy(np.ascontiguousarray(mel))).numpy()


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(voc):
    cfg = ServeConfig(max_wait_ms=2.0, max_frames=200, max_body_mb=1.0, max_streams=4, stream_idle_s=20.0)
    with BackgroundServer(create_app(voc, cfg)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url) as c:
        yield c


def _metric(text: str, name: str, **labels) -> float:
    """The sum of the samples ``name`` whose labels include ``labels`` in Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


# ---------------------------------------------------------------------------------------------- routes
def test_health_info_metrics(server, client, voc):
    assert client.health() == {"status": "ok"}
    info = client.info()
    assert info["sample_rate"] == voc.sample_rate == 22050
    assert info["hop_length"] == voc.hop_length and info["n_mels"] == voc.n_mels
    assert info["lookahead_frames"] == voc.lookahead_frames == 11
    assert info["generator"] == "hifigan" and info["preset"] == "hifigan_v3"
    assert "espnet" in info["conventions"] and info["limits"]["max_frames"] == 200
    assert info["limits"]["api_key_required"] is False and "api_key" not in info["limits"]
    r = httpx.get(server.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in ("vocoder_requests_total", "vocoder_errors_total", "vocoder_request_latency_seconds_bucket",
                 "vocoder_batch_size_bucket", "vocoder_queue_depth", "vocoder_active_streams"):
        assert name in r.text, name
    assert _metric(r.text, "vocoder_requests_total", code="200", route="/healthz") >= 1


def test_loopback_by_default(server):
    from vocoder.cli.main import build_parser

    assert server.host == "127.0.0.1"
    args = build_parser().parse_args(["serve", "--model", "m.pt"])
    assert args.host == "127.0.0.1" and args.port == 8000 and not args.ray


def test_synthesize_npy_pcm16_and_float32(server, client, voc):
    mel = _mel(100, 1)
    ref = _offline(voc, mel)
    r = httpx.post(server.url + "/v1/synthesize", content=_npy(mel))  # defaults: .npy body, pcm16
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert r.headers["x-sample-rate"] == "22050" and int(r.headers["x-audio-samples"]) == ref.size
    audio, rate = protocol.decode_wav(r.content)
    assert rate == 22050 and audio.shape == ref.shape
    assert np.abs(audio - np.clip(ref, -1, 1)).max() <= 0.5 / 32767 + 1e-6
    out = client.synthesize(mel)  # float32
    assert out.dtype == np.float32 and out.shape == ref.shape and np.abs(out - ref).max() < 1e-5
    # a torch tensor and a [1, n_mels, T] array are accepted as well
    assert np.abs(client.synthesize(torch.from_numpy(mel)[None]) - ref).max() < 1e-5


def test_synthesize_json_and_conventions(server, client, voc):
    mel = _mel(60, 2)
    ref = _offline(voc, mel)
    r = httpx.post(server.url + "/v1/synthesize?format=float32", json={"mel": mel.tolist()})
    assert r.status_code == 200
    assert np.abs(protocol.decode_wav(r.content)[0] - ref).max() < 1e-5
    espnet = convert_mel(mel.astype(np.float64), "hifigan", "espnet").astype(np.float32)  # [T, n_mels], log10
    assert espnet.shape == (60, 80)
    r = httpx.post(server.url + "/v1/synthesize?format=float32", json={"mel": espnet.tolist(), "convention": "espnet"})
    assert r.status_code == 200, r.text
    assert np.abs(protocol.decode_wav(r.content)[0] - ref).max() < TOL
    assert np.abs(client.synthesize(espnet, convention="espnet") - ref).max() < TOL  # .npy + ?convention=


# ---------------------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_stream_equals_offline(client, voc, chunk):
    mel = _mel(90, 3)
    ref = _offline(voc, mel)
    pieces = list(client.stream(mel[:, i:i + chunk] for i in range(0, 90, chunk)))
    out = np.concatenate(pieces)
    assert out.shape == ref.shape and np.abs(out - ref).max() < TOL
    assert len(pieces) > 1  # audio came back before the end


def test_stream_random_chunks_two_utterances_one_connection(server, voc):
    rng = np.random.default_rng(4)
    mels = [_mel(70, 5), _mel(33, 6)]
    with connect(server.url.replace("http", "ws") + "/v1/stream", max_size=None, compression=None) as ws:
        for mel in mels:
            a = 0
            while a < mel.shape[1]:
                b = min(mel.shape[1], a + int(rng.integers(1, 20)))
                ws.send(protocol.encode_mel_frame(mel[:, a:b], end=b == mel.shape[1]))
                a = b
            outs = []
            while True:
                audio, rate, end = protocol.decode_audio_frame(ws.recv(timeout=30))
                assert rate == 22050
                outs.append(audio)
                if end:
                    break
            ref = _offline(voc, mel)
            out = np.concatenate(outs)
            assert out.shape == ref.shape and np.abs(out - ref).max() < TOL


def test_async_client(server, voc):
    mel = _mel(50, 7)
    ref = _offline(voc, mel)

    async def go():
        async with AsyncClient(server.url) as c:
            info = await c.info()
            wav = await c.synthesize(mel)
            streamed = [a async for a in c.stream(mel[:, i:i + 9] for i in range(0, 50, 9))]
            return info, wav, np.concatenate(streamed)

    info, wav, streamed = asyncio.run(go())
    assert info["n_mels"] == 80
    assert np.abs(wav - ref).max() < 1e-5 and np.abs(streamed - ref).max() < TOL


# ---------------------------------------------------------------------------------------------- batching
def test_concurrent_requests_share_one_batch(voc):
    # A long window and max_batch 2: the batch leaves as soon as both requests are in, whatever the machine load.
    cfg = ServeConfig(max_batch=2, max_wait_ms=20000, stream_prewarm=0, warmup=False)
    mels = [_mel(40, 8), _mel(57, 9)]
    refs = [_offline(voc, m) for m in mels]
    with BackgroundServer(create_app(voc, cfg)) as srv:
        async def go():
            async with AsyncClient(srv.url) as c:
                return await asyncio.gather(*(c.request(m) for m in mels)), await c.metrics()

        results, metrics = asyncio.run(go())
    assert [r.batch_size for r in results] == [2, 2]
    assert results[0].batch_id == results[1].batch_id
    for r, ref in zip(results, refs):
        assert r.audio.shape == ref.shape and np.abs(r.audio - ref).max() < 1e-5
    assert _metric(metrics, "vocoder_batch_size_count") == 1 and _metric(metrics, "vocoder_batch_size_sum") == 2


def test_stream_steps_waiting_together_run_as_one_round(voc):
    """Steps queued while the worker is busy run as one round, batched (one network call), each equal to its own
    decode; a bad chunk in a round fails only its own stream."""
    from vocoder.serving.batching import ModelWorker, StreamPool

    rounds = []
    worker = ModelWorker(on_stream_round=lambda steps, calls: rounds.append((steps, calls)))
    worker.start()
    pool = StreamPool(voc, max_streams=4)
    mels = [_mel(24, 20 + i) for i in range(3)]
    refs = [_offline(voc, m) for m in mels]
    gate, holding = threading.Event(), threading.Event()

    def hold():
        holding.set()
        gate.wait()

    async def hold_worker():
        # Queue the steps only once the worker runs hold(): stream steps outrank other jobs in its queue, so a step
        # queued before the worker took hold() off it would run first, in a round of its own.
        holding.clear()
        busy = worker.submit(hold)
        while not holding.is_set():
            await asyncio.sleep(0.001)
        return busy

    async def go():
        decoders = [await pool.acquire() for _ in range(3)]
        outs = [[] for _ in decoders]
        for a in range(0, 24, 8):
            busy = await hold_worker()  # hold the worker until every step of this round is queued
            futs = [worker.submit_push(d, m[:, a:a + 8]) for d, m in zip(decoders, mels)]
            gate.set()
            await busy
            gate.clear()
            for out, y in zip(outs, await asyncio.gather(*futs)):
                out.append(y)
        for d, out in zip(decoders, outs):
            out.append(d.flush().numpy())
        # One stream sends 79 mels: its step fails, the other one in the same round is decoded.
        bad, good = decoders[0], decoders[1]
        busy = await hold_worker()
        futs = [worker.submit_push(bad, _mel(8, 30, n_mels=79)), worker.submit_push(good, _mel(8, 31))]
        gate.set()
        await busy
        results = await asyncio.gather(*futs, return_exceptions=True)
        return outs, results

    try:
        outs, results = asyncio.run(go())
    finally:
        worker.stop()
    for out, ref in zip(outs, refs):
        y = np.concatenate(out)
        assert y.shape == ref.shape and np.abs(y - ref).max() < TOL
    assert rounds[:3] == [(3, 1)] * 3  # three steps, one network call, each time
    assert isinstance(results[0], ValueError) and "80 mel bands" in str(results[0])
    assert isinstance(results[1], np.ndarray)
    assert rounds[3] == (2, 1)  # the failed round ran the good step alone


# ---------------------------------------------------------------------------------------------- bad input
BAD_HTTP = [
    ("1-D", lambda: _npy(np.zeros(80, np.float32)), {}, 400, "expected a mel"),
    ("transposed", lambda: _npy(_mel(30).T.copy()), {}, 400, "looks transposed"),
    ("bands", lambda: _npy(_mel(30, n_mels=40)), {}, 400, "expected 80 mel bands"),
    ("int dtype", lambda: _npy(np.zeros((80, 30), np.int64)), {}, 400, "expected float"),
    ("nan", lambda: _npy(np.where(np.arange(30) == 3, np.nan, _mel(30)).astype(np.float32)), {}, 400, "NaN"),
    ("inf", lambda: _npy(np.where(np.arange(30) == 3, np.inf, _mel(30)).astype(np.float32)), {}, 400, "inf"),
    ("zero frames", lambda: _npy(np.zeros((80, 0), np.float32)), {}, 400, "at least one mel frame"),
    ("empty body", lambda: b"", {}, 400, "empty body"),
    ("not npy", lambda: b"hello world", {}, 400, "not a .npy"),
    ("truncated npy", lambda: _npy(_mel(30))[:200], {}, 400, "cannot read"),
    ("pickle", lambda: _npy(np.array([{"a": 1}], dtype=object)), {}, 400, "cannot read"),
    ("too many frames", lambda: _npy(_mel(201)), {}, 413, "limit is 200"),
    ("oversize body", lambda: b"\x93NUMPY" + bytes(1024 * 1024 + 10), {}, 413, "over the limit"),
    ("unknown convention", lambda: _npy(_mel(30)), {"convention": "kaldi"}, 400, "unknown mel convention"),
    ("format", lambda: _npy(_mel(30)), {"format": "mp3"}, 400, "unknown format"),
]


@pytest.mark.parametrize("name,body,params,status,message", BAD_HTTP, ids=[b[0] for b in BAD_HTTP])
def test_bad_http_input(server, client, voc, name, body, params, status, message):
    r = httpx.post(server.url + "/v1/synthesize", content=body(), params=params,
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    # the server keeps serving
    mel = _mel(20, 10)
    assert np.abs(client.synthesize(mel) - _offline(voc, mel)).max() < 1e-5


@pytest.mark.parametrize("body,ctype,status,message", [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b'{"x": 1}', "application/json", 400, "expected a JSON object"),
    (b'{"mel": [[1, 2], [3]]}', "application/json", 400, "not a rectangular array"),
    (b'{"mel": [[1]], "convention": 3}', "application/json", 400, "convention must be a string"),
    (b"", "application/json", 400, "empty body"),
    (b"abc", "text/plain", 415, "unsupported Content-Type"),
])
def test_bad_json_and_content_type(server, body, ctype, status, message):
    r = httpx.post(server.url + "/v1/synthesize", content=body, headers={"Content-Type": ctype})
    assert r.status_code == status and message in r.json()["detail"], r.text


def _ws_url(server, query=""):
    return server.url.replace("http", "ws") + "/v1/stream" + query


def _closed_with(server, messages, query=""):
    """Send ``messages`` on a new stream; return the server's close (code, reason)."""
    with connect(_ws_url(server, query), max_size=None, compression=None) as ws:
        try:
            for m in messages:
                ws.send(m)
            while True:
                ws.recv(timeout=30)
        except ConnectionClosed as e:
            return e.rcvd.code, e.rcvd.reason
    raise AssertionError("not closed")


def _frame(chunk, end=False, n_mels=None, frames=None, magic=protocol.MEL_MAGIC, version=1):
    chunk = np.asarray(chunk, np.float32)
    hdr = protocol.HEADER.pack(magic, version, int(end), 0, n_mels or chunk.shape[0],
                               chunk.shape[1] if frames is None else frames)
    return hdr + np.ascontiguousarray(chunk.T).tobytes()


BAD_STREAM = [
    ("text", ["hello"], "", 1003, "got a text message"),
    ("short header", [b"VMEL\x01"], "", 1007, "shorter than the 16-byte header"),
    ("magic", [_frame(_mel(5), magic=b"XXXX")], "", 1007, "expected b'VMEL'"),
    ("version", [_frame(_mel(5), version=9)], "", 1007, "version 9"),
    ("payload size", [_frame(_mel(5), frames=6)], "", 1007, "payload has"),
    ("bands", [protocol.encode_mel_frame(_mel(5, n_mels=40))], "", 1007, "the model takes 80"),
    ("nan", [protocol.encode_mel_frame(np.full((80, 4), np.nan, np.float32))], "", 1007, "NaN"),
    ("end before frames", [protocol.encode_mel_frame(None, end=True, n_mels=80)], "", 1007, "before any mel frame"),
    ("empty chunk", [protocol.encode_mel_frame(np.zeros((80, 0), np.float32))], "", 1007, "no mel frames"),
    ("too long", [protocol.encode_mel_frame(_mel(150)), protocol.encode_mel_frame(_mel(51))], "", 1009,
     "limit is 200"),
    ("convention", [protocol.encode_mel_frame(_mel(5))], "?convention=kaldi", 1007, "unknown mel convention"),
]


@pytest.mark.parametrize("name,messages,query,code,reason", BAD_STREAM, ids=[b[0] for b in BAD_STREAM])
def test_bad_stream_input(server, client, voc, name, messages, query, code, reason):
    got_code, got_reason = _closed_with(server, messages, query)
    assert got_code == code and reason in got_reason, (got_code, got_reason)
    mel = _mel(30, 11)  # everyone else is still served
    assert np.abs(np.concatenate(list(client.stream([mel[:, :15], mel[:, 15:]]))) - _offline(voc, mel)).max() < TOL


def test_client_vanishing_mid_stream(server, client, voc):
    before = client.metrics()
    with connect(_ws_url(server), compression=None) as ws:
        ws.send(protocol.encode_mel_frame(_mel(30)))
        ws.recv(timeout=30)
        ws.socket.shutdown(socket.SHUT_RDWR)  # gone without a close frame
        ws.socket.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        m = client.metrics()
        if _metric(m, "vocoder_streams_total", outcome="disconnected") > _metric(
                before, "vocoder_streams_total", outcome="disconnected") and _metric(m, "vocoder_active_streams") == 0:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the server did not notice the vanished client")
    mel = _mel(25, 12)
    assert np.abs(np.concatenate(list(client.stream([mel]))) - _offline(voc, mel)).max() < TOL


def test_client_errors_raise_serving_error(client):
    with pytest.raises(ServingError) as e:
        client.synthesize(_mel(30, n_mels=40))
    assert e.value.status == 400 and "80 mel bands" in str(e.value)
    with pytest.raises(ServingError) as e:
        list(client.stream([_mel(5, n_mels=40)]))
    assert e.value.close_code == 1007 and "the model takes 80" in str(e.value)


def test_stream_slots_and_idle_timeout(voc):
    cfg = ServeConfig(max_streams=1, stream_idle_s=0.5, stream_prewarm=0, warmup=False)
    with BackgroundServer(create_app(voc, cfg)) as srv:
        with connect(_ws_url(srv), compression=None) as first:
            first.send(protocol.encode_mel_frame(_mel(3)))
            code, reason = _closed_with(srv, [])
            assert code == 1013 and "--max-streams" in reason
            with pytest.raises(ConnectionClosed) as e:  # the first one, idle, is closed after 0.5 s
                while True:
                    first.recv(timeout=10)
            assert e.value.rcvd.code == 1008 and "--stream-idle-s" in e.value.rcvd.reason
        with Client(srv.url) as c:  # its slot is free again
            mel = _mel(20, 13)
            assert np.abs(np.concatenate(list(c.stream([mel]))) - _offline(voc, mel)).max() < TOL


# ---------------------------------------------------------------------------------------------- overload
class _Gated:
    """A Vocoder whose decodes wait for ``gate``: keeps the one worker busy for as long as a test needs."""

    def __init__(self, voc):
        self.voc = voc
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self.voc, name)

    def __call__(self, *args, **kwargs):
        self.gate.wait(60)
        return self.voc(*args, **kwargs)


def test_queue_full_answers_503_with_retry_after(voc):
    gated = _Gated(voc)
    cfg = ServeConfig(max_batch=1, max_queue=1, stream_prewarm=0, warmup=False)
    mel = _mel(30, 14)
    with BackgroundServer(create_app(gated, cfg)) as srv, Client(srv.url) as c:
        first = {}
        t = threading.Thread(target=lambda: first.update(r=c.request(mel)))
        t.start()
        try:
            deadline = time.monotonic() + 30
            while _metric(c.metrics(), "vocoder_queue_depth") < 1:  # admitted, its decode waiting on the gate
                assert time.monotonic() < deadline
                time.sleep(0.01)
            r = httpx.post(srv.url + "/v1/synthesize", content=_npy(_mel(10)))
        finally:
            gated.gate.set()
            t.join(60)
        metrics = c.metrics()
    assert r.status_code == 503, r.text
    assert "--max-queue" in r.json()["detail"] and int(r.headers["retry-after"]) >= 1
    assert np.abs(first["r"].audio - _offline(voc, mel)).max() < 1e-5  # the admitted request got all of its audio
    assert _metric(metrics, "vocoder_errors_total", code="503") == 1


# ---------------------------------------------------------------------------------------------- API key
def test_api_key(voc, monkeypatch):
    cfg = ServeConfig(api_key="sekrit", stream_prewarm=0, warmup=False)
    mel = _mel(20, 15)
    ref = _offline(voc, mel)
    with BackgroundServer(create_app(voc, cfg)) as srv:
        assert httpx.get(srv.url + "/healthz").status_code == 200  # health never needs it
        for path in ("/v1/info", "/metrics", "/nope"):
            r = httpx.get(srv.url + path)
            assert r.status_code == 401 and "API key" in r.json()["detail"], path
        r = httpx.post(srv.url + "/v1/synthesize", content=_npy(mel), headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert httpx.get(srv.url + "/v1/info", headers={"X-API-Key": "sekrit"}).status_code == 200
        assert httpx.get(srv.url + "/v1/info", headers={"Authorization": "Bearer sekrit"}).json()["limits"][
            "api_key_required"] is True
        code, reason = _closed_with(srv, [protocol.encode_mel_frame(mel)])
        assert code == 1008 and "API key" in reason
        with pytest.raises(ServingError) as e:
            Client(srv.url, api_key="wrong").synthesize(mel)
        assert e.value.status == 401
        with Client(srv.url, api_key="sekrit") as c:
            assert np.abs(c.synthesize(mel) - ref).max() < 1e-5
            assert np.abs(np.concatenate(list(c.stream([mel]))) - ref).max() < TOL
    # the CLI takes the key from the environment when --api-key is not given
    from vocoder.cli.main import build_parser
    from vocoder.cli.serve import config_from_args

    monkeypatch.setenv("VOCODER_API_KEY", "from-env")
    assert config_from_args(build_parser().parse_args(["serve"])).api_key == "from-env"
    assert config_from_args(build_parser().parse_args(["serve", "--api-key", "flag"])).api_key == "flag"


# ---------------------------------------------------------------------------------------------- load
def _load_test_module():
    return load_script(ROOT / "scripts" / "load_test.py")


def test_bounded_load_run(server, voc):
    lt = _load_test_module()
    mels = [_mel(40 + 10 * i, 20 + i) for i in range(3)]
    refs = [_offline(voc, m) for m in mels]
    t0 = time.monotonic()
    h = asyncio.run(lt.http_load(server.url, mels, refs, clients=4, duration=15.0, max_requests=12))
    s = asyncio.run(lt.stream_load(server.url, mels, refs, streams=3, chunk=8, duration=15.0, max_utterances=3))
    assert time.monotonic() - t0 < 40
    assert h["requests"] == 12 and h["ok"] == 12 and h["truncated_or_wrong"] == 0 and not h["errors"]
    assert h["p50"] is not None and h["throughput"] > 0
    assert s["ok"] == 3 and s["truncated_or_wrong"] == 0 and not s["errors"] and s["first_audio_p50"] > 0
    with pytest.raises(SystemExit, match="loopback"):
        asyncio.run(lt.http_load("http://10.1.2.3:8000", mels, refs, 1, 1.0, 1))


# ---------------------------------------------------------------------------------------------- protocol, CLI
def test_protocol_round_trip():
    mel = _mel(7)
    f = protocol.decode_mel_frame(protocol.encode_mel_frame(mel, end=True))
    assert f.end and f.n_mels == 80 and f.frames == 7 and np.array_equal(f.payload.T, mel)
    audio = np.linspace(-1, 1, 33, dtype=np.float32)
    a, rate, end = protocol.decode_audio_frame(protocol.encode_audio_frame(audio, 22050, end=True))
    assert rate == 22050 and end and np.array_equal(a, audio)
    assert protocol.HEADER_SIZE == 16 and struct.calcsize("<4sBBHII") == 16
    for fmt in protocol.FORMATS:
        back, sr = protocol.decode_wav(protocol.encode_wav(audio, 8000, fmt))
        assert sr == 8000 and np.abs(back - audio).max() <= (0 if fmt == "float32" else 0.5 / 32767 + 1e-7)


def test_cli_serve_subprocess(tmp_path, voc):
    """``vocoder serve`` end to end: starts on loopback, answers, stops on SIGTERM."""
    path = tmp_path / "m.pt"
    voc.save(path)
    env = {**os.environ, "VOCODER_API_KEY": "k"}
    with cli_server(["--model", str(path), "--threads", "1", "--stream-prewarm", "0"], env=env) as (url, proc):
        assert httpx.get(url + "/v1/info").status_code == 401
        with Client(url, api_key="k") as c:
            assert json.loads(json.dumps(c.info()))["model"] == str(path)
            mel = _mel(20, 16)
            assert np.abs(c.synthesize(mel) - _offline(voc, mel)).max() < 1e-5
    assert proc.returncode is not None
