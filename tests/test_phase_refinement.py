"""Phase refinement (fast Griffin-Lim from a Fourier head's phase): a consistent spectrum is a fixed point, it makes
an inconsistent one more consistent, and ``Vocoder(phase_iterations=K)`` applies it offline only."""
from __future__ import annotations

import logging
import math

import pytest
import torch

from vocoder import Vocoder
from vocoder.audio.mel import MelConfig, stft
from vocoder.generators import build_generator
from vocoder.generators.vocos import VocosConfig
from vocoder.nn.convnext import InverseSTFT
from vocoder.nn.phase_refinement import refine_phase

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

MEL = MelConfig()  # 22.05 kHz, 80 bands, hop 256, n_fft 1024


def harmonic_clip(n: int, seed: int = 0) -> torch.Tensor:
    """``[1, n]``: a 150 Hz tone with harmonics, a gliding partial and a little noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float32) / MEL.sample_rate
    x = sum(0.3 / k * torch.sin(2 * math.pi * 150.0 * k * t + k) for k in range(1, 6))
    x = x + 0.1 * torch.sin(2 * math.pi * (500.0 * t + 900.0 * t * t))
    return (x + 0.01 * torch.randn(n, generator=g))[None]


def analysis(istft: InverseSTFT, wav: torch.Tensor, frames: int) -> torch.Tensor:
    """The STFT whose inverse ``istft`` is (first ``frames`` frames), written out independently of the module."""
    return stft(wav, istft.n_fft, istft.hop_length, istft.window, center=istft.padding == "center")[..., :frames]


def inconsistency(istft: InverseSTFT, amplitude: torch.Tensor, wav: torch.Tensor) -> float:
    """Spectral convergence ``|| |STFT(wav)| - A || / || A ||``: 0 when ``A`` is the amplitude of an actual signal."""
    rebuilt = analysis(istft, wav, amplitude.shape[-1]).abs()
    return float(torch.linalg.norm(rebuilt - amplitude) / torch.linalg.norm(amplitude))


@pytest.mark.parametrize("padding", ["same", "center"])
def test_a_consistent_spectrum_is_a_fixed_point(padding):
    istft = InverseSTFT(1024, 256, padding)
    frames = 40
    wav = harmonic_clip(frames * 256)
    spec = analysis(istft, wav, frames)
    out = refine_phase(spec.abs(), spec.angle(), istft, iterations=8)
    base = refine_phase(spec.abs(), spec.angle(), istft, iterations=0)
    assert torch.allclose(base, istft(spec), atol=1e-6)
    inner = slice(1024, -1024)  # "center" keeps T of its T + 1 frames: the last hop has one frame less behind it
    assert torch.allclose(out[:, inner], wav[:, inner], atol=1e-4), (out - wav)[:, inner].abs().max()


@pytest.mark.parametrize("padding", ["same", "center"])
def test_iterations_make_a_random_phase_consistent(padding):
    istft = InverseSTFT(1024, 256, padding)
    frames = 60
    amplitude = analysis(istft, harmonic_clip(frames * 256), frames).abs()
    g = torch.Generator().manual_seed(1)
    phase = (torch.rand(amplitude.shape, generator=g) * 2 - 1) * math.pi
    errors = {k: inconsistency(istft, amplitude, refine_phase(amplitude, phase, istft, k)) for k in (0, 4, 32)}
    plain = inconsistency(istft, amplitude, refine_phase(amplitude, phase, istft, 32, momentum=0.0))
    assert errors[32] < errors[4] < 0.8 * errors[0], errors
    assert errors[32] < plain, (errors, plain)  # the momentum is what makes it fast


def test_refine_phase_checks_its_arguments():
    istft = InverseSTFT(1024, 256)
    amp = torch.ones(1, 513, 4)
    with pytest.raises(ValueError, match="iterations"):
        refine_phase(amp, amp, istft, -1)
    with pytest.raises(ValueError, match="momentum"):
        refine_phase(amp, amp, istft, 2, momentum=1.0)
    with pytest.raises(ValueError, match="one shape"):
        refine_phase(amp, amp[..., :3], istft, 2)


def small_fourier_vocoder(padding="same", **kw) -> Vocoder:
    torch.manual_seed(0)
    cfg = VocosConfig(n_mels=80, dim=32, intermediate_dim=64, num_layers=2, padding=padding, head="atan2",
                      prior="pinv")
    return Vocoder(build_generator("vocos", cfg), MEL, **kw)


def test_vocoder_phase_iterations_zero_is_the_plain_decode_and_k_refines_it():
    voc = small_fourier_vocoder()
    mel = voc.mel(harmonic_clip(30 * 256)[0])
    plain = voc(mel)
    voc.phase_iterations = 0
    assert torch.equal(voc(mel), plain)
    voc.phase_iterations = 8
    refined = voc(mel)
    gen = voc.generator
    with torch.inference_mode():
        log_amp, phase = gen.spectrum(mel[None])
        expected = refine_phase(torch.exp(log_amp).clip(max=1e2), phase, gen.head.istft, 8)[0]
    assert torch.allclose(refined, expected, atol=1e-6)
    amp = torch.exp(log_amp).clip(max=1e2)
    assert inconsistency(gen.head.istft, amp, refined[None]) < inconsistency(gen.head.istft, amp, plain[None])
    assert voc.describe()["phase_iterations"] == 8
    from vocoder.evaluation.report import _model_name
    assert _model_name(voc) == "vocos + 8 phase iterations"  # what `vocoder eval` reports it as


def test_batched_refinement_equals_each_items_own_decode():
    voc = small_fourier_vocoder(phase_iterations=4)
    mels = [voc.mel(harmonic_clip(n * 256, seed=n)[0]) for n in (20, 32)]
    batch = torch.zeros(2, 80, 32)
    for i, m in enumerate(mels):
        batch[i, :, : m.shape[-1]] = m
    out = voc(batch, lengths=[20, 32])
    for i, m in enumerate(mels):
        n = m.shape[-1] * 256
        assert torch.allclose(out[i, :n], voc(m), atol=1e-6)
        assert not out[i, n:].any()


def test_phase_iterations_are_refused_where_they_cannot_apply():
    with pytest.raises(ValueError, match="Fourier-head"):
        Vocoder.from_pretrained("hifigan_v2", random_init=True, phase_iterations=4)
    voc = small_fourier_vocoder()
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="phase_iterations"):
            voc.phase_iterations = bad


def test_a_refining_vocoder_streams_the_plain_decode_and_says_so(caplog):
    voc = small_fourier_vocoder(phase_iterations=4)
    mel = voc.mel(harmonic_clip(20 * 256)[0])
    refined = voc(mel)
    assert "offline only" in voc.describe()["streaming"]
    with caplog.at_level(logging.INFO, logger="vocoder.inference"):
        streamed = torch.cat(list(voc.stream([mel[:, :10], mel[:, 10:]])), -1)
        list(voc.stream([mel]))
    assert sum("offline only" in r.getMessage() for r in caplog.records) == 1  # said once
    from vocoder.streaming import StreamingVocoder
    sv = StreamingVocoder(voc)
    pushed = torch.cat([sv.push(mel[:, :7]), sv.push(mel[:, 7:]), sv.flush()], -1)
    voc.phase_iterations = 0
    plain = voc(mel)
    assert voc.describe()["streaming"] == "plain decode, equal to the offline decode"
    assert torch.allclose(streamed, plain, atol=1e-4) and torch.allclose(pushed, plain, atol=1e-4)
    assert not torch.allclose(streamed, refined, atol=1e-3)


def test_phase_iterations_travel_with_the_checkpoint(tmp_path):
    voc = small_fourier_vocoder(phase_iterations=6)
    voc.save(tmp_path / "k6.pt")
    assert Vocoder.from_pretrained(str(tmp_path / "k6.pt")).phase_iterations == 6            # the stored setting
    assert Vocoder.from_pretrained(str(tmp_path / "k6.pt"), phase_iterations=0).phase_iterations == 0  # override
    assert Vocoder.from_pretrained(str(tmp_path / "k6.pt"), phase_iterations=2).describe()["phase_iterations"] == 2
    voc.phase_iterations = 0                 # turning it off is stored too
    voc.save(tmp_path / "k0.pt")
    assert Vocoder.from_pretrained(str(tmp_path / "k0.pt")).phase_iterations == 0
    small_fourier_vocoder().save(tmp_path / "plain.pt")   # a checkpoint without the setting: off
    assert Vocoder.from_pretrained(str(tmp_path / "plain.pt")).phase_iterations == 0


def test_synthesize_command_applies_phase_iterations(tmp_path, capsys):
    import soundfile as sf

    from vocoder.cli.main import main

    voc = small_fourier_vocoder()
    voc.save(tmp_path / "fourier.pt")
    sf.write(tmp_path / "a.wav", harmonic_clip(24 * 256)[0].numpy(), MEL.sample_rate)
    assert main(["synthesize", "-m", str(tmp_path / "fourier.pt"), str(tmp_path / "a.wav"), "-o",
                 str(tmp_path / "out"), "--phase-iterations", "6"]) == 0
    written, sr = sf.read(tmp_path / "out" / "a.wav", dtype="float32")
    voc.phase_iterations = 6
    expected = voc.synthesize(tmp_path / "a.wav")
    assert sr == MEL.sample_rate and torch.allclose(torch.from_numpy(written), expected, atol=1e-4)
    voc.phase_iterations = 0
    assert not torch.allclose(torch.from_numpy(written), voc.synthesize(tmp_path / "a.wav"), atol=1e-3)
    # a generator without a phase: refused by name, exit status 2, nothing written
    Vocoder.from_pretrained("hifigan_v2", random_init=True).save(tmp_path / "hifigan.pt")
    assert main(["synthesize", "-m", str(tmp_path / "hifigan.pt"), str(tmp_path / "a.wav"), "-o",
                 str(tmp_path / "out2"), "--phase-iterations", "6"]) == 2
    assert "Fourier-head" in capsys.readouterr().err
    assert not (tmp_path / "out2" / "a.wav").exists()
