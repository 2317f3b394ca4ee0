"""Losses equal the reference implementations (BigVGAN's loss.py, ParallelWaveGAN's STFT / adversarial losses)."""
import pytest
import torch

from vocoder.audio.mel import MelConfig, mel_spectrogram
from vocoder.losses import (
    MelL1Loss, MultiResolutionSTFTLoss, MultiScaleMelLoss, discriminator_adversarial_loss, feature_matching_loss,
    generator_adversarial_loss,
)


def _pwg():
    import scipy.signal
    import scipy.signal.windows
    scipy.signal.kaiser = scipy.signal.windows.kaiser  # parallel_wavegan imports a name scipy removed
    import parallel_wavegan.losses as pwg_losses
    return pwg_losses


def _rel_close(a, b, rel=1e-5):
    a, b = (float(v.detach()) if torch.is_tensor(v) else float(v) for v in (a, b))
    assert abs(a - b) <= rel * max(abs(b), 1e-12), f"{a} vs {b}"


@pytest.fixture(scope="module")
def logits():
    g = torch.Generator().manual_seed(1)
    real = [torch.randn(2, n, generator=g) for n in (17, 33, 101)]
    fake = [torch.randn(2, n, generator=g) for n in (17, 33, 101)]
    return real, fake


@pytest.fixture(scope="module")
def audio():
    g = torch.Generator().manual_seed(2)
    t = torch.arange(8192) / 22050
    real = (0.5 * torch.sin(2 * torch.pi * 220 * t) + 0.05 * torch.randn(2, 8192, generator=g)).unsqueeze(1)
    fake = real + 0.1 * torch.randn(2, 1, 8192, generator=g)
    return fake, real


def test_lsgan_equals_bigvgan(logits):
    from bigvgan.loss import discriminator_loss, generator_loss
    real, fake = logits
    total, items = generator_adversarial_loss(fake, "lsgan")
    ref_total, ref_items = generator_loss(fake)
    _rel_close(total, ref_total)
    for a, b in zip(items, ref_items):
        _rel_close(a, b)
    total, r, f = discriminator_adversarial_loss(real, fake, "lsgan")
    ref_total, ref_r, ref_f = discriminator_loss(real, fake)
    _rel_close(total, ref_total)
    for a, b in zip(r + f, ref_r + ref_f):
        _rel_close(a, b)


def test_hinge_equals_parallel_wavegan(logits):
    pwg = _pwg()
    real, fake = logits
    g_ref = pwg.GeneratorAdversarialLoss(average_by_discriminators=False, loss_type="hinge")(fake)
    _rel_close(generator_adversarial_loss(fake, "hinge")[0], g_ref)
    r_ref, f_ref = pwg.DiscriminatorAdversarialLoss(average_by_discriminators=False, loss_type="hinge")(fake, real)
    total, r, f = discriminator_adversarial_loss(real, fake, "hinge")
    _rel_close(sum(r), r_ref)
    _rel_close(sum(f), f_ref)
    _rel_close(total, r_ref + f_ref)
    # and the least-squares kind against ParallelWaveGAN's "mse" too
    _rel_close(generator_adversarial_loss(fake)[0],
               pwg.GeneratorAdversarialLoss(average_by_discriminators=False, loss_type="mse")(fake))


def test_feature_matching_equals_bigvgan():
    from bigvgan.loss import feature_loss
    g = torch.Generator().manual_seed(3)
    shapes = [[(2, 4, 30, 2), (2, 8, 10, 2), (2, 1, 10, 2)], [(2, 4, 50), (2, 1, 25)]]
    real = [[torch.randn(s, generator=g) for s in d] for d in shapes]
    fake = [[torch.randn(s, generator=g, requires_grad=True) for s in d] for d in shapes]
    ours = feature_matching_loss(real, fake)
    _rel_close(2 * ours, feature_loss(real, fake))  # BigVGAN's has the weight 2 built in
    ours.backward()
    assert all(t.grad is not None for d in fake for t in d)
    with pytest.raises(ValueError):
        feature_matching_loss(real, fake[:1])


def test_multiscale_mel_equals_bigvgan(audio):
    from bigvgan.loss import MultiScaleMelSpectrogramLoss
    fake, real = audio
    for sr in (22050, 24000):
        ref = MultiScaleMelSpectrogramLoss(sampling_rate=sr)(real, fake)  # BigVGAN's train.py order
        ours = MultiScaleMelLoss(sr)(fake, real)
        _rel_close(ours, ref)
    ref = MultiScaleMelSpectrogramLoss(sampling_rate=24000, pow=2.0, mel_fmin=[50] * 7,
                                       mel_fmax=[8000] * 7)(fake, real)
    _rel_close(MultiScaleMelLoss(24000, pow=2.0, mel_fmin=[50] * 7, mel_fmax=[8000] * 7)(fake, real), ref)


def test_stft_loss_equals_parallel_wavegan(audio):
    pwg = _pwg()
    fake, real = audio
    ref_sc, ref_mag = pwg.MultiResolutionSTFTLoss()(fake, real)
    sc, mag = MultiResolutionSTFTLoss()(fake, real)
    _rel_close(sc, ref_sc)
    _rel_close(mag, ref_mag)
    sc2, mag2 = MultiResolutionSTFTLoss()(fake.squeeze(1), real.squeeze(1))
    _rel_close(sc2, sc)


def test_mel_l1_uses_the_model_front_end(audio):
    from bigvgan.meldataset import mel_spectrogram as bigvgan_mel
    fake, real = audio
    cfg = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0, fmax=None)
    loss = MelL1Loss(cfg)
    expect = torch.nn.functional.l1_loss(mel_spectrogram(fake, cfg), mel_spectrogram(real, cfg))
    _rel_close(loss(fake, real), expect)
    ref = torch.nn.functional.l1_loss(bigvgan_mel(fake.squeeze(1), 1024, 80, 22050, 256, 1024, 0, None),
                                      bigvgan_mel(real.squeeze(1), 1024, 80, 22050, 256, 1024, 0, None))
    _rel_close(loss(fake, real), ref)


def test_reconstruction_losses_have_gradients_and_zero_at_identity(audio):
    fake, real = audio
    cfg = MelConfig()
    for fn in (MelL1Loss(cfg), MultiScaleMelLoss(22050), lambda a, b: sum(MultiResolutionSTFTLoss()(a, b))):
        x = fake.clone().requires_grad_(True)
        fn(x, real).backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert float(fn(real, real)) < 1e-6


def test_bad_inputs(logits, audio):
    real, fake = logits
    with pytest.raises(ValueError, match="kind"):
        generator_adversarial_loss(fake, "wgan")
    with pytest.raises(ValueError, match="list"):
        generator_adversarial_loss(fake[0])
    with pytest.raises(ValueError, match="equal lengths"):
        discriminator_adversarial_loss(real, fake[:2])
    f, r = audio
    with pytest.raises(ValueError, match="same shape"):
        MultiResolutionSTFTLoss()(f, r[:1])
    with pytest.raises(ValueError, match="MelConfig"):
        MelL1Loss({"sample_rate": 22050})
