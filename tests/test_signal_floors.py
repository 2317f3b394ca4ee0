"""The no-network floor (vocoder.evaluation.signal_floors): the mel's pseudo-inverse amplitude with a PGHI / RTPGHI
phase, in the front end's framing."""
import math

import pytest
import torch

from vocoder.audio.mel import MelConfig, mel_spectrogram
from vocoder.evaluation.signal_floors import pinv_amplitude, pinv_floor, supports_pinv_floor

MEL = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0, fmax=8000)


def _voiced(seconds=0.75, sr=22050):
    t = torch.arange(int(seconds * sr)) / sr
    f0 = 140 + 20 * torch.sin(2 * math.pi * 2 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sr
    return 0.4 * sum(torch.sin(k * phase) / k for k in range(1, 25)) * torch.hann_window(t.numel(), periodic=False)


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("method", ["rtpghi", "pghi"])
def test_pinv_floor_rebuilds_the_mel_it_came_from(method, center):
    cfg = MelConfig(**{**MEL.to_dict(), "center": center})
    wav = _voiced()
    mel = mel_spectrogram(wav, cfg)
    out = pinv_floor(mel, cfg, method)
    assert out.dtype == torch.float32 and out.shape == (mel.shape[-1] * cfg.hop_length,)
    again = mel_spectrogram(out, cfg)[:, : mel.shape[-1]]
    loud = mel > mel.max() - 6  # where the speech is (the near-silent edges carry no phase information)
    err = (again - mel)[loud].abs().mean()
    # measured 0.23-0.24 nats (PGHI and RTPGHI, uncentred); a random phase on the same amplitude gives over twice that
    assert err < 0.35, err
    amp = pinv_amplitude(mel, cfg)
    noise = torch.polar(amp, torch.rand_like(amp) * 2 * math.pi)[None]
    from vocoder.nn.convnext import InverseSTFT
    rand = InverseSTFT(cfg.n_fft, cfg.hop_length, "center" if center else "same")(noise)[0]
    assert (mel_spectrogram(rand, cfg)[:, : mel.shape[-1]] - mel)[loud].abs().mean() > 2 * err


def test_pinv_amplitude_is_floored_and_unsupported_framings_are_refused():
    mel = torch.full((80, 5), math.log(1e-5))  # silence
    amp = pinv_amplitude(mel, MEL)
    assert amp.shape == (513, 5) and float(amp.min()) >= MEL.log_floor * (1 - 1e-6)
    odd = MelConfig(**{**MEL.to_dict(), "win_length": 800})
    assert not supports_pinv_floor(odd) and supports_pinv_floor(MEL)
    with pytest.raises(ValueError, match="Hann window of n_fft"):
        pinv_floor(mel, odd)
