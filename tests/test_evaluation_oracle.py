"""Amplitude/phase oracle swaps: the generator's own output is its forward; a perfect spectrum gives the clip back."""
from __future__ import annotations

import math

import pytest
import torch

from vocoder.audio.mel import MelConfig, mel_spectrogram
from vocoder.evaluation import magnitude_griffin_lim
from vocoder.evaluation.oracle import (AMPLITUDE_GRIFFIN_LIM, AMPLITUDE_ORACLE, PHASE_ORACLE, SWAPS, VOCODER,
                                       reference_spectrum, spectrum_swaps)
from vocoder.generators import build_generator
from vocoder.generators.vocos import VocosConfig

MEL = MelConfig()  # 22.05 kHz, 80 bands, hop 256, n_fft 1024


def small_fourier(padding="same", **kw):
    torch.manual_seed(0)
    cfg = VocosConfig(n_mels=80, dim=32, intermediate_dim=64, num_layers=2, padding=padding, head="atan2", **kw)
    return build_generator("vocos", cfg).eval()


def clip(n=8192, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / MEL.sample_rate
    return 0.3 * torch.sin(2 * math.pi * 180.0 * t) + 0.01 * torch.randn(n, generator=g)


class PerfectSpectrum(torch.nn.Module):
    """Predicts the reference clip's own spectrum (what an ideal Fourier head would output)."""

    def __init__(self, inner, wav):
        super().__init__()
        self.inner, self.wav, self.config = inner, wav, inner.config

    def spectrum(self, mel):
        ref = reference_spectrum(self.inner, self.wav, mel.shape[-1])
        return torch.log(ref.abs().clamp(min=1e-10)), torch.angle(ref)

    def synthesize(self, log_amp, phase):
        return self.inner.synthesize(log_amp, phase)


class RightAmplitudeZeroPhase(PerfectSpectrum):
    """The reference's amplitude with a phase of 0 everywhere: only the amplitude half is right."""

    def spectrum(self, mel):
        log_amp, phase = super().spectrum(mel)
        return log_amp, torch.zeros_like(phase)


@pytest.mark.parametrize("padding", ["same", "center"])
def test_perfect_spectrum_swaps_give_the_clip_back(padding):
    wav = clip()
    mel = mel_spectrogram(wav[None], MEL)
    gen = PerfectSpectrum(small_fourier(padding), wav)
    out = spectrum_swaps(gen, mel, wav)
    assert set(out) == set(SWAPS)
    inner = slice(1024, wav.numel() - 1024)  # away from the edges' partial overlap-add
    for name, y in out.items():
        assert y.shape == (mel.shape[-1] * MEL.hop_length,)
        assert torch.allclose(y[inner], wav[inner], atol=1e-4), name


def test_the_right_half_is_taken_from_the_reference():
    wav = clip(seed=2)
    mel = mel_spectrogram(wav[None], MEL)
    out = spectrum_swaps(RightAmplitudeZeroPhase(small_fourier(), wav), mel, wav)
    inner = slice(1024, wav.numel() - 1024)
    assert torch.allclose(out[AMPLITUDE_ORACLE][inner], wav[inner], atol=1e-4)  # its amplitude, the clip's phase
    for name in (VOCODER, PHASE_ORACLE):  # zero phase: not the clip
        assert (out[name][inner] - wav[inner]).abs().max() > 0.05, name


def test_vocoder_entry_is_the_generators_forward_and_swaps_differ():
    wav = clip(seed=1)
    mel = mel_spectrogram(wav[None], MEL)
    gen = small_fourier(prior="pinv")
    out = spectrum_swaps(gen, mel[0], wav)  # [n_mels, T] is accepted too
    with torch.no_grad():
        assert torch.equal(out[VOCODER], gen(mel).reshape(-1))
    # random weights: the oracle halves change the audio
    assert not torch.allclose(out[AMPLITUDE_ORACLE], out[VOCODER], atol=1e-3)
    assert not torch.allclose(out[PHASE_ORACLE], out[VOCODER], atol=1e-3)
    # with a front end: also the predicted amplitude through Griffin-Lim's phase retrieval (8 iterations here)
    with_gl = spectrum_swaps(gen, mel, wav, griffin_lim_config=MEL, griffin_lim_iters=8)
    assert set(with_gl) == {*SWAPS, AMPLITUDE_GRIFFIN_LIM}
    assert all(torch.equal(with_gl[k], out[k]) for k in SWAPS)
    with torch.no_grad():
        log_amp = gen.spectrum(mel)[0][0]
    assert torch.equal(with_gl[AMPLITUDE_GRIFFIN_LIM], magnitude_griffin_lim(log_amp.exp(), MEL, 8))


def test_rejects_other_generators_and_bad_mels():
    wav = clip()
    mel = mel_spectrogram(wav[None], MEL)
    hifigan = build_generator("hifigan_v3")
    with pytest.raises(ValueError, match="Fourier-head generator"):
        spectrum_swaps(hifigan, mel, wav)
    with pytest.raises(ValueError, match=r"mel must be \[n_mels, T\]"):
        spectrum_swaps(small_fourier(), mel.expand(2, -1, -1), wav)


def test_phase_oracle_script_scores_every_system(tmp_path, capsys):
    """scripts/phase_oracle.py end to end on a small random model and one clip (no corpus)."""
    for module in ("pesq", "pystoi", "auraloss", "torchcrepe", "distillmos", "speechmos"):
        pytest.importorskip(module)
    import json

    from helpers import REPO, load_script
    from vocoder.audio.io import save_audio
    from vocoder.checkpoints.native import save_checkpoint

    oracle = load_script(REPO / "scripts" / "phase_oracle.py")
    save_checkpoint(tmp_path / "m.pt", small_fourier(prior="pinv"), MEL)
    (tmp_path / "clips").mkdir()
    save_audio(tmp_path / "clips" / "a.wav", clip(n=24000, seed=3), MEL.sample_rate)
    assert oracle.main([str(tmp_path / "m.pt"), "--samples", str(tmp_path / "clips"), "--corpus",
                        str(tmp_path / "no_corpus"), "--json", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr().out
    for label in oracle.LABELS.values():
        assert f"| {label} |" in out
    res = json.loads((tmp_path / "o.json").read_text())
    assert list(res) == ["samples"]
    means = {name: r["mean"] for name, r in res["samples"].items()}
    # the reference's amplitude is the right half: closer than the random model on the STFT metric
    assert means[PHASE_ORACLE]["mstft"] < means[VOCODER]["mstft"]
    assert set(means["reference"]) == {"distillmos", "dnsmos_ovrl"}
