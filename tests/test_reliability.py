"""Bad input never becomes a success, a 500 or a traceback (#26): absurd mels and NaN audio are refused, the
service bounds JSON, numbers and slow bodies, the CLI checks output paths first and survives its bad files.
Server cases run the real app on loopback (uvicorn in a thread), CLI cases the real ``main``."""
import json
import math
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocoder import Vocoder
from vocoder.audio.io import load_audio, save_audio
from vocoder.audio.mel import (MEL_HEADROOM, NonFiniteAudio, check_mel, max_log_mel, mel_limit, mel_spectrogram)
from vocoder.checkpoints import load_checkpoint, save_checkpoint
from vocoder.cli.main import main
from vocoder.generators import get_preset, preset_names
from vocoder.generators.registry import build_generator
from vocoder.streaming import StreamingVocoder

from helpers import TINY_MEL

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "samples").glob("*.wav"))
ABSURD = np.full((80, 50), 1000.0, dtype=np.float32)  # the example: finite, no audio makes it


@pytest.fixture(scope="module")
def voc():
    torch.manual_seed(0)
    return Vocoder.from_pretrained("hifigan_v3", random_init=True)


def _full_scale(sr: int) -> dict:
    """Full-scale test signals in [-1, 1], 0.5 s."""
    t = np.arange(sr // 2) / sr
    rng = np.random.default_rng(0)
    sig = {"uniform noise": rng.uniform(-1, 1, t.size), "sign noise": np.sign(rng.standard_normal(t.size)),
           "square 100 Hz": np.sign(np.sin(2 * np.pi * 100 * t)), "dc": np.ones(t.size)}
    for f in (110.0, 1000.0, 3000.0, 0.45 * sr):
        sig[f"sine {f:g} Hz"] = np.sin(2 * np.pi * f * t)
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in sig.items()}


# ------------------------------------------------------------------------------------------ 1. the mel bound
@pytest.mark.parametrize("name", preset_names())
def test_real_mels_stay_under_the_bound_for_every_preset(name):
    """Full-scale noise, square waves, sines and the shipped samples never exceed max_log_mel (the derived
    bound, without its headroom), and are accepted by check_mel with the preset's MelConfig."""
    cfg = get_preset(name).mel
    bound = max_log_mel(cfg)
    assert math.log(cfg.log_floor) < bound < mel_limit(cfg) == pytest.approx(bound + MEL_HEADROOM)
    signals = _full_scale(cfg.sample_rate)
    signals.update({p.name: load_audio(p, cfg.sample_rate) for p in SAMPLES})
    for what, wav in signals.items():
        mel = mel_spectrogram(wav, cfg)
        assert float(mel.max()) <= bound + 1e-4, (name, what)
        check_mel(mel, cfg.n_mels, config=cfg)


def test_shipped_samples_through_vocoder_mel_decode(voc):
    assert SAMPLES
    for p in SAMPLES:
        mel = voc.mel(load_audio(p, voc.sample_rate))
        wav = voc(mel[:, :40])
        assert torch.isfinite(wav).all()
    # loud: the samples at full scale (peak 1.0)
    wav = load_audio(SAMPLES[0], voc.sample_rate)
    assert torch.isfinite(voc(voc.mel(wav / wav.abs().max())[:, :40])).all()


@pytest.mark.parametrize("mel, hint", [
    (ABSURD, "dB mel"),
    (20 * np.log10(np.full((80, 20), 50.0, np.float32)), "natural-log"),     # a dB mel of a loud signal
    (np.random.default_rng(0).uniform(-3e38, 3e38, (80, 6)).astype(np.float32), "dB mel"),  # random float bytes
])
def test_absurd_mel_is_a_value_error_naming_the_convention(voc, mel, hint):
    with pytest.raises(ValueError, match=hint) as e:
        voc(mel)
    assert "above" in str(e.value) and "power mel" in str(e.value)
    with pytest.raises(ValueError, match="above"):
        voc(torch.from_numpy(mel)[None].repeat(2, 1, 1), lengths=[mel.shape[1], 3])
    with pytest.raises(ValueError, match="above"):
        list(voc.stream([mel[:, :2], mel[:, 2:]]))
    with pytest.raises(ValueError, match="above"):
        StreamingVocoder(voc, script=False).push(mel)


def test_tiny_mel_config_bound_allows_its_own_audio():
    """The bound scales with the front end: a 64-point FFT reaches far lower values than a 1024-point one."""
    assert max_log_mel(TINY_MEL) < max_log_mel(get_preset("hifigan_v1").mel)
    for wav in _full_scale(TINY_MEL.sample_rate).values():
        check_mel(mel_spectrogram(wav, TINY_MEL), TINY_MEL.n_mels, config=TINY_MEL)


# ------------------------------------------------------------------------------------------ 1. weights, output
def _tiny_checkpoint(path: Path, poison: bool = False) -> Path:
    torch.manual_seed(0)
    gen = build_generator("hifigan", {"n_mels": 20, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                                      "upsample_initial_channel": 16, "resblock": "2",
                                      "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]]})
    if poison:
        with torch.no_grad():
            p = dict(gen.named_parameters())
            name = sorted(p)[3]
            p[name].view(-1)[0] = float("nan")
    save_checkpoint(path, gen, TINY_MEL)
    return path


def _tiny_mel(frames=13, seed=0):
    return (np.random.default_rng(seed).standard_normal((20, frames)) - 4).astype(np.float32)


def test_nan_weights_refused_at_load_naming_the_tensor(tmp_path, capsys):
    path = _tiny_checkpoint(tmp_path / "nan.pt", poison=True)
    with pytest.raises(ValueError, match=r"weight '.*' .* holds 1 NaN / inf values"):
        load_checkpoint(path)
    assert main(["info", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert "NaN / inf" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    np.save(tmp_path / "m.npy", _tiny_mel())
    assert main(["synthesize", "-m", str(path), str(tmp_path / "m.npy"), "-o", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out" / "m.wav").exists()


@pytest.fixture
def nan_decodes(monkeypatch):
    """While ``flag["on"]``, every offline and streaming decode returns NaN (a model gone wrong past the checks)."""
    flag = {"on": True}
    gen, run = Vocoder._generate, StreamingVocoder._run

    def _generate(self, mel):
        out = gen(self, mel)
        return out * float("nan") if flag["on"] else out

    def _run(self, frames, *args):
        y, states = run(self, frames, *args)
        return (y * float("nan") if flag["on"] else y), states

    monkeypatch.setattr(Vocoder, "_generate", _generate)
    monkeypatch.setattr(StreamingVocoder, "_run", _run)
    return flag


def test_nan_audio_never_returned_or_written(voc, nan_decodes, tmp_path, capsys):
    mel = _tiny_mel(10, 1)[:1].repeat(80, 0)
    with pytest.raises(NonFiniteAudio, match=r"NaN / inf samples .* for the mel \(80, 10\)"):
        voc(mel)
    with pytest.raises(NonFiniteAudio):
        list(voc.stream([mel]))
    with pytest.raises(ValueError, match="NaN / inf"):
        save_audio(tmp_path / "x.wav", torch.full((100,), float("nan")), 8000)
    assert not (tmp_path / "x.wav").exists()
    model = _tiny_checkpoint(tmp_path / "ok.pt")
    np.save(tmp_path / "m.npy", _tiny_mel())
    assert main(["synthesize", "-m", str(model), str(tmp_path / "m.npy"), "-o", str(tmp_path / "out")]) == 2
    assert "NaN / inf" in capsys.readouterr().err and not (tmp_path / "out" / "m.wav").exists()
    mel_file = tmp_path / "s.npy"
    np.save(mel_file, _tiny_mel(30))
    rc = main(["stream", "-m", str(model), "--input", str(mel_file), "--chunk-frames", "30"])
    assert rc == 2 and "NaN / inf" in capsys.readouterr().err


def test_cli_stream_refuses_random_floats_on_stdin(tmp_path):
    import sys

    model = _tiny_checkpoint(tmp_path / "ok.pt")
    data = np.random.default_rng(0).uniform(-1e30, 1e30, (8, 20)).astype("<f4").tobytes()
    r = subprocess.run([sys.executable, "-m", "vocoder", "stream", "-m", str(model)], input=data,
                       capture_output=True, timeout=120)
    assert r.returncode == 2 and r.stdout == b"", r.stderr
    assert b"dB mel" in r.stderr and b"Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------ the service
serving = pytest.importorskip("vocoder.serving")
httpx = pytest.importorskip("httpx")


def _npy(a) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _mel(frames: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((80, frames)) - 4.0).astype(np.float32)


@pytest.fixture(scope="module")
def server(voc):
    cfg = serving.ServeConfig(max_wait_ms=2.0, max_frames=400, max_body_mb=1.0, max_streams=4, stream_idle_s=20.0,
                              body_timeout_s=1.0, max_body_readers=2)
    with serving.BackgroundServer(serving.create_app(voc, cfg)) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _metric(text: str, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("body, ctype, message", [
    (_npy(ABSURD), None, "dB mel"),
    (json.dumps({"mel": ABSURD.tolist()}).encode(), JSON, "dB mel"),
    (b'{"mel": ' + b"[" * 1000 + b"]" * 1000 + b"}", JSON, "nested 1001 levels"),
    (b'{"mel": ' + b"[" * 100000 + b"]" * 100000 + b"}", JSON, "nested 100001 levels"),
    (b'{"mel": [[1' + b"0" * 400 + b"]]}", JSON, "out of float32 range"),
    (b'{"mel": [[' + b", ".join([b"1" + b"0" * 400] * 3) + b"]]}", JSON, "out of float32 range"),
    (b'{"mel": [' + b",".join([b"[1e400, 1.0]"] * 80) + b"]}", JSON, "NaN or inf"),
    (b'{"mel": [[NaN]]}', JSON, "NaN"),
])
def test_bad_bodies_are_400_not_500(http, body, ctype, message):
    r = http.post("/v1/synthesize", content=body, headers=ctype or {})
    assert r.status_code == 400, r.text
    assert message in r.json()["detail"]


def test_nan_audio_is_422_and_close_1007(server, http, voc, nan_decodes):
    from websockets.sync.client import connect
    from websockets.exceptions import ConnectionClosed

    from vocoder.serving import protocol

    r = http.post("/v1/synthesize", content=_npy(_mel(12)))
    assert r.status_code == 422 and "NaN / inf" in r.json()["detail"]
    with connect(server.url.replace("http", "ws") + "/v1/stream", open_timeout=30) as ws:
        ws.send(protocol.encode_mel_frame(_mel(20), end=True))
        with pytest.raises(ConnectionClosed) as e:
            while True:
                ws.recv(timeout=30)
    assert e.value.rcvd.code == 1007 and "NaN / inf" in e.value.rcvd.reason
    text = http.get("/metrics").text
    assert _metric(text, "vocoder_nonfinite_audio_total", route="/v1/synthesize") >= 1
    assert _metric(text, "vocoder_nonfinite_audio_total", route="/v1/stream") >= 1
    nan_decodes["on"] = False
    r = http.post("/v1/synthesize", content=_npy(_mel(12)))
    assert r.status_code == 200


def _stalled(server, sent: bytes = b"\x93NUMPY" + b"x" * 94) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=30)
    s.sendall(b"POST /v1/synthesize HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Length: 16128\r\n\r\n" + sent)
    return s


def _response(s: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_stalled_body_is_408_counted_and_closed(server, http):
    before = _metric(http.get("/metrics").text, "vocoder_body_refusals_total", reason="timeout")
    t0 = time.monotonic()
    with _stalled(server) as s:
        data = _response(s)  # returns when the server closes the connection
    assert data.startswith(b"HTTP/1.1 408") and b"stalled" in data
    assert 0.9 < time.monotonic() - t0 < 10
    text = http.get("/metrics").text
    assert _metric(text, "vocoder_body_refusals_total", reason="timeout") == before + 1
    assert _metric(text, "vocoder_requests_total", route="/v1/synthesize", code="408") >= 1


def test_body_readers_are_bounded(server, http):
    a, b = _stalled(server), _stalled(server)
    try:
        time.sleep(0.3)
        r = http.post("/v1/synthesize", content=_npy(_mel(8)))
        assert r.status_code == 503 and "--max-body-readers" in r.json()["detail"] and "Retry-After" in r.headers
    finally:
        a.close()
        b.close()
    time.sleep(0.3)
    assert http.post("/v1/synthesize", content=_npy(_mel(8))).status_code == 200


# ------------------------------------------------------------------------------------------ 4. CLI output paths
def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


@pytest.mark.parametrize("case", ["existing file", "under a file", "/proc", "unwritable folder"])
def test_cli_bad_output_path_one_line_exit_2_before_loading(tmp_path, monkeypatch, capsys, request, case):
    import vocoder.cli.synthesize as synth

    if case == "existing file":
        out = tmp_path / "f.txt"
        out.write_text("x")
    elif case == "under a file":
        (tmp_path / "f.txt").write_text("x")
        out = tmp_path / "f.txt" / "sub" / "out"
    elif case == "/proc":
        out = Path("/proc/x")
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        if _writable(folder):  # root: make it immutable instead, where the file system allows
            folder.chmod(0o700)
            if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
                pytest.skip("root writes to read-only folders and chattr +i is not available here")
            request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(folder)], capture_output=True))
            if _writable(folder):
                pytest.skip("this user writes even to an immutable folder")
        out = folder / "out"
    np.save(tmp_path / "m.npy", _tiny_mel())

    def no_model(args):
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(synth, "load_model", no_model)
    rc = main(["synthesize", "-m", "whatever.pt", str(tmp_path / "m.npy"), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "--output" in err and str(out) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ------------------------------------------------------------------------------------------ 5. folder jobs
def _folder(root: Path) -> Path:
    d = root / "in"
    (d / "sub").mkdir(parents=True)
    t = np.arange(1600) / 8000
    sf.write(d / "a_good.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 8000)
    (d / "b_corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    np.save(d / "c_bands.npy", np.zeros((30, 5), dtype=np.float32))
    np.save(d / "d_absurd.npy", np.full((20, 9), 1000.0, dtype=np.float32))
    np.save(d / "sub" / "e_good.npy", _tiny_mel())
    np.save(d / "z_good.npy", _tiny_mel(7, 2))
    return d


@pytest.mark.parametrize("batch", ["1", "4"])
def test_synthesize_folder_survives_bad_files(tmp_path, capsys, batch):
    model = _tiny_checkpoint(tmp_path / "ok.pt")
    src = _folder(tmp_path)
    out = tmp_path / "out"
    rc = main(["synthesize", "-m", str(model), str(src), "-o", str(out), "--batch-size", batch])
    captured = capsys.readouterr()
    assert rc == 2
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.wav")) == ["a_good.wav", "sub/e_good.wav",
                                                                         "z_good.wav"]
    failures = [line for line in captured.err.splitlines() if "vocoder synthesize: failed:" in line]
    assert len(failures) == 3
    for name, why in (("b_corrupt.wav", "cannot read"), ("c_bands.npy", "expected 20 mel bands"),
                      ("d_absurd.npy", "dB mel")):
        assert any(name in line and why in line for line in failures), (name, failures)
    assert "3 of 6 input(s) failed" in captured.err and "wrote 3 file(s)" in captured.out


def test_synthesize_fail_fast_stops_at_the_first(tmp_path, capsys):
    model = _tiny_checkpoint(tmp_path / "ok.pt")
    src = _folder(tmp_path)
    out = tmp_path / "out"
    rc = main(["synthesize", "-m", str(model), str(src), "-o", str(out), "--fail-fast"])
    err = capsys.readouterr().err
    assert rc == 2 and "b_corrupt.wav" in err and err.count("vocoder synthesize:") == 1
    assert [p.name for p in out.rglob("*.wav")] == ["a_good.wav"]


def test_eval_folder_reports_bad_clips_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pesq")
    pytest.importorskip("pystoi")
    pytest.importorskip("auraloss")
    pytest.importorskip("torchcrepe")
    from vocoder.audio.mel import MelConfig
    from vocoder.evaluation import GriffinLimVocoder

    cfg = MelConfig()
    monkeypatch.setattr(Vocoder, "from_pretrained", staticmethod(lambda *a, **k: GriffinLimVocoder(cfg, n_iter=2)))
    d = tmp_path / "clips"
    d.mkdir()
    t = np.arange(cfg.sample_rate // 2) / cfg.sample_rate
    sf.write(d / "a.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), cfg.sample_rate)
    (d / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEbroken")
    report = tmp_path / "r.json"
    rc = main(["eval", "-m", "m.pt", "--data", str(d), "--no-mos", "--no-griffin-lim", "--report", str(report)])
    captured = capsys.readouterr()
    assert rc == 2
    assert [line for line in captured.err.splitlines() if "failed:" in line and "b.wav" in line]
    assert "1 of 2 clip(s) failed" in captured.err
    assert json.loads(report.read_text())["n_clips"] == 1
    rc = main(["eval", "-m", "m.pt", "--data", str(d), "--no-mos", "--no-griffin-lim", "--fail-fast"])
    assert rc == 2 and "b.wav" in capsys.readouterr().err
    rc = main(["eval", "-m", "m.pt", "--data", str(d), "--no-mos", "--report", "/proc/x/r.json"])
    err = capsys.readouterr().err
    assert rc == 2 and "--report" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ 6. decided cases
@pytest.mark.parametrize("body, message", [
    (b'{"mel": [' + b",".join([b'["-4.0", -4.0]'] * 80) + b"]}", "strings"),
    (b'{"mel": [' + b",".join([b"[true, -4.0]"] * 80) + b"]}", "true / false"),
])
def test_json_numbers_as_strings_or_booleans_are_refused(http, body, message):
    r = http.post("/v1/synthesize", content=body, headers=JSON)
    assert r.status_code == 400 and message in r.json()["detail"]


def test_empty_x_api_key_next_to_a_correct_bearer_is_401(voc):
    cfg = serving.ServeConfig(api_key="s3cret", warmup=False, stream_prewarm=0)
    with serving.BackgroundServer(serving.create_app(voc, cfg)) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/v1/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v1/info", headers={"Authorization": "Bearer s3cret", "X-API-Key": ""}).status_code == 401


def test_empty_stdin_to_stream_is_no_audio_and_exit_0(tmp_path):
    import sys

    model = _tiny_checkpoint(tmp_path / "ok.pt")
    r = subprocess.run([sys.executable, "-m", "vocoder", "stream", "-m", str(model)], input=b"",
                       capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stdout == b"" and b"no mel frames" in r.stderr


def test_truncated_wav_is_vocoded_as_far_as_it_goes(tmp_path, capsys):
    """Kept lenient: libsndfile reads the samples present (as players do); the output is as long as they are."""
    model = _tiny_checkpoint(tmp_path / "ok.pt")
    full = tmp_path / "full.wav"
    sf.write(full, (0.3 * np.sin(np.arange(1600) / 5)).astype(np.float32), 8000, subtype="PCM_16")
    data = full.read_bytes()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cut.wav").write_bytes(data[: 44 + 2 * 512])  # header says 1600 samples, 512 present
    assert main(["synthesize", "-m", str(model), str(tmp_path / "in" / "cut.wav"), "-o", str(tmp_path / "o")]) == 0
    assert sf.info(str(tmp_path / "o" / "cut.wav")).frames == 512


# ------------------------------------------------------------------------------------------ fault injection
def test_fault_injection_mix_of_good_and_bad_clients(voc):
    """A few seconds of 4 concurrent clients on loopback mixing good requests and streams with bad bodies,
    absurd and NaN mels, stalled and abandoned bodies, and streams dropped mid-utterance: every good answer
    equals its offline decode, the server still answers, and no stream slot, body reader, queued request or
    asyncio task is left behind."""
    import asyncio
    import random
    import threading

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from vocoder.serving import protocol

    cfg = serving.ServeConfig(max_wait_ms=2.0, max_frames=200, max_body_mb=1.0, max_streams=3, stream_idle_s=5.0,
                              body_timeout_s=0.4, max_body_readers=8)
    mels = [_mel(n, seed) for seed, n in enumerate((9, 23, 40))]
    offline = [voc(torch.from_numpy(m)).numpy() for m in mels]
    with serving.BackgroundServer(serving.create_app(voc, cfg)) as srv:
        state = srv.app.state.vocoder
        loop = state.batcher._task.get_loop()
        tasks_before = len(asyncio.all_tasks(loop))
        ws_url = srv.url.replace("http", "ws") + "/v1/stream"
        errors, counts, lock = [], {}, threading.Lock()
        deadline = time.monotonic() + 3.0

        def note(kind, ok, detail=""):
            with lock:
                counts[kind] = counts.get(kind, 0) + 1
                if not ok:
                    errors.append(f"{kind}: {detail}")

        def good_http(c, rng):
            i = rng.randrange(len(mels))
            r = c.post("/v1/synthesize", params={"format": "float32"}, content=_npy(mels[i]))
            if r.status_code == 503:  # overload is an allowed answer
                return note("good_http_busy", True)
            audio, _ = protocol.decode_wav(r.content) if r.status_code == 200 else (None, None)
            note("good_http", r.status_code == 200 and np.abs(audio - offline[i]).max() < 1e-4, r.text[:80])

        def bad_http(c, rng):
            body, ctype = rng.choice([(_npy(ABSURD), {}), (_npy(np.full((80, 5), np.nan, np.float32)), {}),
                                      (b'{"mel": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON),
                                      (b'{"mel": [[1' + b"0" * 400 + b"]]}", JSON), (b"\x93NUMPY garbage", {}),
                                      (_npy(_mel(5)[:40]), {})])
            r = c.post("/v1/synthesize", content=body, headers=ctype)
            note("bad_http", r.status_code == 400, f"{r.status_code} {r.text[:80]}")

        def stalled_body(c, rng):
            with _stalled(srv) as s:
                if rng.random() < 0.5:
                    return note("abandoned_body", True)  # closed mid-body
                data = _response(s)
                note("stalled_body", data.startswith(b"HTTP/1.1 408"), data[:40])

        def good_stream(c, rng):
            i = rng.randrange(len(mels))
            mel, pieces, a = mels[i], [], 0
            try:
                with connect(ws_url, open_timeout=30) as ws:
                    while a < mel.shape[1]:
                        b = min(mel.shape[1], a + rng.randint(1, 12))
                        ws.send(protocol.encode_mel_frame(mel[:, a:b], end=b == mel.shape[1]))
                        a = b
                    while True:
                        audio, _, end = protocol.decode_audio_frame(ws.recv(timeout=30))
                        pieces.append(audio)
                        if end:
                            break
            except ConnectionClosed as e:
                if e.rcvd is not None and e.rcvd.code == 1013:  # all slots taken: allowed
                    return note("good_stream_busy", True)
                return note("good_stream", False, repr(e))
            out = np.concatenate(pieces)
            note("good_stream", out.shape == offline[i].shape and np.abs(out - offline[i]).max() < 1e-4)

        def bad_stream(c, rng):
            kind = rng.choice(["nan", "absurd", "drop"])
            try:
                with connect(ws_url, open_timeout=30) as ws:
                    ws.send(protocol.encode_mel_frame(_mel(4)))
                    if kind == "drop":  # gone mid-utterance, no end frame
                        return note("dropped_stream", True)
                    bad = np.full((80, 3), np.nan if kind == "nan" else 1000.0, np.float32)
                    ws.send(protocol.encode_mel_frame(bad))
                    while True:
                        ws.recv(timeout=30)
            except ConnectionClosed as e:
                code = None if e.rcvd is None else e.rcvd.code
                note("bad_stream", code in (1007, 1013), f"{kind}: {code}")

        actions = [good_http, good_http, bad_http, stalled_body, good_stream, bad_stream]

        def client(seed):
            rng = random.Random(seed)
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                while time.monotonic() < deadline:
                    try:
                        rng.choice(actions)(c, rng)
                    except Exception as e:  # noqa: BLE001 (any client-side failure is a test failure)
                        note("exception", False, repr(e))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, (errors[:5], counts)
        assert counts.get("good_http", 0) and counts.get("good_stream", 0) and counts.get("bad_http", 0), counts
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.get("/healthz").status_code == 200
            r = c.post("/v1/synthesize", params={"format": "float32"}, content=_npy(mels[0]))
            assert r.status_code == 200 and np.abs(protocol.decode_wav(r.content)[0] - offline[0]).max() < 1e-4
            t0 = time.monotonic()
            while time.monotonic() - t0 < 10 and (state.pool.in_use or state.batcher.pending or state.body_readers
                                                  or len(asyncio.all_tasks(loop)) > tasks_before):
                time.sleep(0.05)
            assert (state.pool.in_use, state.batcher.pending, state.body_readers) == (0, 0, 0)
            assert len(asyncio.all_tasks(loop)) <= tasks_before
