"""TTS-pipeline adapters (vocoder.plugins.get): each call shape on our model, the convention warning, the
ValueErrors before any convolution, and the entry-point registry."""
from __future__ import annotations

import math
import warnings
from importlib import metadata

import numpy as np
import pytest
import torch

import vocoder.plugins
from vocoder.audio.mel import MelConfig, mel_spectrogram
from vocoder.generators.registry import build_generator
from vocoder.inference import Vocoder
from vocoder.plugins import adapters, convert_mel
from vocoder.plugins.adapters import (CoquiVocoder, ESPnetVocoder, MelConventionWarning, NeMoVocoder,
                                      SpeechBrainVocoder, guess_convention)

from conftest import speech_like
from helpers import TINY_MEL as MEL

pytestmark = pytest.mark.usefixtures("one_thread_per_module")


@pytest.fixture(scope="module")
def voc():
    torch.manual_seed(0)
    gen = build_generator("hifigan", {"n_mels": 20, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                                      "upsample_initial_channel": 16, "resblock": "2",
                                      "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]]})
    return Vocoder(gen, MEL)


def _mel(seed=0, seconds=0.4):
    return mel_spectrogram(speech_like(seconds, MEL.sample_rate, seed), MEL)  # ours: ln, [n_mels, T]


@pytest.fixture
def no_convolution(voc):
    """Fails the test if anything reaches the generator."""
    def hook(module, inputs):
        raise AssertionError("the generator ran")

    h = voc.generator.register_forward_pre_hook(hook)
    yield
    h.remove()


def test_get_finds_the_four_pipelines_as_entry_points(voc):
    names = {ep.name: ep.value for ep in metadata.entry_points(group="vocoder.plugins")}
    assert names == {"espnet": "vocoder.plugins.adapters:ESPnetVocoder",
                     "speechbrain": "vocoder.plugins.adapters:SpeechBrainVocoder",
                     "coqui": "vocoder.plugins.adapters:CoquiVocoder", "nemo": "vocoder.plugins.adapters:NeMoVocoder"}
    for name, cls in [("espnet", ESPnetVocoder), ("speechbrain", SpeechBrainVocoder), ("coqui", CoquiVocoder),
                      ("nemo", NeMoVocoder)]:
        a = vocoder.plugins.get(name, model=voc)
        assert type(a) is cls and a.vocoder is voc and a.pipeline == name
    assert {"espnet", "speechbrain", "coqui", "nemo"} <= set(vocoder.plugins.available())
    with pytest.raises(ValueError, match="unknown TTS pipeline 'kaldi'"):
        vocoder.plugins.get("kaldi", model=voc)


def test_a_third_party_entry_point_is_found(voc, monkeypatch):
    ep = metadata.EntryPoint(name="mytts", value="vocoder.plugins.adapters:NeMoVocoder", group="vocoder.plugins")
    monkeypatch.setattr(adapters, "_entry_points", lambda: {"mytts": ep})
    assert "mytts" in adapters.available()
    assert type(adapters.get("mytts", model=voc, convention="hifigan")) is NeMoVocoder


def test_espnet_call_shape(voc):
    ours = _mel()
    ref = voc(ours)
    esp = vocoder.plugins.get("espnet", model=voc)
    assert esp.fs == MEL.sample_rate
    feats = (ours / math.log(10)).T  # ESPnet's [T, n_mels] log10 features of the same audio
    out = esp(feats)
    assert out.shape == (ours.shape[1] * MEL.hop_length,) and (out - ref).abs().max() < 1e-5
    out_np = esp(feats.numpy())
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32 and np.abs(out_np - ref.numpy()).max() < 1e-5
    with pytest.raises(ValueError, match=r"\[T, n_mels=20\].*transposed"):
        esp(feats.T)


def test_speechbrain_call_shapes_and_lengths(voc):
    sb = vocoder.plugins.get("speechbrain", model=voc)
    a, b = _mel(0), _mel(1, seconds=0.25)
    T, hop = a.shape[1], MEL.hop_length
    batch = torch.full((2, MEL.n_mels, T), math.log(1e-5))
    batch[0], batch[1, :, : b.shape[1]] = a, b
    out = sb.decode_batch(batch)
    assert out.shape == (2, 1, T * hop)
    assert (out[0, 0] - voc(a)).abs().max() < 1e-5
    out = sb.decode_batch(batch, mel_lens=torch.tensor([T, b.shape[1]]), hop_len=hop)
    assert (out[1, 0, : b.shape[1] * hop] - voc(b)).abs().max() < 1e-5  # each item equals its own decode
    assert torch.all(out[1, 0, b.shape[1] * hop:] == 0)                    # zero past its length
    rel = sb.decode_batch(batch, mel_lens=torch.tensor([1.0, b.shape[1] / T]))  # SpeechBrain's relative lengths
    assert torch.equal(rel, out)
    one = sb.decode_spectrogram(a)
    assert one.shape == (1, T * hop) and (one[0] - voc(a)).abs().max() < 1e-5


def test_coqui_and_nemo_call_shapes(voc):
    ours = _mel()
    ref = voc(ours)
    coqui_mel = convert_mel(ours, "hifigan", "coqui")  # Coqui's normalised dB of the same audio
    out = vocoder.plugins.get("coqui", model=voc).inference(coqui_mel[None])
    assert out.shape == (1, 1, ref.shape[0])
    # Coqui clips at -100 dB, under our floor: what it kept is exact, so compare with the conversion's decode
    assert (out[0, 0] - voc(convert_mel(coqui_mel, "coqui", "hifigan"))).abs().max() < 1e-5
    nemo = vocoder.plugins.get("nemo", model=voc)
    out = nemo.convert_spectrogram_to_audio(spec=ours[None].repeat(2, 1, 1))
    assert out.shape == (2, ref.shape[0]) and (out - ref).abs().max() < 1e-5


def test_right_conventions_do_not_warn(voc):
    ours = _mel()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MelConventionWarning)
        vocoder.plugins.get("espnet", model=voc)((ours / math.log(10)).T)
        vocoder.plugins.get("speechbrain", model=voc).decode_batch(ours[None])
        vocoder.plugins.get("coqui", model=voc).inference(convert_mel(ours, "hifigan", "coqui")[None])
        vocoder.plugins.get("nemo", model=voc).convert_spectrogram_to_audio(ours[None])


@pytest.mark.parametrize("pipeline,make,named", [
    ("speechbrain", lambda m: m / math.log(10), "log10"),                    # log10 values fed as natural log
    ("espnet", lambda m: m.T, "natural-log"),                                 # ln fed as ESPnet's log10 [T, n_mels]
    ("nemo", lambda m: 20 * m / math.log(10), "decibels"),                     # dB
    ("speechbrain", lambda m: (m - m.mean(1, keepdim=True)) / m.std(1, keepdim=True), "standardised"),
    ("coqui", lambda m: m, "natural-log"),                                    # ln where Coqui's [-4, 4] is expected
])
def test_wrong_convention_warns_once_naming_the_likely_one(voc, pipeline, make, named):
    a = vocoder.plugins.get(pipeline, model=voc)
    x = make(_mel())
    call = {"espnet": lambda t: a(t), "speechbrain": lambda t: a.decode_batch(t[None]),
            "nemo": lambda t: a.convert_spectrogram_to_audio(t[None]), "coqui": lambda t: a.inference(t[None])}[pipeline]
    with pytest.warns(MelConventionWarning, match=named):
        call(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MelConventionWarning)
        call(x)  # once per adapter
    quiet = vocoder.plugins.get(pipeline, model=voc, check_statistics=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MelConventionWarning)
        {"espnet": lambda t: quiet(t), "speechbrain": lambda t: quiet.decode_batch(t[None]),
         "nemo": lambda t: quiet.convert_spectrogram_to_audio(t[None]),
         "coqui": lambda t: quiet.inference(t[None])}[pipeline](x)


def test_guess_convention_on_22khz_speech():
    cfg = MelConfig()
    for amp in (1.0, 0.05):
        ln = mel_spectrogram(speech_like(1.0, cfg.sample_rate) * amp, cfg)
        assert guess_convention(ln) == "ln"
        assert guess_convention(ln / math.log(10)) == "log10"
        assert guess_convention(20 * ln / math.log(10)) == "db"
        assert guess_convention(convert_mel(ln, "hifigan", "coqui")) == "coqui"
        assert guess_convention((ln - ln.mean(1, keepdim=True)) / ln.std(1, keepdim=True)) == "standardised"


def test_irreconcilable_settings_raise_before_any_convolution(voc, no_convolution):
    ours = _mel()
    with pytest.raises(ValueError, match="hop is 256 samples, the model's 16"):
        vocoder.plugins.get("speechbrain", model=voc).decode_batch(ours[None], hop_len=256)
    with pytest.raises(ValueError, match="hop is 256"):
        vocoder.plugins.get("coqui", model=voc, hop_length=256)
    with pytest.raises(ValueError, match="22050 Hz, the model at 8000 Hz"):
        vocoder.plugins.get("espnet", model=voc, sample_rate=22050)
    other = MelConfig(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=20, fmin=50.0, fmax=4000.0)
    with pytest.raises(ValueError, match="fmin: pipeline 50.0 vs model 0.0"):
        vocoder.plugins.get("nemo", model=voc, source_mel=other)
    htk = vocoder.plugins.MelConvention("torchaudio_htk", mel_scale="htk", mel_norm=None)
    with pytest.raises(ValueError, match="no conversion between filterbanks"):
        vocoder.plugins.get("nemo", model=voc, convention=htk)
    with pytest.raises(ValueError, match="20 bands"):
        vocoder.plugins.get("nemo", model=voc).convert_spectrogram_to_audio(torch.randn(1, 80, 10))
    with pytest.raises(ValueError, match="NaN"):
        bad = ours.clone()
        bad[0, 0] = float("nan")
        vocoder.plugins.get("speechbrain", model=voc).decode_spectrogram(bad)
    # the same settings are accepted
    vocoder.plugins.get("nemo", model=voc, source_mel=MEL, sample_rate=8000, hop_length=16)
