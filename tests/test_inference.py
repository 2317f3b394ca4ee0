"""Vocoder: shapes, dtypes, input validation, batching with lengths, copy synthesis, loading rules."""
import math

import numpy as np
import pytest
import torch

import vocoder.inference as inference
from vocoder.audio.mel import MelConfig, mel_spectrogram
from vocoder.generators.registry import build_generator
from vocoder.inference import Vocoder

from helpers import TINY_MEL as MEL

pytestmark = pytest.mark.usefixtures("one_thread_per_module")
HOP = 16


def _generator():
    torch.manual_seed(0)
    return build_generator("hifigan", {"n_mels": 20, "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                                       "upsample_initial_channel": 16, "resblock": "1",
                                       "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]]}).eval()


@pytest.fixture(scope="module")
def voc():
    return Vocoder(_generator(), MEL)


def _mel(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) - 4


def test_shapes_and_dtype(voc):
    out = voc(_mel(20, 7))
    assert out.shape == (7 * HOP,) and out.dtype == torch.float32
    out = voc(_mel(3, 20, 5))
    assert out.shape == (3, 5 * HOP) and out.dtype == torch.float32
    assert not out.requires_grad and out.is_inference()  # ran under torch.inference_mode
    np_out = voc(_mel(20, 7).numpy())
    assert torch.equal(np_out, voc(_mel(20, 7)))
    assert voc(_mel(20, 7).double()).dtype == torch.float32


def test_weight_norm_folded_and_output_unchanged():
    gen = _generator()
    with torch.no_grad():
        ref = gen(_mel(1, 20, 6))[0, 0]
    v = Vocoder(gen, MEL)
    assert not any(k.endswith(("weight_g", "weight_v")) for k in v.state_dict())
    assert (v(_mel(20, 6)) - ref).abs().max() < 1e-6


def test_properties(voc):
    assert (voc.sample_rate, voc.hop_length, voc.n_mels, voc.mel_config) == (8000, HOP, 20, MEL)
    d = voc.describe()
    assert d["generator"] == "hifigan" and d["preset"] is None and d["parameters"] == voc.num_parameters() > 0


@pytest.mark.parametrize("bad, match", [
    (torch.randn(20), "expected a mel"),                                  # 1-D
    (torch.randn(2, 2, 20, 5), "expected a mel"),                         # 4-D
    (torch.randn(21, 5), "expected 20 mel bands"),                        # wrong n_mels
    (torch.randn(5, 20), "transposed"),                                    # [T, n_mels]
    (torch.full((20, 5), float("nan")), "NaN or inf"),
    (torch.tensor([[float("inf")] * 5] * 20), "NaN or inf"),
    (torch.zeros(20, 0), "at least one mel frame"),
    (torch.zeros(0, 20, 5), "non-empty batch"),
    (torch.zeros(20, 5, dtype=torch.int64), "float mel"),
    ([[0.0] * 5] * 20, "torch.Tensor or numpy"),
])
def test_bad_mels_raise_value_error(voc, bad, match):
    with pytest.raises(ValueError, match=match):
        voc(bad)


@pytest.mark.parametrize("lengths, match", [
    ([5, 4], "expected 3 lengths"),
    ([5, 0, 3], r"in \[1, 5\]"),
    ([5, 6, 3], r"in \[1, 5\]"),
    ([5.0, 4.0, 3.0], "sequence of ints"),
    (torch.tensor([5.0, 4.0, 3.0]), "1-D integers"),
])
def test_bad_lengths(voc, lengths, match):
    with pytest.raises(ValueError, match=match):
        voc(_mel(3, 20, 5), lengths=lengths)
    with pytest.raises(ValueError, match="single mel"):
        voc(_mel(20, 5), lengths=[5])


def test_batch_with_lengths_zeroes_padding_and_matches_single(voc, capsys):
    lengths = [9, 4, 9, 1]
    mels = [_mel(20, n, seed=i) for i, n in enumerate(lengths)]
    batch = torch.full((4, 20, 9), -11.5)  # padding value is irrelevant: the generator never sees it
    for i, m in enumerate(mels):
        batch[i, :, : m.shape[-1]] = m
    out = voc(batch, lengths=torch.tensor(lengths))
    assert out.shape == (4, 9 * HOP)
    worst = 0.0
    for i, (m, n) in enumerate(zip(mels, lengths)):
        single = voc(m)
        worst = max(worst, (out[i, : n * HOP] - single).abs().max().item())
        assert torch.all(out[i, n * HOP:] == 0)
    with capsys.disabled():
        print(f"\n[batch with lengths] max abs diff vs single decodes: {worst:.3e}")
    assert worst < 1e-5

    fast = voc(batch, lengths=lengths, exact=False)  # one padded pass: padding zeroed, full-length items equal
    assert torch.all(fast[1, 4 * HOP:] == 0) and (fast[0] - out[0]).abs().max() < 1e-5


def test_mel_and_copy_synthesis(voc):
    t = torch.arange(800) / 8000
    wav = 0.5 * torch.sin(2 * math.pi * 440 * t)
    mel = voc.mel(wav)
    assert mel.shape == (20, 800 // HOP)
    assert torch.allclose(mel, mel_spectrogram(wav, MEL))
    assert voc.mel(wav[None].repeat(2, 1)).shape == (2, 20, 50)
    out = voc.synthesize(wav, sample_rate=8000)
    assert out.shape == (800,) and torch.equal(out, voc(mel))
    # Another rate is resampled to the model's: 0.1 s at 16 kHz -> 0.1 s at 8 kHz.
    wav16 = 0.5 * torch.sin(2 * math.pi * 440 * torch.arange(1600) / 16000)
    assert voc.synthesize(wav16, sample_rate=16000).shape == (800,)


def test_synthesize_file(voc, tmp_path):
    import soundfile as sf

    wav = 0.3 * np.sin(2 * np.pi * 300 * np.arange(3200) / 16000).astype(np.float32)
    sf.write(tmp_path / "a.wav", wav, 16000)
    out = voc.synthesize(tmp_path / "a.wav")
    assert out.shape == (1600,) and out.dtype == torch.float32


def test_bad_audio_inputs(voc):
    with pytest.raises(ValueError, match="sample_rate"):
        voc.synthesize(torch.zeros(800))
    with pytest.raises(ValueError, match="expected audio at 8000 Hz, got 16000 Hz"):
        voc.synthesize(torch.zeros(800), sample_rate=16000, resample_input=False)
    with pytest.raises(ValueError, match="float audio"):
        voc.mel(torch.zeros(800, dtype=torch.int16))
    with pytest.raises(ValueError, match="too short"):
        voc.mel(torch.zeros(10))
    with pytest.raises(ValueError, match="NaN or inf"):
        voc.mel(torch.full((800,), float("nan")))
    with pytest.raises(ValueError, match=r"expected audio \[T\] or \[B, T\]"):
        voc.mel(torch.zeros(2, 2, 800))
    with pytest.raises(ValueError, match="not found"):
        voc.synthesize("/nonexistent/file.wav")


def test_half_precision_output_is_float32():
    v = Vocoder(_generator(), MEL)
    ref = v(_mel(20, 4))
    try:
        out = v.half()(_mel(20, 4))
    except RuntimeError as e:  # some CPU builds lack half convolutions
        pytest.skip(f"half precision not supported here: {e}")
    assert out.dtype == torch.float32 and (out - ref).abs().max() < 1e-2


def test_from_pretrained_rules(tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "DEFAULT_MODEL_PATH", tmp_path / "pretrained" / "default.pt")
    with pytest.raises(ValueError, match="default model"):
        Vocoder.from_pretrained()
    with pytest.raises(ValueError, match="preset name.*random_init=True"):
        Vocoder.from_pretrained("hifigan_v2")
    with pytest.raises(ValueError, match="neither a file, a folder nor a preset"):
        Vocoder.from_pretrained("no_such_model")
    v = Vocoder.from_pretrained("hifigan_v2", random_init=True)
    assert v.sample_rate == 22050 and v.n_mels == 80 and v.meta["random_init"] is True
    assert v.describe()["preset"] == "hifigan_v2"

    # The default model, once shipped, is just our checkpoint format at that path.
    Vocoder(_generator(), MEL).save(tmp_path / "pretrained" / "default.pt", meta={"name": "default"})
    d = Vocoder.from_pretrained()
    assert d.meta["name"] == "default" and d.n_mels == 20


def test_constructor_checks():
    with pytest.raises(ValueError, match="mels"):
        Vocoder(_generator(), MelConfig(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=24,
                                        fmax=4000.0))
    with pytest.raises(ValueError, match="hop_length"):
        Vocoder(_generator(), MelConfig(sample_rate=8000, n_fft=64, hop_length=32, win_length=64, n_mels=20,
                                        fmax=4000.0))
    with pytest.raises(ValueError, match="CUDA"):
        if torch.cuda.is_available():
            raise ValueError("CUDA present: nothing to check")
        Vocoder.from_pretrained("hifigan_v2", random_init=True, device="cuda")
