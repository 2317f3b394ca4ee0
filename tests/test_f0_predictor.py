"""vocoder.nn.f0_predictor: shapes and range, the streamed F0 equals the offline one, a tiny predictor trained on
synthetic harmonic tones finds their F0 and voicing; vocoder.nn.f0_targets: pYIN frames centred on the mel's."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vocoder.audio.io import load_audio
from vocoder.audio.mel import MelConfig, mel_spectrogram
from vocoder.nn.f0_predictor import F0Predictor, f0_predictor_checkpoint, load_f0_predictor, stream_f0_predictor
from vocoder.nn.f0_targets import frame_centres, pitch_targets
from vocoder.nn.harmonic_source import HarmonicSource, StreamHarmonicSource
from vocoder.nn.streaming import StateAllocator, StreamSequential

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

CFG = MelConfig()
SR, HOP = CFG.sample_rate, CFG.hop_length


def _randomize(module, seed=0, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


def test_shapes_range_and_lookahead():
    m = F0Predictor()
    assert m.lookahead == 12 and m.receptive_field == 25
    assert 0.5e6 < sum(p.numel() for p in m.parameters()) < 2e6
    mel = torch.randn(3, 80, 40) * 2 - 5
    log_f0, logit = m(mel)
    assert log_f0.shape == (3, 40) and logit.shape == (3, 40)
    log_f0 = log_f0.detach()
    assert float(log_f0.min()) >= math.log(50.0) and float(log_f0.max()) <= math.log(1100.0)
    f0, voiced = _randomize(F0Predictor(channels=16, layers=2), scale=0.3).f0(mel)
    assert f0.dtype == torch.float32 and voiced.dtype == torch.bool and f0.shape == voiced.shape == (3, 40)
    assert voiced.any() and (~voiced).any()
    assert torch.all(f0[~voiced] == 0) and torch.all((f0[voiced] >= 50 - 1e-3) & (f0[voiced] <= 1100 + 1e-2))
    assert F0Predictor(kernel_size=3, layers=4).lookahead == 4
    for bad in (torch.randn(80, 40), torch.randn(1, 40, 80), torch.randn(1, 80, 0), torch.ones(1, 80, 5).long()):
        with pytest.raises(ValueError, match="log-mel|mel frame"):
            m(bad)
    with pytest.raises(ValueError, match="odd"):
        F0Predictor(kernel_size=4)
    with pytest.raises(ValueError, match="f0_min"):
        F0Predictor(f0_min=500, f0_max=100)


def _run_stream(net, mel, sizes):
    alloc = StateAllocator()
    net.allocate(alloc)
    states = [torch.zeros(0) for _ in range(alloc.count)]
    net.fill_states(states, mel.shape[0], mel)
    outs, pos = [], 0
    for size in sizes:
        outs.append(net(mel[:, :, pos:pos + size], states, False))
        pos += size
    outs.append(net(mel[:, :, :0], states, True))
    return torch.cat(outs, dim=2), [o.shape[2] for o in outs]


def test_streamed_f0_equals_offline():
    m = _randomize(F0Predictor(channels=48, layers=4), scale=0.15).eval()
    with torch.no_grad():
        m.norm.mean.uniform_(-3, -1)
        m.norm.scale.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(1)
    t = 61
    mel = torch.randn(2, 80, t, generator=g) * 2 - 5
    with torch.no_grad():
        log_f0, logit = m(mel)
        net = stream_f0_predictor(m)
        assert net.in_range(0, 0) == (-m.lookahead, m.lookahead)
        for sizes in ([1] * t, [t], [5, 0, 17, 1, 38], [m.lookahead] * 7 + [t - 7 * m.lookahead]):
            y, emitted = _run_stream(net, mel, sizes)
            assert y.shape == (2, 2, t)
            # Nothing leaves before lookahead frames are in; the flush returns the last lookahead frames.
            assert sum(emitted[:-1]) == max(0, t - m.lookahead) and emitted[-1] == min(t, m.lookahead)
            torch.testing.assert_close(y[:, 0], log_f0, rtol=0, atol=1e-5)
            torch.testing.assert_close(y[:, 1], logit, rtol=0, atol=1e-5)
        # The F0 / voicing as the source takes them: equal decisions, F0 to float rounding.
        f0, voiced = m.f0(mel)
        assert torch.equal(y[:, 1] > 0, voiced)
        torch.testing.assert_close(torch.where(y[:, 1] > 0, y[:, 0].exp(), torch.zeros(())), f0, rtol=1e-5, atol=0)


def test_streamed_predictor_feeds_the_streamed_source():
    # The family's chain: mel -> F0 / voicing -> excitation, streamed in 1- to 9-frame chunks vs offline.
    m = _randomize(F0Predictor(channels=32, layers=3), scale=0.2).eval()
    src = HarmonicSource(SR, HOP, seed=4)
    g = torch.Generator().manual_seed(3)
    t = 50
    mel = torch.randn(1, 80, t, generator=g) * 2 - 5
    with torch.no_grad():
        f0, voiced = m.f0(mel)
        assert voiced.any() and (~voiced).any()
        whole, _ = src(f0, voiced)
        chain = StreamSequential([stream_f0_predictor(m), StreamHarmonicSource(src)])
        sizes = [1, 9, 3, 1, 7, 9, 2, 8, 1, 9]
        y, emitted = _run_stream(chain, mel, sizes)
    assert emitted[-1] == m.lookahead * HOP
    # The predictor's stream differs from its offline run by float rounding (1e-7), which moves F0 by as much;
    # the phase carries that on, far below the tolerance here.
    torch.testing.assert_close(y, whole, rtol=0, atol=1e-4)


def _tone(f0, seconds, g, sr=SR):
    n = int(seconds * sr)
    phase = 2 * math.pi * f0 * np.arange(n) / sr + g.uniform(0, 2 * math.pi)
    ks = [k for k in range(1, 30) if k * f0 < 7500]
    wav = sum(np.sin(k * phase + g.uniform(0, 2 * math.pi)) / k for k in ks)
    return (g.uniform(0.05, 0.4) * wav / np.abs(wav).max()).astype(np.float32)


def _unvoiced(seconds, g, sr=SR):
    n = int(seconds * sr)
    if g.uniform() < 0.3:
        return np.zeros(n, np.float32)  # digital silence
    return (g.uniform(0.003, 0.2) * g.standard_normal(n)).astype(np.float32)


def test_trained_on_tones_finds_their_f0_and_voicing():
    g = np.random.default_rng(0)
    clips = []
    for i in range(96):
        if i % 3:
            f0 = float(np.exp(g.uniform(math.log(90), math.log(420))))
            clips.append((mel_spectrogram(torch.from_numpy(_tone(f0, 0.3, g)), CFG), f0, True))
        else:
            clips.append((mel_spectrogram(torch.from_numpy(_unvoiced(0.3, g)), CFG), 0.0, False))
    mels = torch.stack([c[0] for c in clips])  # [96, 80, 25]
    log_f0_t = torch.tensor([math.log(c[1]) if c[2] else 0.0 for c in clips])[:, None].expand(-1, mels.shape[2])
    voiced_t = torch.tensor([c[2] for c in clips])[:, None].expand(-1, mels.shape[2])
    torch.manual_seed(0)
    m = F0Predictor(channels=48, layers=3, f0_min=50, f0_max=1100)
    with torch.no_grad():
        m.norm.mean.copy_((mels / math.log(10)).mean((0, 2)))
        m.norm.scale.copy_((mels / math.log(10)).std((0, 2)))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 400)
    for step in range(400):
        idx = torch.randint(0, len(clips), (16,))
        log_f0, logit = m(mels[idx])
        v = voiced_t[idx]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, v.float()) \
            + (log_f0 - log_f0_t[idx]).abs()[v].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    m.eval()
    # Held out: tones at F0s it never saw, then silence and noise.
    for f0_true in (113.0, 187.0, 266.0, 351.0):
        f0, voiced = m.f0(mel_spectrogram(torch.from_numpy(_tone(f0_true, 0.5, g)), CFG)[None])
        inner = slice(4, -4)
        assert bool(voiced[0, inner].all()), f0_true
        assert abs(float(f0[0, inner].median()) / f0_true - 1) < 0.04, (f0_true, float(f0[0, inner].median()))
    for _ in range(4):
        _, voiced = m.f0(mel_spectrogram(torch.from_numpy(_unvoiced(0.5, g)), CFG)[None])
        assert float(voiced.float().mean()) < 0.05


def test_checkpoint_round_trip(tmp_path):
    m = _randomize(F0Predictor(channels=16, layers=2)).eval()
    torch.save(f0_predictor_checkpoint(m, CFG.to_dict(), {"note": "test"}), tmp_path / "f0.pt")
    back, mel_cfg = load_f0_predictor(tmp_path / "f0.pt")
    assert MelConfig.from_dict(mel_cfg) == CFG
    mel = torch.randn(1, 80, 20) - 4
    assert torch.equal(torch.stack(back(mel)), torch.stack(m(mel)))
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not an F0 predictor checkpoint"):
        load_f0_predictor(tmp_path / "x.pt")


def test_pitch_targets_are_centred_on_the_mel_frames():
    # An exponential glide, one octave per second: a target taken half a hop early or late is 7 cents off.
    n = int(2.0 * SR)
    t = np.arange(n) / SR
    f = 120.0 * 2.0 ** t
    phase = 2 * math.pi * np.cumsum(f) / SR
    wav = (0.3 * sum(np.sin(k * phase) / k for k in range(1, 6))).astype(np.float32)
    f0, voiced, prob = pitch_targets(wav, CFG)
    frames = mel_spectrogram(torch.from_numpy(wav), CFG).shape[1]
    assert f0.shape == voiced.shape == prob.shape == (frames,)
    inner = np.arange(8, frames - 8)
    assert voiced[inner].all()

    def bias(shift):
        centres = frame_centres(CFG, frames)[inner] + shift
        return float(np.mean(1200 * np.log2(f0[inner] / (120.0 * 2.0 ** (centres / SR)))))

    # pYIN's bins are 20 cents wide; over 150 frames their rounding averages out.
    assert abs(bias(0)) < 2.0
    assert abs(bias(0)) < abs(bias(HOP // 2)) and abs(bias(0)) < abs(bias(-HOP // 2))
    # Silence is unvoiced; bad input is refused.
    f0, voiced, _ = pitch_targets(np.zeros(SR // 2, np.float32), CFG)
    assert not voiced.any() and np.all(f0 == 0)
    with pytest.raises(ValueError, match="mono float"):
        pitch_targets(np.zeros((2, 100), np.float32), CFG)
    with pytest.raises(ValueError, match="raise fmin"):
        pitch_targets(wav, CFG, fmin=20.0)


def test_shipped_predictor_on_held_out_samples():
    """recipes/warm_start/f0_predictor_22khz.pt (scripts/train_f0_predictor.py) against pYIN on samples/ (voices
    it never trained on). Measured: gross pitch error 1.3 % (1 of 75 frames both call voiced), V/UV error 9.3 % of
    946 frames; an untrained network scores 100 % and 91 % (a check of the file, not a precise score: 75 frames; the
    corpus test split's scores are in recipes/warm_start/README.md)."""
    root = Path(__file__).resolve().parents[1]
    model, mel = load_f0_predictor(root / "recipes/warm_start/f0_predictor_22khz.pt")
    assert MelConfig.from_dict(mel) == CFG
    # What a hiftnet generator builds by default (its f0_channels is 192).
    assert model.config() == F0Predictor(channels=192).config()
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 2e6
    gross = both = vuv_err = frames = 0
    for clip in sorted((root / "samples").glob("*.wav")):
        wav = load_audio(clip, SR)
        ref_f0, ref_v, _ = pitch_targets(wav.numpy(), CFG)
        f0, voiced = model.f0(mel_spectrogram(wav, CFG)[None])
        f0, voiced = f0[0].numpy(), voiced[0].numpy()
        vuv_err += int((voiced != ref_v).sum())
        frames += len(ref_v)
        b = voiced & ref_v
        both += int(b.sum())
        gross += int((np.abs(f0[b] - ref_f0[b]) > 0.2 * ref_f0[b]).sum())
    assert frames > 900 and both > 60
    assert gross / both < 0.1 and vuv_err / frames < 0.15, (gross / both, vuv_err / frames)
