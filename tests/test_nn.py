"""vocoder.nn against the official BigVGAN layers (activations, Kaiser-sinc filters, Activation1d, AMP blocks)."""
import copy
import io
import warnings

import pytest
import torch
import torch.nn as nn

from vocoder.nn import (Activation1d, AMPBlock1, AMPBlock2, MelGANResBlock, ResBlock1, ResBlock2, Snake, SnakeBeta,
                        effective_weight, has_weight_norm, kaiser_sinc_filter1d, remove_weight_norm, weight_norm)
from vocoder.kernels.dispatch import use_kernels
from vocoder.nn import filters as filters_mod

official_act = pytest.importorskip("bigvgan.activations")
official_aaf = pytest.importorskip("bigvgan.alias_free_activation.torch")
official_model = pytest.importorskip("bigvgan.bigvgan")


pytestmark = pytest.mark.usefixtures("one_thread_per_module")


def _randomize(module: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Every floating parameter re-drawn (so a test cannot pass on ones/zeros initialisations)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


def _official_torch_wn(conv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(conv)


# --- activations -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls_name", ["Snake", "SnakeBeta"])
@pytest.mark.parametrize("logscale", [False, True])
def test_snake_matches_official(cls_name, logscale):
    ours = _randomize({"Snake": Snake, "SnakeBeta": SnakeBeta}[cls_name](6, alpha_logscale=logscale))
    ref = getattr(official_act, cls_name)(6, alpha_logscale=logscale)
    ref.load_state_dict(ours.state_dict())  # strict: same parameter names
    x = torch.randn(3, 6, 50) * 3
    assert torch.equal(ours(x), ref(x))


def test_snake_initialisation_and_names():
    sb, s = SnakeBeta(4, alpha_logscale=True), Snake(4)
    assert set(sb.state_dict()) == {"alpha", "beta"} and set(s.state_dict()) == {"alpha"}
    assert torch.equal(sb.alpha, torch.zeros(4)) and torch.equal(s.alpha, torch.ones(4))
    x = torch.linspace(-3, 3, 40).view(1, 1, 40).expand(1, 4, 40)
    # with alpha = beta = 1: x + sin(x)^2
    assert torch.allclose(sb(x), x + torch.sin(x) ** 2, atol=1e-6)


# --- filters -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cutoff,half_width,kernel", [(0.25, 0.3, 12), (0.5, 0.6, 12), (1 / 6, 0.2, 18),
                                                       (0.25, 0.3, 11), (0.1, 0.05, 64)])
def test_kaiser_sinc_matches_official(cutoff, half_width, kernel):
    ours = kaiser_sinc_filter1d(cutoff, half_width, kernel)
    ref = official_aaf.kaiser_sinc_filter1d(cutoff, half_width, kernel)
    assert ours.shape == (1, 1, kernel)
    assert torch.equal(ours, ref)
    assert abs(float(ours.sum()) - 1.0) < 1e-6


def test_lowpass_attenuates_above_cutoff():
    filt = kaiser_sinc_filter1d(0.25, 0.3, 12)[0, 0]
    spectrum = torch.fft.rfft(filt, n=512).abs()
    freqs = torch.fft.rfftfreq(512)
    assert spectrum[freqs < 0.05].min() > 0.9  # pass band
    assert spectrum[freqs > 0.45].max() < 0.05  # stop band near Nyquist


@pytest.mark.parametrize("ratio,kernel", [(2, 12), (2, None), (3, None)])
def test_up_down_sample_match_official(ratio, kernel):
    from vocoder.nn import DownSample1d, UpSample1d

    x = torch.randn(2, 5, 41)
    up, up_ref = UpSample1d(ratio, kernel), official_aaf.UpSample1d(ratio, kernel)
    down, down_ref = DownSample1d(ratio, kernel), official_aaf.DownSample1d(ratio, kernel)
    y = up(x)
    assert y.shape[-1] == ratio * 41
    assert torch.equal(y, up_ref(x))
    assert torch.equal(down(y), down_ref(y))
    assert set(up.state_dict()) == set(up_ref.state_dict())
    assert set(down.state_dict()) == set(down_ref.state_dict())


@pytest.mark.parametrize("kind", ["snake", "snakebeta"])
@pytest.mark.parametrize("logscale", [False, True])
def test_activation1d_reference_matches_official(kind, logscale):
    cls = Snake if kind == "snake" else SnakeBeta
    ref_cls = official_act.Snake if kind == "snake" else official_act.SnakeBeta
    ours = Activation1d(_randomize(cls(8, alpha_logscale=logscale), seed=3))
    ref = official_aaf.Activation1d(ref_cls(8, alpha_logscale=logscale))
    ref.load_state_dict(ours.state_dict())  # strict: act.alpha, upsample.filter, downsample.lowpass.filter
    assert set(ours.state_dict()) == set(ref.state_dict())
    x = torch.randn(2, 8, 64) * 2
    out, expected = ours.reference_forward(x), ref(x)
    assert out.shape == x.shape
    diff = (out - expected).abs().max().item()
    assert diff < 1e-6, diff
    with use_kernels(False):
        assert torch.equal(ours(x), out)


def test_activation1d_dispatch_hook(monkeypatch):
    act = Activation1d(Snake(4))
    x = torch.randn(1, 4, 16)
    calls = []

    def fake(inp, module):
        calls.append(module)
        return torch.full_like(inp, 7.0) if len(calls) == 1 else None

    monkeypatch.setattr(filters_mod, "anti_aliased_activation", fake)
    assert torch.equal(act(x), torch.full_like(x, 7.0))  # the kernel's result is used...
    assert torch.equal(act(x), act.reference_forward(x))  # ...and None falls back to the reference
    assert calls[0] is act


# --- weight norm ---------------------------------------------------------------------------------------------------
def test_weight_norm_matches_torch_and_official_keys():
    torch.manual_seed(0)
    conv = nn.Conv1d(4, 6, 3, padding=1)
    ref = _official_torch_wn(copy.deepcopy(conv))
    ours = weight_norm(conv)
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["bias", "weight_g", "weight_v"]
    _randomize(ref)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 9)
    assert torch.equal(effective_weight(ours), torch._weight_norm(ref.weight_v, ref.weight_g, 0))  # fresh before forward
    assert torch.equal(ours(x), ref(x))


def test_weight_norm_deepcopy_and_pickle_after_backward():
    conv = weight_norm(nn.ConvTranspose1d(4, 2, 4, 2, padding=1))
    conv(torch.randn(1, 4, 5)).sum().backward()
    twin = copy.deepcopy(conv)
    x = torch.randn(1, 4, 5)
    assert torch.equal(twin(x), conv(x))
    torch.save(conv, io.BytesIO())


def test_weight_norm_loads_every_spelling():
    torch.manual_seed(1)
    src = _randomize(weight_norm(nn.Conv1d(3, 5, 3)))
    x = torch.randn(1, 3, 12)
    expected = src(x)
    sd_gv = src.state_dict()
    sd_param = {"bias": sd_gv["bias"], "parametrizations.weight.original0": sd_gv["weight_g"],
                "parametrizations.weight.original1": sd_gv["weight_v"]}
    folded = remove_weight_norm(copy.deepcopy(src))
    sd_folded = folded.state_dict()
    assert set(sd_folded) == {"bias", "weight"} and not has_weight_norm(folded)
    for sd in (sd_gv, sd_param, sd_folded):
        normed = weight_norm(nn.Conv1d(3, 5, 3))
        normed.load_state_dict(sd)  # strict
        assert torch.allclose(normed(x), expected, atol=1e-6)
        plain = remove_weight_norm(weight_norm(nn.Conv1d(3, 5, 3)))
        plain.load_state_dict(sd)
        assert torch.allclose(plain(x), expected, atol=1e-6)
    assert remove_weight_norm(folded) is folded  # idempotent


# --- blocks ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("block", [
    lambda: ResBlock1(8, 3, (1, 3, 5)), lambda: ResBlock2(8, 3, (1, 3)),
    lambda: AMPBlock1(8, 3, (1, 3, 5), "snakebeta", True), lambda: AMPBlock2(8, 5, (1, 3), "snake", False),
    lambda: MelGANResBlock(8, 3),
])
def test_block_shape_and_remove_weight_norm(block):
    b = _randomize(block(), scale=0.1)
    x = torch.randn(2, 8, 30)
    y = b(x)
    assert y.shape == x.shape
    b.remove_weight_norm()
    assert not any(k.endswith(("weight_g", "weight_v")) for k in b.state_dict())
    assert (b(x) - y).abs().max().item() < 1e-5
    b.remove_weight_norm()  # twice is fine


@pytest.mark.parametrize("resblock,kind", [("1", "snakebeta"), ("2", "snake")])
def test_amp_block_matches_official(resblock, kind):
    from bigvgan.env import AttrDict

    h = AttrDict({"snake_logscale": True, "use_cuda_kernel": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref_cls = official_model.AMPBlock1 if resblock == "1" else official_model.AMPBlock2
        ref = ref_cls(h, 8, 5, (1, 3, 5), activation=kind)
    ours = (AMPBlock1 if resblock == "1" else AMPBlock2)(8, 5, (1, 3, 5), kind, True)
    _randomize(ref, scale=0.2)
    ours.load_state_dict(ref.state_dict())  # strict
    x = torch.randn(2, 8, 40)
    diff = (ours(x) - ref(x)).abs().max().item()
    assert diff < 1e-5, diff
