"""Evaluation: metrics on identical / degraded signals, the Griffin-Lim floor, the report (JSON, PNG, table)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.fft
import torch

pytest.importorskip("pesq")
pytest.importorskip("pystoi")
pytest.importorskip("auraloss")
pytest.importorskip("torchcrepe")

from vocoder.audio.io import save_audio
from vocoder.audio.mel import MelConfig, mel_spectrogram
from vocoder.evaluation import (GriffinLimVocoder, evaluate, evaluate_pair, format_table, griffin_lim, list_clips,
                                mel_cepstral_distortion, write_json)
from vocoder.evaluation.metrics import METRICS, mel_cepstrum

SR = 22050
CFG = MelConfig()  # HiFi-GAN V1 front end at 22.05 kHz


def speech_like(seconds=1.0, sr=SR, f0_center=170.0, seed=0) -> torch.Tensor:
    """A voiced, speech-like test signal: harmonics of a vibrato f0 in 120-220 Hz under a syllabic envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = f0_center + 50.0 * np.sin(2 * np.pi * (2.5 + rng.random()) * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase + rng.random() * 6.28) / k for k in range(1, 40) if k * 220 < 7000)
    envelope = np.sin(np.pi * t / seconds) ** 0.5 * (0.65 + 0.35 * np.sin(2 * np.pi * 4 * t))
    return torch.tensor(0.3 * x / np.abs(x).max() * envelope, dtype=torch.float32)


def noise_like(ref: torch.Tensor, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(ref.numel(), generator=g)
    return n * ref.pow(2).mean().sqrt() / n.pow(2).mean().sqrt()


@pytest.fixture(scope="module")
def ref():
    return speech_like()


@pytest.fixture(scope="module")
def identical(ref):
    return evaluate_pair(ref, ref.clone(), SR, CFG)


def test_identical_signals_score_perfectly(identical):
    assert set(identical) == set(METRICS)
    assert identical["pesq"] == pytest.approx(4.644, abs=0.01)  # wide-band PESQ's ceiling
    assert identical["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert identical["mstft"] < 1e-5
    assert identical["mel_l1"] == 0.0
    assert identical["mcd"] == 0.0
    assert identical["periodicity"] == 0.0 and identical["periodicity_all"] == 0.0
    assert identical["vuv_f1"] == 1.0


def test_degraded_copy_scores_worse(ref, identical):
    m = evaluate_pair(ref, ref + 0.3 * noise_like(ref), SR, CFG)  # about 10 dB SNR
    assert m["pesq"] < identical["pesq"] - 1.0
    assert m["stoi"] < 0.98
    assert m["mstft"] > 0.3
    assert m["mel_l1"] > 0.1
    assert m["mcd"] > 1.0
    assert m["periodicity"] > 0.0


def test_lengths_are_aligned_by_trimming(ref):
    m = evaluate_pair(ref, torch.cat([ref, torch.zeros(300)]), SR, CFG)
    assert m["mel_l1"] == 0.0 and m["mstft"] < 1e-5


def test_reference_cache_changes_nothing():
    ref = speech_like(0.7, seed=4)
    hyp = ref + 0.05 * noise_like(ref)
    cache = {}
    first = evaluate_pair(ref, hyp, SR, CFG, cache=cache)
    assert "periodicity" in cache  # filled by the first call, reused by the second
    assert evaluate_pair(ref, hyp, SR, CFG, cache=cache) == first == evaluate_pair(ref, hyp, SR, CFG)
    other = speech_like(0.7, f0_center=140.0, seed=5)  # a different reference must not hit the cache
    assert evaluate_pair(other, other, SR, CFG, cache=cache)["periodicity_all"] == 0.0


def test_mcd_matches_its_written_definition(ref):
    hyp = ref * 0.5 + 0.01 * noise_like(ref)
    # Independent route: scipy's unnormalised DCT-II is 2 * sum x_n cos(...), so c_k = y_k / (2 N).
    def cep(x):
        logmel = mel_spectrogram(x, CFG).double().numpy()
        return (scipy.fft.dct(logmel, type=2, axis=0) / (2 * CFG.n_mels))[1:25].T

    d = cep(ref) - cep(hyp)
    expected = np.mean(10 / np.log(10) * np.sqrt(2 * (d ** 2).sum(-1)))
    assert mel_cepstral_distortion(ref, hyp, CFG) == pytest.approx(expected, rel=1e-9)
    assert mel_cepstrum(ref, CFG).shape == (ref.numel() // CFG.hop_length, 24)


def test_unvoiced_noise_fails_voicing(ref):
    m = evaluate_pair(ref, noise_like(ref), SR, CFG)
    assert m["vuv_f1"] < 0.5
    assert m["periodicity"] > 0.2


def test_griffin_lim_is_aligned_and_beats_noise(ref):
    mel = mel_spectrogram(ref, CFG)
    gl = griffin_lim(mel, CFG)
    assert gl.shape == (mel.shape[1] * CFG.hop_length,) and gl.dtype == torch.float32
    assert torch.equal(gl, griffin_lim(mel, CFG))  # fixed random_state: deterministic
    # Our padding convention: the output lines up with the reference (a half-hop shift scores worse).
    err = {s: float((mel_spectrogram(torch.roll(gl, s), CFG) - mel)[:, 2:-2].abs().mean()) for s in (-128, 0, 128)}
    assert err[0] < err[-128] and err[0] < err[128], err
    g = evaluate_pair(ref, gl, SR, CFG)
    n = evaluate_pair(ref, noise_like(ref), SR, CFG)
    assert g["pesq"] > n["pesq"] + 0.5
    assert g["stoi"] > n["stoi"]
    assert g["mstft"] < n["mstft"] and g["mel_l1"] < n["mel_l1"] and g["mcd"] < n["mcd"]
    assert g["vuv_f1"] > n["vuv_f1"]


def test_griffin_lim_from_a_magnitude(ref):
    """The true magnitude (our framing) does better than the one recovered from the mel, and lines up."""
    from vocoder.audio.mel import stft
    from vocoder.evaluation import magnitude_griffin_lim, mel_to_magnitude

    mel = mel_spectrogram(ref, CFG)
    true_mag = stft(ref[None], CFG.n_fft, CFG.hop_length, torch.hann_window(CFG.n_fft))[0].abs()[:, :mel.shape[1]]
    assert torch.equal(magnitude_griffin_lim(mel_to_magnitude(mel, CFG), CFG), griffin_lim(mel, CFG))
    from_true = magnitude_griffin_lim(true_mag, CFG)
    assert from_true.shape == (mel.shape[1] * CFG.hop_length,)
    assert evaluate_pair(ref, from_true, SR, CFG)["mstft"] < evaluate_pair(ref, griffin_lim(mel, CFG), SR, CFG)["mstft"]
    err = {s: float((mel_spectrogram(torch.roll(from_true, s), CFG) - mel)[:, 2:-2].abs().mean()) for s in (-128, 0, 128)}
    assert err[0] < err[-128] and err[0] < err[128], err
    with pytest.raises(ValueError, match=r"magnitude must be \[513, T\]"):
        magnitude_griffin_lim(true_mag[:-1], CFG)


def test_griffin_lim_rejects_bad_mel():
    with pytest.raises(ValueError, match="n_mels=80"):
        griffin_lim(torch.zeros(40, 10), CFG)


class OracleVocoder:
    """Returns the audio it last computed a mel of, trimmed to frames * hop: a perfect vocoder."""

    def __init__(self, mel_config: MelConfig):
        self.mel_config, self.sample_rate, self.name = mel_config, mel_config.sample_rate, "oracle"
        self._last = None

    def mel(self, wav):
        self._last = wav
        return mel_spectrogram(wav, self.mel_config)

    def __call__(self, mel):
        return self._last[: mel.shape[-1] * self.mel_config.hop_length].clone()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    save_audio(d / "a.wav", speech_like(0.8, f0_center=150.0, seed=2), SR)
    save_audio(d / "sub" / "b.wav", speech_like(0.8, f0_center=190.0, seed=3), SR)
    (d / "notes.txt").write_text("not audio")
    return d


def test_report_oracle_vs_griffin_lim(clip_dir, tmp_path):
    png = tmp_path / "worst.png"
    report = evaluate(OracleVocoder(CFG), clip_dir, png_path=png, mos=False)  # MOS: tests/test_mos.py
    assert report["n_clips"] == 2 and [c["file"].endswith(n) for c, n in zip(report["clips"], ("a.wav", "b.wav"))]
    assert report["systems"] == ["vocoder", "griffin_lim"] and report["model"] == "oracle"
    for clip in report["clips"]:
        v, g = clip["metrics"]["vocoder"], clip["metrics"]["griffin_lim"]
        assert v["pesq"] > 4.5 and v["mstft"] < 1e-3 and v["mcd"] < 1e-6
        assert g["pesq"] < v["pesq"] - 0.5 and g["mstft"] > 0.1
    pesqs = [c["metrics"]["vocoder"]["pesq"] for c in report["clips"]]
    assert report["mean"]["vocoder"]["pesq"] == pytest.approx(np.mean(pesqs))
    assert report["std"]["vocoder"]["pesq"] == pytest.approx(np.std(pesqs))
    assert report["worst_clip"]["pesq"] == min(pesqs)

    out = tmp_path / "report.json"
    write_json(report, out)
    loaded = json.loads(out.read_text())
    assert loaded == report
    assert set(loaded["mean"]["griffin_lim"]) == set(METRICS)
    # Without the MOS predictors the report is the intrusive layout only: no reference entry anywhere.
    assert report["metrics"] == list(METRICS) and "reference_metrics" not in report
    assert "reference" not in report["mean"] and all("reference" not in c["metrics"] for c in report["clips"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    table = format_table(report)
    assert "griffin_lim" in table and "pesq" in table and "oracle" in table

    # Reproducible: a second run (first clip only) gives the same numbers for that clip.
    again = evaluate(OracleVocoder(CFG), clip_dir, max_clips=1, mos=False)
    assert again["n_clips"] == 1 and again["clips"][0] == report["clips"][0]


def test_griffin_lim_vocoder_without_floor(clip_dir, tmp_path):
    short = tmp_path / "short.wav"
    save_audio(short, torch.zeros(100), SR)  # shorter than one STFT frame: skipped, not fatal
    report = evaluate(GriffinLimVocoder(CFG), [clip_dir / "a.wav", short], griffin_lim_floor=False, mos=False)
    assert report["systems"] == ["vocoder"] and report["n_clips"] == 1
    assert [s["file"] for s in report["skipped"]] == [str(short)]
    assert 1.0 < report["mean"]["vocoder"]["pesq"] < 4.0
    assert report["std"]["vocoder"]["pesq"] == 0.0


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="no audio files"):
        list_clips(tmp_path)
    with pytest.raises(ValueError, match="not found"):
        list_clips([tmp_path / "missing.wav"])
    short = tmp_path / "short.wav"
    save_audio(short, torch.zeros(100), SR)
    with pytest.raises(ValueError, match="none of the 1 clip"):
        evaluate(OracleVocoder(CFG), short)
    with pytest.raises(ValueError, match="Vocoder-like"):
        evaluate(object(), tmp_path)
    with pytest.raises(ValueError, match="mono"):
        evaluate_pair(torch.zeros(2, 100), torch.zeros(100), SR)
    with pytest.raises(ValueError, match="sample_rate"):
        evaluate_pair(torch.zeros(100), torch.zeros(100), SR, MelConfig(sample_rate=24000, hop_length=256))


def test_cli_eval_prints_table_and_writes_report(clip_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("distillmos")  # the CLI scores with the MOS predictors unless --no-mos
    pytest.importorskip("speechmos")
    from vocoder.cli.main import main
    from vocoder.inference import Vocoder

    seen = {}

    def fake_from_pretrained(path=None, device="cpu", config=None, **kw):
        seen.update(path=path, device=device)
        return OracleVocoder(CFG)

    monkeypatch.setattr(Vocoder, "from_pretrained", staticmethod(fake_from_pretrained))
    out, png = tmp_path / "r.json", tmp_path / "w.png"
    rc = main(["eval", "--model", "m.pt", "--data", str(clip_dir), "--report", str(out), "--png", str(png),
               "--max-clips", "1", "--no-griffin-lim"])
    assert rc == 0 and seen["path"] == "m.pt"
    printed = capsys.readouterr().out
    assert "pesq" in printed and "griffin_lim" not in printed
    assert "distillmos" in printed and "dnsmos_ovrl" in printed and "\nreference " in printed
    report = json.loads(out.read_text())
    # the no-network floors are on by default: the mel's pinv amplitude with an RTPGHI / PGHI phase
    assert report["n_clips"] == 1 and report["systems"] == ["vocoder", "pinv_rtpghi", "pinv_pghi"]
    assert "pinv_rtpghi" in printed and report["mean"]["pinv_rtpghi"]["pesq"] > 2.0
    assert report["mean"]["vocoder"]["pesq"] > 4.5
    assert set(report["mean"]["reference"]) == {"distillmos", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}
    assert 1.0 <= report["mean"]["vocoder"]["distillmos"] <= 5.0
    assert png.is_file()
    rc = main(["eval", "--model", "m.pt", "--data", str(clip_dir), "--report", str(out), "--max-clips", "1",
               "--no-griffin-lim", "--no-mos", "--no-pinv-floors"])
    assert rc == 0 and "distillmos" not in capsys.readouterr().out
    assert "reference" not in json.loads(out.read_text())["mean"]
    assert json.loads(out.read_text())["systems"] == ["vocoder"]
    assert main(["eval", "--model", "m.pt", "--data", str(tmp_path / "nothing_here")]) == 2
