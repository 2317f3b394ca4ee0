"""Discriminators: shapes, gradients, and equality with the official code given the same weights."""
import contextlib
import functools
import io

import pytest
import torch

from vocoder.discriminators import (
    CombinedDiscriminator, MultiPeriodDiscriminator, MultiResolutionDiscriminator, MultiScaleDiscriminator,
    MultiScaleSTFTDiscriminator, MultiScaleSubbandCQTDiscriminator, build_discriminator, build_discriminators,
    discriminator_names,
)

T = 8192


@pytest.fixture(scope="module")
def wav():
    g = torch.Generator().manual_seed(0)
    return 0.5 * torch.randn(2, 1, T, generator=g)


def _quiet(fn, *args, **kwargs):
    """The reference classes print on construction."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _assert_close(a, b):
    """Equal to 1e-5 of the tensor's scale (float32 convs and FFTs differ in the last bits)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs().max().item()
    assert err <= 1e-5 * max(b.abs().max().item(), 1e-6), f"max abs error {err} vs scale {b.abs().max().item()}"


@functools.lru_cache(maxsize=None)
def _small(name):
    """Each discriminator with few channels (same layer structure) for speed; built once per session."""
    return {
        "mpd": lambda: MultiPeriodDiscriminator(channel_mult=0.125),
        "msd": lambda: MultiScaleDiscriminator(channel_mult=0.125),
        "mrd": lambda: MultiResolutionDiscriminator(channel_mult=0.25),
        "msstftd": lambda: MultiScaleSTFTDiscriminator(filters=8),
        "cqtd": lambda: MultiScaleSubbandCQTDiscriminator(sample_rate=22050, filters=8),
        "pwgd": lambda: build_discriminator("pwgd", conv_channels=16),
        "pwgd_residual": lambda: build_discriminator("pwgd_residual", residual_channels=8, gate_channels=16,
                                                     skip_channels=8),
    }[name]()


# name -> (number of sub-discriminators, feature maps per sub-discriminator)
COUNTS = {"mpd": (5, 6), "msd": (3, 8), "mrd": (3, 6), "msstftd": (3, 5), "cqtd": (3, 5), "pwgd": (1, 9),
          "pwgd_residual": (1, 31)}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_shapes_and_counts(name, wav):
    d = _small(name)
    with torch.no_grad():
        logits, fmaps = d(wav)
    n_sub, n_maps = COUNTS[name]
    assert len(logits) == len(fmaps) == n_sub
    for y, f in zip(logits, fmaps):
        assert y.dim() == 2 and y.shape[0] == 2 and y.shape[1] > 0
        assert len(f) == n_maps
        assert all(m.shape[0] == 2 and torch.isfinite(m).all() for m in f)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_gradients_flow(name, wav):
    d = _small(name)
    d.zero_grad(set_to_none=True)
    x = wav[:1].clone().requires_grad_(True)
    logits, fmaps = d(x)
    loss = sum(y.square().mean() for y in logits) + sum(m.abs().mean() for f in fmaps for m in f)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    trainable = [p for p in d.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)
    assert sum(p.grad.abs().sum() for p in trainable) > 0


# Discriminators that also take the mel (tests/test_rwd.py covers them): sub-discriminator count.
CONDITIONAL_COUNTS = {"rwd": 10}


def test_every_default_builds_and_runs():
    x = 0.1 * torch.randn(1, 1, 4096)
    assert discriminator_names() == sorted(set(COUNTS) | set(CONDITIONAL_COUNTS))
    for name in discriminator_names():
        d = build_discriminator(name)
        with torch.no_grad():
            if name in CONDITIONAL_COUNTS:  # its largest window is 16 hops of 256 samples
                logits, fmaps = d(0.1 * torch.randn(1, 1, 8192), torch.randn(1, 80, 32))
            else:
                logits, fmaps = d(x)
        expected = CONDITIONAL_COUNTS[name] if name in CONDITIONAL_COUNTS else COUNTS[name][0]
        assert len(logits) == expected, name
        assert all(torch.isfinite(y).all() for y in logits), name


def test_default_channel_counts_are_the_published_ones():
    from bigvgan.discriminators import DiscriminatorR
    from bigvgan.env import AttrDict
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert MultiPeriodDiscriminator().discriminators[0].convs[3].weight_v.shape == (1024, 512, 5, 1)
    ref = _quiet(DiscriminatorR, AttrDict(use_spectral_norm=False, discriminator_channel_mult=1), (1024, 120, 600))
    assert n(MultiResolutionDiscriminator().discriminators[0]) == n(ref)
    assert MultiScaleDiscriminator().discriminators[0].convs[5].weight_orig.shape == (1024, 64, 41)


def test_combined_concatenates(wav):
    mpd, mrd = _small("mpd"), _small("mrd")
    comb = CombinedDiscriminator([mpd, mrd])
    logits, fmaps = comb(wav)
    l1, f1 = mpd(wav)
    l2, f2 = mrd(wav)
    assert len(logits) == 8 and len(fmaps) == 8
    for a, b in zip(logits, l1 + l2):
        _assert_close(a, b)
    built = build_discriminators([{"name": "mpd", "periods": [2, 3], "channel_mult": 0.125}, "msstftd"])
    assert len(built(wav)[0]) == 5


def test_bad_input_and_names():
    d = _small("mpd")
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        d(torch.randn(2, T))
    with pytest.raises(ValueError, match="unknown discriminator"):
        build_discriminator("nope")
    with pytest.raises(ValueError, match="bad arguments"):
        build_discriminator("mpd", period=3)
    with pytest.raises(ValueError):
        MultiResolutionDiscriminator(channel_mult=0.25)(torch.randn(1, 1, 100))


# --- equality with the official implementations, same state dict -------------------------------------------


def _compare(ours, theirs_logits, theirs_fmaps, wav):
    logits, fmaps = ours(wav)
    assert len(logits) == len(theirs_logits)
    for a, b in zip(logits, theirs_logits):
        _assert_close(a, torch.flatten(b, 1, -1))
    for fa, fb in zip(fmaps, theirs_fmaps):
        assert len(fa) == len(fb)
        for a, b in zip(fa, fb):
            _assert_close(a, b)


def test_mpd_equals_bigvgan(wav):
    from bigvgan.discriminators import MultiPeriodDiscriminator as Ref
    from bigvgan.env import AttrDict
    ours = MultiPeriodDiscriminator(channel_mult=0.125)
    ref = _quiet(Ref, AttrDict(mpd_reshapes=[2, 3, 5, 7, 11], discriminator_channel_mult=0.125,
                               use_spectral_norm=False))
    ref.load_state_dict(ours.state_dict())  # strict: key names line up
    for inp in (wav[:, :, :4096], wav[:, :, :4093]):  # also a length no period divides
        y_r, _, f_r, _ = ref(inp, inp)
        _compare(ours, y_r, f_r, inp)


def test_mrd_equals_bigvgan(wav):
    from bigvgan.discriminators import MultiResolutionDiscriminator as Ref
    from bigvgan.env import AttrDict
    ours = MultiResolutionDiscriminator(channel_mult=0.25)
    ref = _quiet(Ref, AttrDict(resolutions=[[1024, 120, 600], [2048, 240, 1200], [512, 50, 240]],
                               discriminator_channel_mult=0.25, use_spectral_norm=False))
    ref.load_state_dict(ours.state_dict())
    y_r, _, f_r, _ = ref(wav, wav)
    _compare(ours, y_r, f_r, wav)


def test_cqtd_equals_bigvgan(wav):
    from bigvgan.discriminators import MultiScaleSubbandCQTDiscriminator as Ref
    from bigvgan.env import AttrDict
    ours = MultiScaleSubbandCQTDiscriminator(sample_rate=24000, filters=8)
    ref = _quiet(Ref, AttrDict(sampling_rate=24000, cqtd_filters=8))
    ref.load_state_dict(ours.state_dict())  # includes nnAudio's kernels and the resampler's
    y_r, _, f_r, _ = ref(wav, wav)
    _compare(ours, y_r, f_r, wav)


def test_msd_equals_parallel_wavegan(wav):
    """ParallelWaveGAN's MSD with ``follow_official_norm`` is HiFi-GAN's layer for layer (other key names)."""
    import scipy.signal
    import scipy.signal.windows
    scipy.signal.kaiser = scipy.signal.windows.kaiser  # parallel_wavegan imports a name scipy removed
    from parallel_wavegan.models.hifigan import HiFiGANMultiScaleDiscriminator as Ref
    ours = MultiScaleDiscriminator(channel_mult=0.25).eval()
    ref = Ref(discriminator_params=dict(channels=32, max_downsample_channels=256), follow_official_norm=True).eval()
    mapped = {}
    for k, v in ours.state_dict().items():
        _, i, kind, *rest = k.split(".")
        if kind == "convs":
            mapped[f"discriminators.{i}.layers.{rest[0]}.0.{rest[1]}"] = v
        else:
            mapped[f"discriminators.{i}.layers.7.{rest[0]}"] = v
    ref.load_state_dict(mapped)
    with torch.no_grad():
        outs = ref(wav)
        _compare(ours, [o[-1] for o in outs], outs, wav)


def test_msstftd_spectrogram_is_torchaudios(wav):
    import torchaudio
    d = MultiScaleSTFTDiscriminator(filters=8).discriminators[0]
    ref = torchaudio.transforms.Spectrogram(n_fft=1024, hop_length=256, win_length=1024, normalized=True,
                                            center=False, power=None)(wav)  # [B, 1, F, frames] complex
    expect = torch.cat([ref.real, ref.imag], dim=1).transpose(2, 3)
    _assert_close(d.spectrogram(wav), expect)


def test_deepcopy_after_backward(wav):
    """Norm hooks leave no graph on the modules, so an EMA / export copy can be made mid-training."""
    import copy
    d = build_discriminators([{"name": "msd", "channel_mult": 0.125, "scales": 2}, {"name": "mpd", "periods": [2],
                                                                                    "channel_mult": 0.125}])
    d(wav)[0][0].sum().backward()
    e = copy.deepcopy(d).eval()
    d.eval()
    with torch.no_grad():
        for a, b in zip(d(wav)[0], e(wav)[0]):
            _assert_close(a, b)
