"""Mel conventions (ESPnet / Coqui / SpeechBrain -> ours) and the TTS-facing VocoderPlugin."""
import math

import numpy as np
import pytest
import torch

from vocoder.audio.mel import MelConfig, linear_spectrogram, mel_filterbank, mel_spectrogram
from vocoder.generators.registry import build_generator
from vocoder.inference import Vocoder
from vocoder.plugins import CONVENTIONS, MelConvention, convert_mel, to_vocoder_mel
from vocoder.plugins.tts import VocoderPlugin

from helpers import TINY_MEL as MEL

pytestmark = pytest.mark.usefixtures("one_thread_per_module")


def _audio():
    t = torch.arange(1600) / 8000
    # A chirp plus a silent stretch, so both loud bins and bins under every floor occur.
    wav = 0.5 * torch.sin(2 * math.pi * (200 + 1500 * t) * t)
    wav[1000:1300] = 0
    return wav


def _linear_mel(wav):
    """Magnitude mel with our framing (filterbank output before any log)."""
    return mel_filterbank(MEL) @ linear_spectrogram(wav[None], MEL)[0]


def test_espnet_log10_mel_converts_to_ours_exactly(capsys):
    wav = _audio()
    ours = mel_spectrogram(wav, MEL)
    espnet = torch.log10(torch.clamp(_linear_mel(wav), min=1e-10)).T  # ESPnet: log10, floor 1e-10, [T, n_mels]
    assert espnet.min() < math.log10(1e-5)  # some values sit below our floor: the re-clamp is exercised
    converted = to_vocoder_mel(espnet, "espnet")
    diff = (converted - ours).abs().max().item()
    with capsys.disabled():
        print(f"\n[espnet log10 -> ours] max abs diff: {diff:.3e}")
    assert converted.shape == ours.shape and diff < 1e-5
    # numpy in, numpy out; and back again (ours -> espnet) agrees where ours is above its floor
    back = convert_mel(ours.numpy(), "hifigan", "espnet")
    assert isinstance(back, np.ndarray) and back.shape == espnet.shape
    above = (ours > math.log(1e-5) + 1e-3).T.numpy()
    assert np.abs(back - espnet.numpy())[above].max() < 1e-5


def test_coqui_normalised_db_mel_converts_to_ours():
    wav = _audio()
    ours = mel_spectrogram(wav, MEL)
    db = 20 * torch.log10(torch.clamp(_linear_mel(wav), min=1e-5)) - 20  # Coqui AudioProcessor defaults
    coqui = torch.clamp((2 * 4.0) * ((db + 100) / 100) - 4.0, -4.0, 4.0)
    converted = to_vocoder_mel(coqui, "coqui")
    kept = db > -100  # Coqui clips below -100 dB: that part is lost, the rest is exact
    assert kept.float().mean() > 0.3
    assert (converted - ours)[kept].abs().max() < 1e-4
    assert torch.allclose(convert_mel(ours, "hifigan", "coqui")[kept], coqui[kept], atol=1e-4)


def test_speechbrain_is_ours_and_bad_conventions_raise():
    x = torch.randn(20, 5) - 4
    assert torch.equal(to_vocoder_mel(x, "speechbrain"), x)
    with pytest.raises(ValueError, match="unknown mel convention"):
        to_vocoder_mel(x, "kaldi")
    htk = MelConvention("htk_toolkit", mel_scale="htk", mel_norm=None)
    with pytest.raises(ValueError, match="filterbanks"):
        to_vocoder_mel(x, htk)
    other = MelConfig(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=20, fmin=50.0, fmax=4000.0)
    with pytest.raises(ValueError, match="fmin: source 50.0 vs vocoder 0.0"):
        to_vocoder_mel(x, "espnet", other, MEL)
    assert not CONVENTIONS["hifigan"].center and CONVENTIONS["espnet"].time_first
    assert MelConvention("power", power=2.0).exact_values is False


def test_vocoder_plugin_styles():
    torch.manual_seed(0)
    gen = build_generator("hifigan", {"n_mels": 20, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                                      "upsample_initial_channel": 16, "resblock": "2",
                                      "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]]})
    voc = Vocoder(gen, MEL)
    plugin = VocoderPlugin(voc, source_mel=MEL)
    ours = mel_spectrogram(_audio(), MEL)
    ref = voc(ours)
    assert plugin.sample_rate == 8000
    assert torch.equal(plugin(ours), ref)
    espnet = (ours / math.log(10)).T.numpy()  # ESPnet's [T, n_mels] log10 mel of the same audio
    out = plugin(espnet, convention="espnet")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and np.abs(out - ref.numpy()).max() < 1e-5
    assert plugin.inference(ours[None]).shape == (1, 1, ref.shape[0])
    assert plugin.decode_batch(ours[None].repeat(2, 1, 1)).shape == (2, 1, ref.shape[0])
    with pytest.raises(ValueError, match=r"\[T, n_mels=20\]"):
        plugin(ours, convention="espnet")  # [n_mels, T] given where ESPnet's [T, n_mels] is expected
