"""Fused anti-aliased activation kernels against the plain PyTorch reference (and the official BigVGAN code).

The CPU extension is built once per machine (cached on disk under ~/.cache/vocoder/kernels or
$TORCH_EXTENSIONS_DIR); GPU tests skip without CUDA; the CUDA build test needs only the toolkit.
"""

from __future__ import annotations

import logging
import os

import pytest
import torch

from vocoder.kernels import build, dispatch
from vocoder.kernels.autograd import AntiAliasedActivation
from vocoder.nn.activations import Snake, SnakeBeta
from vocoder.nn.filters import Activation1d

VARIANTS = [(Snake, False), (Snake, True), (SnakeBeta, False), (SnakeBeta, True)]
VARIANT_IDS = ["snake", "snake-log", "snakebeta", "snakebeta-log"]


@pytest.fixture(scope="module")
def cpu_ext():
    ext = build.load_cpu()
    if ext is None:
        pytest.fail(f"CPU kernel failed to build: {build.last_error(build.CPU_NAME)}")
    return ext


def make_module(cls, logscale, channels, dtype=torch.float32, seed=0):
    """An Activation1d with random (but sensible) per-channel parameters."""
    g = torch.Generator().manual_seed(seed)
    m = Activation1d(cls(channels, alpha_logscale=logscale))
    with torch.no_grad():
        centre = 0.0 if logscale else 1.0
        m.act.alpha.copy_(centre + 0.4 * torch.randn(channels, generator=g))
        if cls is SnakeBeta:
            m.act.beta.copy_(centre + 0.4 * torch.randn(channels, generator=g))
    return m.to(dtype)


def fused(x, m, ext):
    """The fused kernel called directly (bypasses the environment switch)."""
    is_beta = isinstance(m.act, SnakeBeta)
    return AntiAliasedActivation.apply(x, m.act.alpha, m.act.beta if is_beta else m.act.alpha,
                                       m.upsample.filter, m.downsample.lowpass.filter, ext, is_beta,
                                       m.act.alpha_logscale, m.act.no_div_by_zero)


def grads(fn, x, m, g):
    x = x.detach().clone().requires_grad_(True)
    params = list(m.act.parameters())
    y = fn(x)
    return [y.detach()] + list(torch.autograd.grad(y, [x] + params, g))


def assert_close_grads(got, ref, fwd_tol=1e-5, grad_tol=1e-4):
    names = ["y", "grad_x", "grad_alpha", "grad_beta"]
    torch.testing.assert_close(got[0], ref[0], rtol=0, atol=fwd_tol, msg="forward")
    for name, a, b in zip(names[1:], got[1:], ref[1:]):
        # Parameter gradients sum B*T terms: compare relative to their scale.
        scale = max(1.0, b.abs().max().item())
        torch.testing.assert_close(a, b, rtol=0, atol=grad_tol * scale, msg=name)


# --- CPU: forward and backward against the reference ------------------------------------------------------


@pytest.mark.parametrize("cls,logscale", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("length", [1, 2, 3, 5, 7, 12, 1023, 1024, 1025, 2051])
def test_cpu_matches_reference(cpu_ext, cls, logscale, length):
    m = make_module(cls, logscale, channels=3)
    x = 0.8 * torch.randn(2, 3, length)
    g = torch.randn(2, 3, length)
    ref = grads(m.reference_forward, x, m, g)
    got = grads(lambda t: fused(t, m, cpu_ext), x, m, g)
    assert_close_grads(got, ref)


@pytest.mark.parametrize("cls,logscale", VARIANTS, ids=VARIANT_IDS)
def test_cpu_matches_official_bigvgan(cpu_ext, cls, logscale):
    bigvgan = pytest.importorskip("bigvgan")
    from bigvgan import activations as official_act
    from bigvgan.alias_free_activation.torch.act import Activation1d as OfficialActivation1d

    ours = make_module(cls, logscale, channels=4, seed=3)
    official = OfficialActivation1d(getattr(official_act, cls.__name__)(4, alpha_logscale=logscale))
    official.load_state_dict(ours.state_dict())
    x = torch.randn(1, 4, 700)
    with torch.no_grad():
        torch.testing.assert_close(fused(x, ours, cpu_ext), official(x), rtol=0, atol=1e-5)
    assert bigvgan is not None


@pytest.mark.parametrize("cls,logscale", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("length", [1, 4, 9])
def test_cpu_gradcheck_float64(cpu_ext, cls, logscale, length):
    m = make_module(cls, logscale, channels=2, dtype=torch.float64, seed=length)
    is_beta = cls is SnakeBeta
    x = torch.randn(2, 2, length, dtype=torch.float64, requires_grad=True)
    alpha = m.act.alpha.detach().clone().requires_grad_(True)
    beta = (m.act.beta if is_beta else m.act.alpha).detach().clone().requires_grad_(is_beta)

    def f(x, alpha, beta):
        return AntiAliasedActivation.apply(x, alpha, beta if is_beta else alpha, m.upsample.filter,
                                           m.downsample.lowpass.filter, cpu_ext, is_beta, logscale, 1e-9)

    assert torch.autograd.gradcheck(f, (x, alpha, beta), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_cpu_float64_matches_reference(cpu_ext):
    m = make_module(SnakeBeta, True, channels=3, dtype=torch.float64)
    x = torch.randn(2, 3, 1500, dtype=torch.float64)
    g = torch.randn(2, 3, 1500, dtype=torch.float64)
    ref = grads(m.reference_forward, x, m, g)
    got = grads(lambda t: fused(t, m, cpu_ext), x, m, g)
    assert_close_grads(got, ref, fwd_tol=1e-12, grad_tol=1e-11)


def test_cpu_isa_variants_agree(cpu_ext):
    """Every instruction-set variant the CPU supports gives the reference result (to rounding)."""
    m = make_module(SnakeBeta, True, channels=4)
    x = torch.randn(2, 4, 3000)
    g = torch.randn(2, 4, 3000)
    ref = grads(m.reference_forward, x, m, g)
    before = cpu_ext.isa()
    assert cpu_ext.supported_isas()[0] == "default" and before in cpu_ext.supported_isas()
    try:
        for isa in cpu_ext.supported_isas():
            cpu_ext.set_isa(isa)
            assert cpu_ext.isa() == isa
            assert_close_grads(grads(lambda t: fused(t, m, cpu_ext), x, m, g), ref)
    finally:
        cpu_ext.set_isa(before)
    with pytest.raises(RuntimeError):
        cpu_ext.set_isa("sse9")


def test_cpu_large_arguments_fall_back_to_exact_sin(cpu_ext):
    """|alpha * u| beyond the polynomial's range (and non-finite inputs) still match the reference."""
    m = make_module(Snake, False, channels=2)
    with torch.no_grad():
        m.act.alpha.copy_(torch.tensor([3000.0, 0.5]))
    x = 5.0 * torch.randn(1, 2, 2000)
    g = torch.randn(1, 2, 2000)
    ref = grads(m.reference_forward, x, m, g)
    got = grads(lambda t: fused(t, m, cpu_ext), x, m, g)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-3, atol=1e-3)

    x_bad = torch.randn(1, 2, 50)
    x_bad[0, 0, 20] = float("nan")
    x_bad[0, 1, 30] = float("inf")
    with torch.no_grad():
        y_ref, y = m.reference_forward(x_bad), fused(x_bad, m, cpu_ext)
    assert torch.equal(torch.isnan(y), torch.isnan(y_ref))
    finite = torch.isfinite(y_ref)
    torch.testing.assert_close(y[finite], y_ref[finite], rtol=0, atol=1e-5)


def test_cpu_noncontiguous_and_multithreaded(cpu_ext):
    m = make_module(SnakeBeta, False, channels=5)
    base = torch.randn(2, 3000, 5)
    x = base.transpose(1, 2)  # [2, 5, 3000], not contiguous
    assert not x.is_contiguous()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch.no_grad():
            torch.testing.assert_close(fused(x, m, cpu_ext), m.reference_forward(x), rtol=0, atol=1e-5)
    finally:
        torch.set_num_threads(threads)


def test_cpu_rejects_bad_inputs(cpu_ext):
    m = make_module(Snake, False, channels=3)
    with pytest.raises(RuntimeError, match="B, C, T"):
        cpu_ext.forward(torch.randn(3, 10), m.act.alpha.detach(), m.act.alpha.detach(),
                        m.upsample.filter.reshape(-1), m.downsample.lowpass.filter.reshape(-1), False, False, 1e-9)
    with pytest.raises(RuntimeError, match="C=4 values, got 3"):
        cpu_ext.forward(torch.randn(1, 4, 10), m.act.alpha.detach(), m.act.alpha.detach(),
                        m.upsample.filter.reshape(-1), m.downsample.lowpass.filter.reshape(-1), False, False, 1e-9)


# --- dispatch ---------------------------------------------------------------------------------------------


def test_module_forward_uses_kernel_and_switch(cpu_ext, monkeypatch):
    m = make_module(SnakeBeta, True, channels=3)
    x = torch.randn(1, 3, 500)
    monkeypatch.setenv("VOCODER_KERNELS", "1")
    with torch.no_grad():
        expected = fused(x, m, cpu_ext)
        via_dispatch = dispatch.anti_aliased_activation(x, m)
        assert via_dispatch is not None and torch.equal(via_dispatch, expected)
        assert torch.equal(m(x), expected)  # Activation1d.forward goes through the dispatcher
        monkeypatch.setenv("VOCODER_KERNELS", "0")
        assert dispatch.anti_aliased_activation(x, m) is None
        assert torch.equal(m(x), m.reference_forward(x))
    assert dispatch.kernels_available()["enabled"] is False


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace deprecation
def test_dispatch_declines_unsupported(cpu_ext, monkeypatch):
    monkeypatch.setenv("VOCODER_KERNELS", "1")
    m = make_module(Snake, False, channels=3)
    x = torch.randn(1, 3, 64)
    assert dispatch.unsupported_reason(m) is None
    assert dispatch.anti_aliased_activation(x.half(), m) is None  # no float16 CPU kernel
    assert dispatch.anti_aliased_activation(torch.randn(1, 4, 64), m) is None  # channel mismatch
    assert dispatch.anti_aliased_activation(torch.randn(3, 64), m) is None  # not [B, C, T]
    other = Activation1d(Snake(3), up_kernel_size=8, down_kernel_size=8)
    assert dispatch.unsupported_reason(other) is not None
    assert dispatch.anti_aliased_activation(x, other) is None
    other = Activation1d(torch.nn.Tanh())
    assert dispatch.anti_aliased_activation(x, other) is None
    with torch.no_grad():
        traced = torch.jit.trace(m, x)  # tracing records the reference graph
    torch.testing.assert_close(traced(x), m.reference_forward(x).detach())


def test_kernels_available(cpu_ext, monkeypatch):
    monkeypatch.delenv("VOCODER_KERNELS", raising=False)
    info = dispatch.kernels_available()
    assert info == {"enabled": True, "cpu": True, "cuda": info["cuda"]}
    assert info["cuda"] is torch.cuda.is_available() or info["cuda"] is False


def test_bigvgan_generator_with_kernels_matches_reference(cpu_ext, monkeypatch):
    from vocoder.generators import build_generator

    cfg = dict(n_mels=8, upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4), upsample_initial_channel=16,
               resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),))
    gen = build_generator("bigvgan", cfg).eval()
    mel = torch.randn(1, 8, 20)
    monkeypatch.setenv("VOCODER_KERNELS", "0")
    with torch.no_grad():
        ref = gen(mel)
    monkeypatch.setenv("VOCODER_KERNELS", "1")
    with torch.no_grad():
        out = gen(mel)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


# --- build machinery --------------------------------------------------------------------------------------


def test_cache_dir_honours_torch_extensions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert build.cache_root() == tmp_path
    assert build.build_dir("x") == tmp_path / "x" and (tmp_path / "x").is_dir()
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    root = build.cache_root()
    assert "site-packages" not in str(root) and torch.__version__.split("+")[0] in str(root)


def test_loading_does_not_touch_environment(cpu_ext):
    before = dict(os.environ)
    assert build.load_cpu() is cpu_ext  # cached per process
    build.cuda_home()
    assert dict(os.environ) == before


def test_build_failure_warns_once(caplog):
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("compiler exploded\nmore details")

    name = "vocoder_test_broken_ext"
    try:
        with caplog.at_level(logging.WARNING, logger="vocoder.kernels.build"):
            assert build._load(name, broken) is None
            assert build._load(name, broken) is None
        warnings = [r for r in caplog.records if name in r.getMessage()]
        assert len(warnings) == 1 and "compiler exploded" in warnings[0].getMessage()
        assert len(calls) == 1
        assert "more details" in build.last_error(name)
    finally:
        build._cache.pop(name, None)
        build._errors.pop(name, None)


@pytest.mark.slow
@pytest.mark.skipif(build.cuda_home() is None, reason="no CUDA toolkit")
def test_cuda_extension_compiles_and_links():
    ext = build.load_cuda(arch=None)
    assert ext is not None, build.last_error(build.CUDA_NAME)
    assert hasattr(ext, "forward") and hasattr(ext, "backward")


# --- CUDA (skipped without a GPU) ------------------------------------------------------------------------

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=False)
def no_tf32(monkeypatch):
    """The reference's convolutions must run in true float32 (TF32 would be the less accurate side)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


@pytest.fixture(scope="module")
def cuda_ext():
    ext = build.load_cuda()
    if ext is None:
        pytest.fail(f"CUDA kernel failed to build: {build.last_error(build.CUDA_NAME)}")
    return ext


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("cls,logscale", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("length", [1, 3, 1023, 1024, 1025, 5000])
def test_cuda_matches_reference(cuda_ext, no_tf32, cls, logscale, length):
    m = make_module(cls, logscale, channels=3).cuda()
    x = 0.8 * torch.randn(2, 3, length, device="cuda")
    g = torch.randn(2, 3, length, device="cuda")
    ref = grads(m.reference_forward, x, m, g)
    got = grads(lambda t: fused(t, m, cuda_ext), x, m, g)
    assert_close_grads(got, ref)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision(cuda_ext, no_tf32, dtype):
    m = make_module(SnakeBeta, True, channels=4).cuda()
    x = torch.randn(2, 4, 3000, device="cuda")
    g = torch.randn(2, 4, 3000, device="cuda")
    ref = grads(m.reference_forward, x.to(dtype).float(), m, g.to(dtype).float())
    got = grads(lambda t: fused(t, m, cuda_ext), x.to(dtype), m, g.to(dtype))
    assert got[0].dtype == dtype and got[1].dtype == dtype
    tol = 2e-2 if dtype == torch.bfloat16 else 4e-3
    torch.testing.assert_close(got[0].float(), ref[0], rtol=tol, atol=tol)
    torch.testing.assert_close(got[1].float(), ref[1], rtol=tol, atol=tol)
    for a, b in zip(got[2:], ref[2:]):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, b.abs().max().item()))


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("cls,logscale", VARIANTS, ids=VARIANT_IDS)
def test_cuda_gradcheck_float64(cuda_ext, cls, logscale):
    m = make_module(cls, logscale, channels=2, dtype=torch.float64).cuda()
    is_beta = cls is SnakeBeta
    x = torch.randn(2, 2, 7, dtype=torch.float64, device="cuda", requires_grad=True)
    alpha = m.act.alpha.detach().clone().requires_grad_(True)
    beta = (m.act.beta if is_beta else m.act.alpha).detach().clone().requires_grad_(is_beta)

    def f(x, alpha, beta):
        return AntiAliasedActivation.apply(x, alpha, beta if is_beta else alpha, m.upsample.filter,
                                           m.downsample.lowpass.filter, cuda_ext, is_beta, logscale, 1e-9)

    assert torch.autograd.gradcheck(f, (x, alpha, beta), eps=1e-6, atol=1e-7, rtol=1e-5)


@gpu
@pytest.mark.gpu
def test_cuda_dispatch_and_noncontiguous(cuda_ext, no_tf32, monkeypatch):
    monkeypatch.setenv("VOCODER_KERNELS", "1")
    m = make_module(Snake, True, channels=5).cuda()
    x = torch.randn(2, 2000, 5, device="cuda").transpose(1, 2)
    with torch.no_grad():
        out = dispatch.anti_aliased_activation(x, m)
        assert out is not None and out.is_cuda
        torch.testing.assert_close(out, m.reference_forward(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("before", [None, "1", "0"])
def test_use_kernels_sets_and_restores_the_switch(monkeypatch, before):
    if before is None:
        monkeypatch.delenv("VOCODER_KERNELS", raising=False)
    else:
        monkeypatch.setenv("VOCODER_KERNELS", before)
    for enabled in (False, True):
        with dispatch.use_kernels(enabled):
            assert dispatch.kernels_enabled() is enabled
        assert os.environ.get("VOCODER_KERNELS") == before
    with pytest.raises(RuntimeError):
        with dispatch.use_kernels(False):
            raise RuntimeError("restored on errors too")
    assert os.environ.get("VOCODER_KERNELS") == before
