"""FA-GAN's anti-aliased twin deconvolution (vocoder.nn.twin_deconv) and HiFi-GAN's ``upsample: twin`` option."""
import math

import pytest
import torch
import torch.nn as nn

from vocoder.generators import build_generator
from vocoder.generators.hifigan import HiFiGANConfig, HiFiGANGenerator, stream_hifigan
from vocoder.nn.twin_deconv import TwinDeconv1d, overlap_count
from vocoder.nn.weight_normalization import weight_norm


def image_to_tone_db(y: torch.Tensor, f_out: float, u: int) -> float:
    """Energy at the images ``k/u +- f_out`` (k = 1 .. u-1) over the energy at the tone ``f_out`` (cycles per output
    sample), in dB, of ``y [B, C, T]`` summed over channels (Hann-windowed spectrum, +-3 bins per line)."""
    t = y.shape[-1]
    w = torch.hann_window(t, periodic=False, dtype=torch.float64)
    power = torch.fft.rfft(y.double() * w, dim=-1).abs().pow(2).sum(dim=(0, 1))
    freqs = torch.fft.rfftfreq(t, dtype=torch.float64)

    def band(f):
        return power[(freqs - f).abs() <= 3.0 / t].sum()

    images = sum(band(k / u + s * f_out) for k in range(1, u) for s in (-1, 1) if 0 < k / u + s * f_out < 0.5)
    return 10 * math.log10(float(images / band(f_out)))


def _tone_margin(kernel_size: int, stride: int, seed: int) -> float:
    torch.manual_seed(seed)
    c_in, c_out, t, f_in = 16, 8, 512, 0.1
    twin = TwinDeconv1d(c_in, c_out, kernel_size, stride, padding=(kernel_size - stride) // 2)
    # untrained: PyTorch's default init under weight norm, what the official HiFi-GAN code ends up with
    plain = weight_norm(nn.ConvTranspose1d(c_in, c_out, kernel_size, stride, padding=(kernel_size - stride) // 2))
    plain.load_state_dict(twin.conv.state_dict())  # the very same learned kernel
    x = torch.cos(2 * math.pi * f_in * torch.arange(t) + torch.rand(c_in, 1) * 2 * math.pi).unsqueeze(0)
    with torch.no_grad():
        return image_to_tone_db(plain(x), f_in / stride, stride) - image_to_tone_db(twin(x), f_in / stride, stride)


@pytest.mark.parametrize("kernel_size,stride", [(16, 8), (4, 2), (3, 2)])
def test_tone_images_lower_than_plain_transposed_conv(kernel_size, stride):
    """A tone (0.1 cycles per input sample, random phase per channel) through an untrained module and through a plain
    ``ConvTranspose1d`` with the same kernel: the twin's image-to-tone ratio is lower by a margin.

    Measured (seeds 0-2, this test's measurement): (16, 8): 71.4 / 72.2 / 71.6 dB; (4, 2):
    63.8 dB; (3, 2): 63.8-63.9 dB; (11, 5): 66.6-69.2 dB (the plain conv's images are -1.5 .. +11 dB of the
    tone, the twin's -59 .. -65 dB, limited by the Hann window's leakage). Asserted: 50 dB.
    """
    for seed in range(2):
        assert _tone_margin(kernel_size, stride, seed) > 50.0


def test_overlap_count_is_the_twin_branch():
    # kernel 3, stride 2, no padding: taps land 1, 1, 2, 1, 2, 1, ..., 1 times
    c = overlap_count(4, 3, 2, 0)[0, 0]
    assert c.tolist() == [1, 1, 2, 1, 2, 1, 2, 1, 1]
    # kernel a multiple of the stride: uniform k/u in the interior, less at the padded edges
    c = overlap_count(10, 16, 8, 4)[0, 0]
    assert c.shape[-1] == 80 and torch.all(c[8:-8] == 2) and c[0] == 1


def test_twin_cancels_the_overlap_modulation():
    """With a uniform kernel the plain transposed conv of a constant is the overlap pattern (a checkerboard); the
    twin-compensated output (low-pass off) is flat, edges included."""
    m = TwinDeconv1d(1, 1, 3, 2, padding=0, lowpass=False)
    with torch.no_grad():
        m.conv.weight_v.fill_(1.0)
        m.conv.weight_g.fill_(math.sqrt(3.0))  # |v| = sqrt(3): weight = v
        m.conv.bias.zero_()
        x = torch.ones(1, 1, 32)
        plain = m.conv(x)
        out = m(x)
    assert plain.std() > 0.3  # 1, 1, 2, 1, 2, ...
    assert torch.allclose(out, torch.full_like(out, 1.5), atol=1e-6)  # mean overlap 3/2 times the unit kernel


def test_shapes_grads_and_errors():
    m = TwinDeconv1d(8, 4, 16, 8, padding=4)
    x = torch.randn(2, 8, 13, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 4, 13 * 8)
    y.square().mean().backward()
    assert x.grad is not None and m.conv.weight_v.grad is not None
    with pytest.raises(ValueError, match="expected"):
        m(torch.randn(2, 3, 13))
    with pytest.raises(ValueError, match="kernel_size >= stride"):
        TwinDeconv1d(8, 4, 2, 4)


def _tiny(upsample):
    return HiFiGANConfig(upsample_rates=(4, 4), upsample_kernel_sizes=(8, 8), upsample_initial_channel=16,
                         resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),), upsample=upsample)


def test_hifigan_upsample_option():
    torch.manual_seed(0)
    plain, twin = HiFiGANGenerator(_tiny("transposed")), HiFiGANGenerator(_tiny("twin"))
    mel = torch.randn(2, 80, 10)
    assert twin(mel).shape == plain(mel).shape == (2, 1, 160)
    plain_keys, twin_keys = set(plain.state_dict()), set(twin.state_dict())
    # default names unchanged (official keys); the twin's learned conv under ups.{i}.conv, its filter a buffer
    assert "ups.0.weight_v" in plain_keys and not any(".conv." in k for k in plain_keys if k.startswith("ups."))
    assert {k.replace(".conv.", ".") for k in twin_keys if ".lowpass." not in k} == plain_keys
    assert HiFiGANConfig().upsample == "transposed"
    with pytest.raises(ValueError, match="upsample must be one of"):
        HiFiGANConfig(upsample="nearest")


def test_hifigan_twin_fold_weight_norm_keeps_output():
    torch.manual_seed(0)
    g = HiFiGANGenerator(_tiny("twin")).eval()
    mel = torch.randn(1, 80, 12)
    with torch.no_grad():
        before = g(mel)
        g.remove_weight_norm()
        after = g(mel)
    assert torch.allclose(before, after, atol=1e-6)
    assert "ups.0.conv.weight" in g.state_dict()


def test_hifigan_twin_built_by_name_and_refused_by_streaming():
    g = build_generator("hifigan", config={"upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8],
                                          "upsample_initial_channel": 16, "upsample": "twin"})
    assert isinstance(g.ups[0], TwinDeconv1d)
    with pytest.raises(ValueError, match="streaming supports upsample='transposed' only"):
        stream_hifigan(g)


def test_hifigan_twin_checkpoint_round_trip(tmp_path):
    """Our checkpoint keeps ``upsample: twin`` in the config and the twin's weights load back exactly."""
    from vocoder.audio.mel import MelConfig
    from vocoder.checkpoints.load import load_checkpoint
    from vocoder.checkpoints.native import save_checkpoint

    torch.manual_seed(0)
    g = HiFiGANGenerator(_tiny("twin")).eval()
    mel = torch.randn(1, 80, 12)
    save_checkpoint(tmp_path / "twin.pt", g, MelConfig(hop_length=16, n_fft=64, win_length=64))
    loaded = load_checkpoint(tmp_path / "twin.pt")[0].eval()
    assert loaded.config.upsample == "twin" and isinstance(loaded.ups[0], TwinDeconv1d)
    with torch.no_grad():
        assert torch.equal(loaded(mel), g(mel))


@pytest.mark.parametrize("exporter", ["export_hifigan", "export_parallel_wavegan"])
def test_official_formats_refuse_twin_upsampling(exporter, tmp_path):
    """The official codes have no twin deconvolution: exporting such a generator to them is an error, not a file
    their loaders would misread."""
    from vocoder.audio.mel import MelConfig
    from vocoder.checkpoints import export as ex
    from vocoder.generators import build_generator

    g = build_generator("hifigan", {"upsample": "twin", "upsample_initial_channel": 32, "resblock_kernel_sizes": [3],
                                    "resblock_dilation_sizes": [[1, 3, 5]]})
    with pytest.raises(ValueError, match="upsample: twin"):
        getattr(ex, exporter)(g, tmp_path / "out", mel_config=MelConfig())
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
