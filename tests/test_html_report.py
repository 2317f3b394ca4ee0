"""The listening page (``vocoder eval --html``, ``scripts/training_curve.py --html``): its files, its order, two models
on one page, the CLI flags, and the page as a person sees it in headless Chromium (``browser``)."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("pesq")
pytest.importorskip("pystoi")
pytest.importorskip("auraloss")
pytest.importorskip("torchcrepe")

from vocoder.audio.io import save_audio
from vocoder.audio.mel import MelConfig, mel_spectrogram
from vocoder.evaluation import mos as mos_module
from vocoder.evaluation.html_report import ClipAudio, Entry, _columns, write_html
from vocoder.evaluation.report import evaluate

from conftest import speech_like
from helpers import REPO, load_script

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

SR = 22050
CFG = MelConfig()
GAINS = (1.0, 0.4, 2.0)  # per clip: the fake DistillMOS follows the level, so the page's order is known


class Oracle:
    """Gives back the clip it last computed a mel of (a perfect vocoder), plus white noise of ``noise`` RMS."""

    def __init__(self, name: str, noise: float = 0.0):
        self.mel_config, self.sample_rate, self.name, self.noise = CFG, SR, name, noise

    def mel(self, wav):
        self._last = wav
        return mel_spectrogram(wav, CFG)

    def __call__(self, mel):
        wav = self._last[: mel.shape[-1] * CFG.hop_length].clone()
        return wav + self.noise * torch.randn(wav.shape, generator=torch.Generator().manual_seed(0))


def fake_mos(wav, sample_rate):
    """Stands in for DistillMOS / DNSMOS (slow): a score that grows with the level."""
    level = float(torch.as_tensor(wav).abs().mean())
    return {"distillmos": 1.0 + 10.0 * level, "dnsmos_ovrl": 2.0, "dnsmos_sig": 2.5, "dnsmos_bak": 3.0}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    for i, gain in enumerate(GAINS):
        save_audio(d / f"c{i}.wav", gain * speech_like(0.5, SR, seed=i), SR)
    return d


@pytest.fixture(scope="module")
def two_models(clips, tmp_path_factory):
    """Two models on the same clips (MOS faked), their page in a folder: (folder, [report A, report B])."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mos_module, "mos_scores", fake_mos)
        mp.setattr(mos_module, "require", lambda: None)
        audio_a, audio_b = ClipAudio(), ClipAudio()
        a = evaluate(Oracle("oracle"), clips, audio_sink=audio_a)
        b = evaluate(Oracle("noisy", 0.02), clips, audio_sink=audio_b, griffin_lim_floor=False)
    out = tmp_path_factory.mktemp("page")
    write_html(out, [Entry(a, audio_a), Entry(b, audio_b)])
    return out, [a, b]


def _srcs(html: str, tag: str):
    return re.findall(rf'<{tag}\b[^>]*\bsrc="([^"]+)"', html)


def test_evaluate_gives_the_audio_and_the_same_report(clips):
    audio = ClipAudio()
    with_sink = evaluate(Oracle("oracle"), clips, mos=False, max_clips=2, audio_sink=audio)
    assert with_sink == evaluate(Oracle("oracle"), clips, mos=False, max_clips=2)
    assert list(audio.clips) == [c["file"] for c in with_sink["clips"]]
    first = audio.clips[with_sink["clips"][0]["file"]]
    assert set(first) == {"reference", "vocoder", "griffin_lim"}
    assert first["reference"].dtype == np.float32 and first["reference"].size == int(0.5 * SR)


def test_page_holds_every_file_it_names(two_models):
    out, (a, b) = two_models
    html = (out / "index.html").read_text()
    audio, images = _srcs(html, "audio"), _srcs(html, "img")
    # per clip: reference, both models, Griffin-Lim (the second model's front end is the first's: its floors once)
    assert len(audio) == 3 * 4 and len(images) == 3
    for src in audio + images:
        assert not re.match(r"[a-z]+://", src) and (out / src).is_file(), src  # all local, beside the page
    for src in audio:
        wav, sr = sf.read(out / src)
        assert sr == SR and int(0.5 * SR) - CFG.hop_length < len(wav) <= int(0.5 * SR)  # outputs: whole frames
    assert all((out / s).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for s in images)
    assert "http://" not in html and "https://" not in html
    means = html[html.index("<table class=\"means\""):html.index("</table>")]
    for label in ("oracle", "noisy", "Griffin-Lim", "reference"):
        assert f"<td>{label}</td>" in means
    assert "4.644 ± 0.000" in means  # the oracle's PESQ


def test_clips_worst_first_by_distillmos(two_models):
    out, (a, _) = two_models
    html = (out / "index.html").read_text()
    order = re.findall(r'<div class="clip" data-file="([^"]+)"', html)
    by_mos = sorted(a["clips"], key=lambda c: c["metrics"]["vocoder"]["distillmos"])
    assert order == [c["file"] for c in by_mos] and [Path(f).name for f in order] == ["c1.wav", "c0.wav", "c2.wav"]
    assert "worst first by oracle&#39;s DistillMOS" in html or "worst first by oracle's DistillMOS" in html


def test_without_mos_sorts_by_pesq_and_says_so(clips, tmp_path):
    report = evaluate(Oracle("noisy", 0.02), clips, mos=False, griffin_lim_floor=False)
    write_html(tmp_path, [Entry(report)])  # a report without its audio (a JSON read back): metrics only
    html = (tmp_path / "index.html").read_text()
    assert "PESQ (DistillMOS was not scored" in html
    assert not _srcs(html, "audio") and not _srcs(html, "img")
    order = re.findall(r'data-file="([^"]+)"', html)
    assert order == [c["file"] for c in sorted(report["clips"], key=lambda c: c["metrics"]["vocoder"]["pesq"])]
    assert "<td>reference</td>" not in html  # no MOS: the reference has no metrics


def test_a_later_model_with_another_front_end_brings_its_floors():
    def report(mel):
        return {"model": "m", "sample_rate": 22050, "mel": mel, "systems": ["vocoder", "griffin_lim"]}

    same = _columns([Entry(report({"n_mels": 80})), Entry(report({"n_mels": 80}), label="B")])
    assert [c.label for c in same] == ["reference", "m", "B", "Griffin-Lim"]
    other = _columns([Entry(report({"n_mels": 80})), Entry(report({"n_mels": 100}), label="B")])
    assert [c.label for c in other] == ["reference", "m", "B", "Griffin-Lim", "Griffin-Lim (B's front end)"]
    assert len({c.key for c in other}) == len(other)  # distinct file names


def test_cli_eval_html_one_and_two_models(clips, tmp_path, monkeypatch, capsys):
    from vocoder.cli.main import main
    from vocoder.inference import Vocoder

    models = {"a.pt": lambda: Oracle("oracle"), "b.pt": lambda: Oracle("noisy", 0.02)}
    monkeypatch.setattr(Vocoder, "from_pretrained", staticmethod(lambda path=None, **kw: models[path]()))
    common = ["--data", str(clips), "--max-clips", "2", "--no-mos", "--no-pinv-floors"]

    # one model: the table and the JSON as before, plus the page
    rc = main(["eval", "--model", "a.pt", *common, "--report", str(tmp_path / "one.json"), "--html",
               str(tmp_path / "one")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.count("oracle (a.pt)") == 1 and "listening page:" in printed
    one = json.loads((tmp_path / "one.json").read_text())
    assert isinstance(one, dict) and one["systems"] == ["vocoder", "griffin_lim"] and one["n_clips"] == 2
    assert len(_srcs((tmp_path / "one" / "index.html").read_text(), "audio")) == 2 * 3

    # two models: two tables, a JSON list (the floors scored once, with the first), one page with both
    rc = main(["eval", "--model", "a.pt", "--model", "b.pt", *common, "--report", str(tmp_path / "two.json"),
               "--html", str(tmp_path / "two")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "oracle (a.pt)" in printed and "noisy (b.pt)" in printed
    two = json.loads((tmp_path / "two.json").read_text())
    assert [r["model"] for r in two] == ["oracle (a.pt)", "noisy (b.pt)"]
    assert two[0]["systems"] == ["vocoder", "griffin_lim"] and two[1]["systems"] == ["vocoder"]
    html = (tmp_path / "two" / "index.html").read_text()
    assert "oracle (a.pt) vs noisy (b.pt)" in html and len(_srcs(html, "audio")) == 2 * 4

    # --png draws one model's worst clip: refused with two, before any model is loaded
    rc = main(["eval", "--model", "a.pt", "--model", "b.pt", *common, "--png", str(tmp_path / "w.png")])
    assert rc == 2 and "--png" in capsys.readouterr().err and not (tmp_path / "w.png").exists()
    # --html naming a file: refused before any work
    (tmp_path / "file").write_text("x")
    assert main(["eval", "--model", "a.pt", *common, "--html", str(tmp_path / "file")]) == 2


def test_training_curve_html(clips, tmp_path, monkeypatch, capsys):
    from vocoder.checkpoints import save_checkpoint
    from vocoder.generators.registry import build_generator

    monkeypatch.setattr(mos_module, "mos_scores", fake_mos)
    monkeypatch.setattr(mos_module, "require", lambda: None)
    # a tiny model at 16 kHz with 32 bands (the MCD takes 24 cepstral coefficients of the mel)
    mel = MelConfig(sample_rate=16000, n_fft=256, hop_length=64, win_length=256, n_mels=32, fmin=0.0, fmax=8000.0)
    paths = []
    for step, hours in ((100, 0.5), (200, 1.0)):
        torch.manual_seed(step)
        gen = build_generator("hifigan", {"n_mels": mel.n_mels, "upsample_rates": [8, 8],
                                          "upsample_kernel_sizes": [16, 16], "upsample_initial_channel": 16,
                                          "resblock": "2", "resblock_kernel_sizes": [3],
                                          "resblock_dilation_sizes": [[1, 3]]})
        paths.append(tmp_path / f"s{step}.pt")
        save_checkpoint(paths[-1], gen, mel, meta={"gan_step": step, "cpu_hours": hours})
    curve = load_script(REPO / "scripts" / "training_curve.py")
    out = tmp_path / "page"
    rc = curve.main([f"early={paths[0]}", f"late={paths[1]}", "--samples", str(clips), "--corpus",
                     str(tmp_path / "no_corpus"), "--json", str(tmp_path / "curve.json"), "--html", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| early | 100 | 0.50 |" in printed and "listening page:" in printed  # the table as before
    html = (out / "index.html").read_text()
    metrics = json.loads((tmp_path / "curve.json").read_text())["rows"][0]["samples"]
    curves = [s for s in _srcs(html, "img") if "curve-" in s]
    assert len(curves) == len(metrics) and all((out / s).is_file() for s in curves)  # every metric
    audio = _srcs(html, "audio")
    assert len(audio) == len(GAINS) * 4 and all((out / s).is_file() for s in audio)  # ref, 2 checkpoints, GL
    assert all(s.startswith("audio/samples-") for s in audio)  # one section per split, its files named after it
    assert "<td>early</td>" in html and "<td>late</td>" in html



def test_training_curve_decodes_with_the_phase_asked(clips, tmp_path, monkeypatch, capsys):
    """``--phase rtpghi``: every checkpoint decoded with RTPGHI's phase (not its own), said in the label and JSON."""
    from vocoder.checkpoints import save_checkpoint
    from vocoder.generators.registry import build_generator

    monkeypatch.setattr(mos_module, "mos_scores", fake_mos)
    monkeypatch.setattr(mos_module, "require", lambda: None)
    mel = MelConfig(sample_rate=16000, n_fft=256, hop_length=64, win_length=256, n_mels=32, fmin=0.0, fmax=8000.0)
    torch.manual_seed(0)
    gen = build_generator("vocos", {"n_mels": 32, "dim": 16, "intermediate_dim": 24, "num_layers": 1, "n_fft": 256,
                                    "hop_length": 64, "padding": "same", "sample_rate": 16000, "fmax": 8000.0})
    save_checkpoint(tmp_path / "v.pt", gen, mel, meta={"gan_step": 7, "cpu_hours": 0.1})
    curve = load_script(REPO / "scripts" / "training_curve.py")
    rows = {}
    for phase in ("model", "rtpghi"):
        rc = curve.main([f"v={tmp_path / 'v.pt'}", "--samples", str(clips), "--corpus", str(tmp_path / "none"),
                         "--phase", phase, "--json", str(tmp_path / f"{phase}.json")])
        assert rc == 0
        rows[phase] = json.loads((tmp_path / f"{phase}.json").read_text())["rows"][0]
    assert "| v (rtpghi) | 7 | 0.10 |" in capsys.readouterr().out
    assert rows["rtpghi"]["phase"] == "rtpghi" and rows["model"]["label"] == "v"
    assert rows["rtpghi"]["samples"]["mstft"] != rows["model"]["samples"]["mstft"]  # another decode

# --- the page as a person sees it: headless Chromium over the DevTools protocol --------------------------------

def _chromium():
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class DevTools:
    """The DevTools protocol on one page target: ``call`` a method, keep every event it sends meanwhile."""

    def __init__(self, ws):
        self.ws, self.next_id, self.events = ws, 0, []

    def _recv(self, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "Chromium did not answer in time"
        msg = json.loads(self.ws.recv(timeout=remaining))
        if "method" in msg:
            self.events.append(msg)
        return msg

    def call(self, method: str, timeout: float = 120.0, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = self._recv(deadline)
            if msg.get("id") == self.next_id:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg["result"]

    def wait_for(self, event: str, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while not any(e["method"] == event for e in self.events):
            self._recv(deadline)
        return next(e for e in self.events if e["method"] == event)


_AUDIO_STATE = """
Promise.all(Array.from(document.querySelectorAll('audio')).map(a => new Promise(resolve => {
  const done = () => resolve({src: a.getAttribute('src'), duration: a.duration, error: a.error && a.error.code});
  if (a.readyState >= 1 || a.error) return done();
  a.addEventListener('loadedmetadata', done, {once: true});
  a.addEventListener('error', done, {once: true});
  setTimeout(done, 60000);
}))).then(audio => ({audio, images: Array.from(document.images).map(i => ({src: i.getAttribute('src'),
                                                                          width: i.naturalWidth}))}))
"""


@pytest.mark.browser
def test_page_in_headless_chromium(two_models, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium binary (apt-get install chromium; .ci/run installs it)")
    pytest.importorskip("websockets.sync.client")  # the `serve` extra, which `make test` installs
    from PIL import Image
    from websockets.sync.client import connect

    out, _ = two_models
    profile = tmp_path / "profile"
    proc = subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--no-first-run", "--mute-audio", "--window-size=1280,1600",
                             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 120
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert proc.poll() is None, f"chromium exited with {proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        local = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        targets = json.loads(local.open(f"http://127.0.0.1:{port}/json/list", timeout=60).read())
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=60, proxy=None) as ws:
            dt = DevTools(ws)
            for domain in ("Runtime", "Log", "Page", "Network"):
                dt.call(f"{domain}.enable")
            dt.call("Page.navigate", url=(out / "index.html").as_uri())
            dt.wait_for("Page.loadEventFired")
            state = dt.call("Runtime.evaluate", expression=_AUDIO_STATE, awaitPromise=True, returnByValue=True)
            assert "exceptionDetails" not in state, state
            state = state["result"]["value"]
            shot = dt.call("Page.captureScreenshot", format="png")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)

    # every player loads its audio (the page has 3 clips x reference, 2 models, Griffin-Lim)
    assert len(state["audio"]) == 12
    for a in state["audio"]:
        assert a["error"] is None and a["duration"] and a["duration"] > 0, a
        assert a["duration"] == pytest.approx(0.5, abs=0.01), a
    assert state["images"] and all(i["width"] > 0 for i in state["images"]), state["images"]
    # no console error, no uncaught exception, no failed load; nothing fetched from the network
    errors = [e for e in dt.events
              if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
              or e["method"] == "Network.loadingFailed"]
    assert not errors, errors
    urls = [e["params"]["request"]["url"] for e in dt.events if e["method"] == "Network.requestWillBeSent"]
    assert urls and all(u.startswith(("file:", "data:")) for u in urls), urls
    # the screenshot shows something: many colours (text, tables, spectrograms), not a blank page
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 100


def test_plot_curves_draws_a_line_per_arm(tmp_path, monkeypatch, capsys):
    """``scripts/plot_curves.py``: rows labelled ``ARM_<hours>h`` from several curve files become one line per arm."""
    plot = load_script(REPO / "scripts" / "plot_curves.py")
    floors = {"samples": {"griffin_lim": {"distillmos": 2.0, "pesq": 3.0}, "reference": {"distillmos": 3.0}}}

    def row(label, step, hours, mos):
        return {"label": label, "gan_step": step, "cpu_hours": hours, "samples": {"distillmos": mos, "pesq": 2.0}}

    (tmp_path / "a.json").write_text(json.dumps({"rows": [row("current_0.5h", 100, 0.5, 2.1),
                                                          row("hiftnet_0.5h", 60, 0.5, 1.5)], "floors": floors}))
    (tmp_path / "b.json").write_text(json.dumps({"rows": [row("current_1h", 200, 1.0, 2.2),
                                                          row("hiftnet_1.0h", 120, 1.0, 1.9)], "floors": floors}))
    seen = {}
    real = plot.write_curves

    def spy(out, points, metrics, levels, prefix=""):
        seen[prefix] = (points, metrics, levels)
        return real(out, points, metrics, levels, prefix=prefix)

    monkeypatch.setattr(plot, "write_curves", spy)
    out = tmp_path / "plots"
    assert plot.main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(out),
                      "--metrics", "distillmos", "pesq"]) == 0
    points, metrics, levels = seen["samples-"]
    assert {p.series for p in points} == {"current", "hiftnet"} and len(points) == 4
    assert sorted(p.cpu_hours for p in points if p.series == "hiftnet") == [0.5, 1.0]
    assert levels["Griffin-Lim"]["distillmos"] == 2.0 and metrics == ["distillmos", "pesq"]
    printed = capsys.readouterr().out
    for m in metrics:
        png = out / "img" / f"samples-curve-{m}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in printed
    # a metric no row has is an error naming it, not an empty plot
    assert plot.main([str(tmp_path / "a.json"), "--out", str(out), "--metrics", "stoi"]) == 2
    assert "stoi" in capsys.readouterr().err
