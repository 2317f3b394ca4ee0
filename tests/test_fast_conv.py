"""FastConv1d: the FFT inference path equals F.conv1d (float rounding), training path and keys unchanged."""
import copy

import pytest
import torch
import torch.nn.functional as F

from vocoder.nn.fast_conv import FastConv1d, fft_conv1d, fft_weight
from vocoder.nn.weight_normalization import remove_weight_norm, weight_norm


@pytest.mark.parametrize("k,d,t,n_fft", [(7, 1, 100, 32), (11, 3, 257, 32), (11, 5, 64, 64), (7, 2, 5, 16)])
def test_fft_conv1d_matches_conv1d(k, d, t, n_fft):
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 9, t), torch.randn(6, 9, k), torch.randn(6)
    pad = d * (k - 1) // 2
    ref = F.conv1d(x, w, b, padding=pad, dilation=d)
    out = fft_conv1d(x, fft_weight(w, n_fft), k, b, d, pad, n_fft)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_fast_conv_module_inference_and_training():
    torch.manual_seed(0)
    conv = weight_norm(FastConv1d(128, 128, 7, dilation=3, padding=9))
    assert set(conv.state_dict()) == {"weight_g", "weight_v", "bias"}
    x = torch.randn(1, 128, 300, requires_grad=True)
    conv(x).square().sum().backward()  # training path: autograd through the ordinary conv
    assert conv.weight_v.grad is not None and x.grad is not None
    remove_weight_norm(conv)
    with torch.inference_mode():
        ref = F.conv1d(x.detach(), conv.weight, conv.bias, padding=9, dilation=3)
        out = conv(x.detach())
        assert "_fft_cache" in conv.__dict__  # the FFT path ran
        assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
        clone = copy.deepcopy(conv)
        assert "_fft_cache" not in clone.__dict__
    with torch.no_grad():  # a changed weight invalidates the cached spectrum
        conv.weight.mul_(2.0)
    with torch.inference_mode():
        assert (conv(x.detach()) - 2 * (ref - conv.bias[:, None]) - conv.bias[:, None]).abs().max() <= 1e-4


def test_weights_folded_under_inference_mode_still_run():
    """Weight norm folded inside ``torch.inference_mode`` leaves an inference tensor, which has no version counter
    to key the cached spectrum on: the FFT path computes it afresh each call, and follows an in-place change."""
    torch.manual_seed(0)
    conv = weight_norm(FastConv1d(128, 128, 7, dilation=3, padding=9))
    x = torch.randn(1, 128, 300)
    with torch.inference_mode():
        remove_weight_norm(conv)
        assert conv.weight.is_inference()
        ref = F.conv1d(x, conv.weight, conv.bias, padding=9, dilation=3)
        assert (conv(x) - ref).abs().max() <= 1e-5 * ref.abs().max()
        conv.weight.mul_(2.0)
        ref2 = F.conv1d(x, conv.weight, conv.bias, padding=9, dilation=3)
        assert (conv(x) - ref2).abs().max() <= 1e-5 * ref2.abs().max()
