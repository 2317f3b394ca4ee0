"""The mel front end equals BigVGAN's / HiFi-GAN's (and, configured so, Vocos's); audio loading is robust and says
what is wrong."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocoder.audio import MelConfig, check_mel, load_audio, mel_spectrogram, save_audio

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

bigvgan_mel = pytest.importorskip("bigvgan.meldataset")

CONFIGS = [
    MelConfig(22050, 1024, 256, 1024, 80, 0, 8000),
    MelConfig(24000, 1024, 256, 1024, 100, 0, None),
    MelConfig(44100, 2048, 512, 2048, 128, 0, None),
    MelConfig(22050, 1024, 256, 1024, 80, 0, None),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.sample_rate}-{c.n_mels}")
def test_mel_equals_bigvgan(cfg, speech):
    wav = torch.stack([speech(1.0, cfg.sample_rate, seed=s) for s in range(2)])
    ours = mel_spectrogram(wav, cfg)
    ref = bigvgan_mel.mel_spectrogram(wav, cfg.n_fft, cfg.n_mels, cfg.sample_rate, cfg.hop_length,
                                      cfg.win_length, cfg.fmin, cfg.fmax)
    assert ours.shape == ref.shape == (2, cfg.n_mels, wav.shape[-1] // cfg.hop_length)
    assert (ours - ref).abs().max().item() < 1e-5


def test_mel_shapes_and_errors(speech):
    cfg = MelConfig()
    wav = speech(0.5)
    assert mel_spectrogram(wav, cfg).shape == (80, wav.numel() // 256)
    assert mel_spectrogram(wav[None, None], cfg).shape == (1, 80, wav.numel() // 256)
    with pytest.raises(ValueError, match="float"):
        mel_spectrogram((wav * 32767).short(), cfg)
    with pytest.raises(ValueError, match="too short"):
        mel_spectrogram(torch.zeros(100), cfg)
    with pytest.raises(ValueError):
        MelConfig(fmax=20000)


def test_mel_config_from_official_json():
    d = {"num_mels": 100, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 24000,
         "fmin": 0, "fmax": None, "resblock": "1"}
    assert MelConfig.from_dict(d) == MelConfig(24000, 1024, 256, 1024, 100, 0, None)
    with pytest.raises(ValueError, match="missing"):
        MelConfig.from_dict({"n_fft": 1024})


def vocos_mel(padding: str, sample_rate=24000, n_fft=1024, hop=256, n_mels=100) -> MelConfig:
    return MelConfig(sample_rate, n_fft, hop, n_fft, n_mels, 0.0, None, center=padding == "center",
                     mel_scale="htk", mel_norm=None, magnitude_eps=0.0, log_floor=1e-7)


@pytest.mark.parametrize("padding", ["center", "same"])
@pytest.mark.parametrize("dims", [(24000, 1024, 256, 100), (22050, 1024, 256, 80), (16000, 512, 128, 64)],
                         ids=lambda d: f"{d[0]}-{d[3]}")
def test_mel_equals_vocos_feature_extractor(padding, dims):
    """Vocos's MelSpectrogramFeatures (torchaudio MelSpectrogram(power=1) + log(clip(x, 1e-7))) as a MelConfig."""
    features = pytest.importorskip("vocos.feature_extractors")
    from vocoder.audio import MelSpectrogram

    sr, n_fft, hop, n_mels = dims
    cfg = vocos_mel(padding, sr, n_fft, hop, n_mels)
    theirs = features.MelSpectrogramFeatures(sample_rate=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                             padding=padding)
    clip = load_audio(SAMPLES / "speech_nl_klettres_ad-22.wav", sample_rate=sr)
    noise = 0.3 * torch.randn(2, sr + 37)
    for wav in (clip[None], noise):
        ref = theirs(wav)
        ours = mel_spectrogram(wav, cfg)
        frames = wav.shape[-1] // hop + (1 if padding == "center" else 0)
        assert ours.shape == ref.shape == (wav.shape[0], n_mels, frames) and cfg.num_frames(wav.shape[-1]) == frames
        assert (ours - ref).abs().max().item() < 1e-5
        assert (MelSpectrogram(cfg)(wav) - ref).abs().max().item() < 1e-5
    assert (mel_spectrogram(clip, cfg) - theirs(clip[None])[0]).abs().max().item() < 1e-5


def test_mel_module_equals_function(speech):
    from vocoder.audio import MelSpectrogram

    wav = torch.stack([speech(0.5, seed=s) for s in range(2)])
    for cfg in (MelConfig(), vocos_mel("center", 22050, 1024, 256, 80), vocos_mel("same", 22050, 1024, 256, 80)):
        assert torch.equal(MelSpectrogram(cfg)(wav[:, None]), mel_spectrogram(wav, cfg))


def test_mel_config_conventions_and_old_dicts():
    old = {"sample_rate": 22050, "n_fft": 1024, "hop_length": 256, "win_length": 1024, "n_mels": 80, "fmin": 0.0,
           "fmax": 8000.0}  # MelConfig.to_dict() as checkpoints wrote it before the convention fields
    cfg = MelConfig.from_dict(old)
    assert cfg == MelConfig() and (cfg.center, cfg.mel_scale, cfg.mel_norm, cfg.log_floor) == (False, "slaney",
                                                                                                  "slaney", 1e-5)
    v = vocos_mel("center")
    assert MelConfig.from_dict(v.to_dict()) == v
    assert v.num_frames(24000) == 24000 // 256 + 1 and MelConfig().num_frames(22050) == 22050 // 256
    with pytest.raises(ValueError, match="too short"):
        mel_spectrogram(torch.zeros(512), v)  # centring reflects n_fft // 2 samples
    assert mel_spectrogram(torch.zeros(513), v).shape == (100, 3)
    for bad in (dict(mel_scale="mel"), dict(mel_norm="area"), dict(log_floor=0.0), dict(magnitude_eps=-1.0)):
        with pytest.raises(ValueError):
            MelConfig(**bad)
    # Centred framing needs no even n_fft - hop (no half-padding on each side).
    assert MelConfig(n_fft=1024, hop_length=255, center=True).num_frames(2550) == 11


def test_load_audio_formats(tmp_path, speech):
    wav = speech(0.5, 44100).numpy()
    stereo = np.stack([wav, 0.5 * wav], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 44100, subtype="PCM_16")
    sf.write(tmp_path / "f.flac", wav, 44100)
    sf.write(tmp_path / "x.wav", wav, 44100, subtype="FLOAT")
    mono = load_audio(tmp_path / "s.wav")
    assert mono.dtype == torch.float32 and mono.dim() == 1
    assert np.allclose(mono.numpy(), 0.75 * wav, atol=1e-4)
    res = load_audio(tmp_path / "f.flac", sample_rate=22050)
    assert abs(res.numel() - wav.size // 2) <= 1
    assert np.allclose(load_audio(tmp_path / "x.wav").numpy(), wav)


def test_load_audio_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(ValueError, match="cannot read"):
        load_audio(tmp_path / "corrupt.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 22050)
    with pytest.raises(ValueError, match="empty"):
        load_audio(tmp_path / "empty.wav")


def test_save_audio_roundtrip(tmp_path, speech):
    wav = speech(0.25)
    save_audio(tmp_path / "sub" / "o.wav", wav, 22050)
    back = load_audio(tmp_path / "sub" / "o.wav")
    assert (back - wav).abs().max() < 1e-4


def test_check_mel_is_the_one_mel_input_contract():
    mel = torch.randn(80, 7)
    assert check_mel(mel, 80) is mel
    assert check_mel(mel[None], 80, layout="batch").shape == (1, 80, 7)
    assert check_mel(mel[None], 80, layout="single").shape == (80, 7)
    assert check_mel(mel.numpy(), 80).shape == (80, 7)  # numpy in, tensor out
    bad = [(torch.randn(7, 80), "looks transposed"), (torch.randn(80, 0), "at least one mel frame"),
           (torch.zeros(80, 7, dtype=torch.int64), "float mel"), (torch.randn(80), r"\[n_mels=80, T\]"),
           (torch.full((80, 3), float("nan")), "NaN"), ([1.0, 2.0], "torch.Tensor or numpy"),
           (torch.randn(2, 80, 3), r"\[1, 80, T\]"), (torch.randn(0, 80, 3), "non-empty batch")]
    for i, (x, msg) in enumerate(bad):
        layout = "single" if i == 6 else "any"
        with pytest.raises(ValueError, match=msg):
            check_mel(x, 80, layout=layout)
    with pytest.raises(ValueError, match=r"\[B, 80, T\]"):
        check_mel(mel, 80, layout="batch")
    assert check_mel(torch.full((1, 80, 3), float("inf")), 80, finite=False).shape == (1, 80, 3)
