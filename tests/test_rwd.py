"""GAN-TTS random window discriminators (vocoder.discriminators.rwd) and the conditional CombinedDiscriminator."""
import pytest
import torch

from vocoder.discriminators import (CombinedDiscriminator, MultiPeriodDiscriminator, RandomWindowDiscriminators,
                                    build_discriminator, build_discriminators)

HOP = 256


def _small(**kw):
    kw = {"channel_mult": 0.125, "use_spectral_norm": False, **kw}
    return RandomWindowDiscriminators(**kw)


def _capture(rwd):
    """Forward pre-hooks recording what each sub-discriminator receives: ``(window [B, m, hop], mel or None)``."""
    seen = []
    for i, d in enumerate(rwd.discriminators):
        d.register_forward_pre_hook(lambda mod, args, i=i: seen.append((i, args[0].detach(), args[1])))
    return seen


def _unfold(x):
    """A sub-discriminator's input ``[B, m, hop]`` back to the window's samples ``[B, m * hop]``."""
    return x.transpose(1, 2).reshape(x.shape[0], -1)


def test_windows_have_the_sizes_asked():
    rwd = _small(window_frames=(1, 4, 8), seed=0)
    assert rwd.window_sizes == [256, 1024, 2048, 256, 1024, 2048]
    seen = _capture(rwd)
    wav = torch.randn(3, 1, 20 * HOP)
    mel = torch.randn(3, 80, 20)
    logits, fmaps = rwd(wav, mel)
    assert len(logits) == len(fmaps) == 6 and all(y.shape == (3, 1) for y in logits)
    for (i, x, c), m in zip(seen, (1, 4, 8, 1, 4, 8)):
        assert x.shape == (3, m, HOP)  # folded to hop time steps, m channels
        assert (c is None) == (i < 3) and (c is None or c.shape == (3, 80, m))
        # each window is a contiguous stretch of its item's audio
        for b in range(3):
            w = _unfold(x)[b]
            starts = [s for s in range(wav.shape[-1] - w.numel() + 1) if torch.equal(wav[b, 0, s:s + w.numel()], w)]
            assert len(starts) == 1
            if c is not None:
                assert starts[0] % HOP == 0  # conditional windows start on a frame boundary


def _tone_pair(batch, frames, seed=0):
    """Audio whose frame k (samples [k*hop, (k+1)*hop)) is a tone of exactly ``code[b, k] + 2`` cycles per hop, and a
    "mel" whose frame k holds ``code[b, k]`` in band 0 (the rest noise): each frame says which frame it is."""
    g = torch.Generator().manual_seed(seed)
    code = torch.stack([torch.randperm(frames, generator=g) for _ in range(batch)])  # [B, F]
    n = torch.arange(HOP, dtype=torch.float64)
    wav = torch.cos(2 * torch.pi * (code[..., None] + 2) * n / HOP)  # [B, F, hop]
    mel = torch.randn(batch, 80, frames, generator=g)
    mel[:, 0, :] = code.float()
    return wav.reshape(batch, 1, -1).float(), mel, code


def test_conditional_windows_line_up_with_their_frames():
    """Decode each hop of every conditional window's audio (its FFT peak) and compare with the mel frames that
    window was given: they must be the same frames, item by item."""
    batch, frames = 4, 40
    wav, mel, _ = _tone_pair(batch, frames)
    rwd = _small(seed=1)
    seen = _capture(rwd)
    for _ in range(3):  # several draws
        seen.clear()
        rwd(wav, mel)
        checked = 0
        for i, x, c in seen:
            if c is None:
                continue
            m = x.shape[1]
            audio = _unfold(x).view(batch, m, HOP).double()
            decoded = torch.fft.rfft(audio, dim=-1).abs().argmax(dim=-1) - 2  # [B, m]
            assert torch.equal(decoded, c[:, 0, :].round().long())
            checked += 1
        assert checked == 5


def test_misaligned_mel_would_be_caught():
    """The alignment check can fail: shifting the mel by one frame against the audio breaks it."""
    batch, frames = 2, 40
    wav, mel, _ = _tone_pair(batch, frames, seed=3)
    rwd = _small(window_frames=(4,), unconditional=False, seed=0)
    seen = _capture(rwd)
    rwd(wav, torch.roll(mel, 1, dims=-1))
    _, x, c = seen[0]
    decoded = torch.fft.rfft(_unfold(x).view(batch, 4, HOP).double(), dim=-1).abs().argmax(dim=-1) - 2
    assert not torch.equal(decoded, c[:, 0, :].round().long())


def test_seeded_windows_repeat_and_same_windows_pins_them():
    wav, mel = torch.randn(2, 1, 32 * HOP), torch.randn(2, 80, 32)
    a, b = _small(seed=5), _small(seed=5)
    b.load_state_dict(a.state_dict())
    ya, _ = a(wav, mel)
    yb, _ = b(wav, mel)
    assert all(torch.equal(p, q) for p, q in zip(ya, yb))
    starts = [a.draw_starts(2, wav.shape[-1], 32) for _ in range(2)]
    assert any(not torch.equal(p, q) for p, q in zip(*starts))  # fresh windows per call
    with a.same_windows():
        pinned = [a.draw_starts(2, wav.shape[-1], 32) for _ in range(2)]
    assert all(torch.equal(p, q) for p, q in zip(*pinned))


def test_gradients_reach_audio_and_every_sub_discriminator():
    rwd = _small(seed=0)
    wav = torch.randn(2, 1, 20 * HOP, requires_grad=True)
    mel = torch.randn(2, 80, 20, requires_grad=True)
    logits, fmaps = rwd(wav, mel)
    (sum(y.sum() for y in logits) + sum(f[-1].mean() for f in fmaps)).backward()
    assert wav.grad.abs().sum() > 0 and mel.grad.abs().sum() > 0
    for d in rwd.discriminators:
        assert d.linear.weight_v.grad.abs().sum() > 0


def test_combined_passes_mel_only_to_conditional_members():
    torch.manual_seed(0)
    mpd = MultiPeriodDiscriminator(periods=(2, 3), channel_mult=0.0625)
    combined = CombinedDiscriminator([mpd, _small(window_frames=(1, 2), seed=0)])
    assert combined.conditional and not CombinedDiscriminator([mpd]).conditional
    wav, mel = torch.randn(2, 1, 8 * HOP), torch.randn(2, 80, 8)
    logits, fmaps = combined(wav, mel=mel)
    assert len(logits) == 2 + 4 and len(fmaps) == 6
    assert len(CombinedDiscriminator([mpd])(wav)[0]) == 2  # the old call still works
    with pytest.raises(ValueError, match="is conditional"):
        combined(wav)
    with combined.same_windows():  # real and fake judged on the same windows
        _, f1 = combined(wav, mel=mel)
        _, f2 = combined(wav, mel=mel)
    assert all(torch.equal(a[-1], b[-1]) for a, b in zip(f1, f2))


def test_registered_and_bad_input():
    d = build_discriminator("rwd", window_frames=[1, 2], channel_mult=0.125)
    assert isinstance(d, RandomWindowDiscriminators)
    assert len(build_discriminators([{"name": "rwd", "conditional": False, "channel_mult": 0.125}]).discriminators) == 1
    wav = torch.randn(2, 1, 20 * HOP)
    with pytest.raises(ValueError, match="pass mel"):
        d(wav)
    with pytest.raises(ValueError, match="expected mel"):
        d(wav, torch.randn(2, 64, 20))
    with pytest.raises(ValueError, match="does not cover"):
        d(wav, torch.randn(2, 80, 10))
    with pytest.raises(ValueError, match="too short"):
        d(torch.randn(2, 1, HOP), torch.randn(2, 80, 1))
    with pytest.raises(ValueError, match="window_frames"):
        RandomWindowDiscriminators(window_frames=[])
    with pytest.raises(ValueError, match="divisible"):
        RandomWindowDiscriminators(window_frames=(3,), hop_length=256)


def test_a_gan_step_accepts_rwd_with_noise_and_a_twin_generator():
    """The integration GANVocoder needs, run by hand: D step on [real; fake] with [mel; mel], G step judging real and
    fake on the same windows, both through the discriminator noise; every parameter of G and D moves."""
    from vocoder import losses as vl
    from vocoder.audio.mel import MelConfig, mel_spectrogram
    from vocoder.generators.hifigan import HiFiGANConfig, HiFiGANGenerator
    from vocoder.training.discriminator_noise import DiscriminatorNoise, DiscriminatorNoiseConfig

    torch.manual_seed(0)
    mc = MelConfig()
    gen = HiFiGANGenerator(HiFiGANConfig(upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8),
                                         upsample_initial_channel=16, resblock_kernel_sizes=(3,),
                                         resblock_dilation_sizes=((1, 3),), upsample="twin"))
    disc = build_discriminators([{"name": "mpd", "periods": [2, 3], "channel_mult": 0.0625},
                                 {"name": "rwd", "window_frames": [1, 4], "channel_mult": 0.125, "seed": 0}])
    noise = DiscriminatorNoise(DiscriminatorNoiseConfig(enabled=True, shaped=True, adjust_every=1), mc, "lsgan")
    real = 0.3 * torch.sin(torch.linspace(0, 450, 2 * 8 * HOP)).view(2, 1, -1)
    mel = mel_spectrogram(real[:, 0], mc)
    opt_g = torch.optim.Adam(gen.parameters(), 1e-3)
    opt_d = torch.optim.Adam(disc.parameters(), 1e-3)
    g_before = [p.detach().clone() for p in gen.parameters()]
    d_before = [p.detach().clone() for p in disc.parameters()]

    fake = gen(mel)
    real_t, fake_t = noise(real, fake.detach(), mel)
    both, _ = disc(torch.cat([real_t, fake_t]), mel=torch.cat([mel, mel]))
    real_logits, fake_logits = [x[:2] for x in both], [x[2:] for x in both]
    loss_d = vl.discriminator_adversarial_loss(real_logits, fake_logits, kind="lsgan")[0]
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    assert noise.update(real_logits) is not None  # adjust_every=1: T moved

    real_t, fake_t = noise(real, fake, mel)
    with disc.same_windows():
        with torch.no_grad():
            _, real_fmaps = disc(real_t, mel=mel)
        fake_logits, fake_fmaps = disc(fake_t, mel=mel)
    loss_g = (vl.generator_adversarial_loss(fake_logits, kind="lsgan")[0]
              + 2 * vl.feature_matching_loss(real_fmaps, fake_fmaps))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    assert all(not torch.equal(a, p) for a, p in zip(g_before, gen.parameters()) if p.requires_grad)
    assert all(not torch.equal(a, p) for a, p in zip(d_before, disc.parameters()))
