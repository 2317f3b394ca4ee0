"""Which implementation runs the anti-aliased activation: the one decision point for fused kernels.

``anti_aliased_activation(x, module)`` returns the fused result of BigVGAN's ``Activation1d`` (upsample x2 ->
Snake/SnakeBeta -> downsample x2) for ``x [B, C, T]``, or ``None`` so that the module runs its plain
PyTorch ``reference_forward``. ``None`` comes back when

* the environment variable ``VOCODER_KERNELS`` is ``0`` (or ``false``/``off``/``no``), read at every call;
* the module is not the supported configuration (ratio 2, 12-tap filters, replicate padding, Snake or
  SnakeBeta with one parameter per channel) or ``x`` is not a ``[B, C, T]`` tensor with ``C`` channels;
* the dtype/device has no kernel (CPU: float32/float64; CUDA: float32/float16/bfloat16/float64);
* the model is being traced, scripted, exported or compiled (the reference is what those tools understand);
* the extension could not be built (one warning is logged, by :mod:`vocoder.kernels.build`).

The CPU kernel is on by default; the first call in a fresh cache compiles it (tens of seconds, once per
machine: later processes load it from the disk cache in about a second).
"""

from __future__ import annotations

import contextlib
import os

import torch

from vocoder.kernels import build
from vocoder.kernels.autograd import AntiAliasedActivation

_OFF = {"0", "false", "off", "no"}
_CPU_DTYPES = (torch.float32, torch.float64)
_CUDA_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def kernels_enabled() -> bool:
    """False when ``VOCODER_KERNELS`` asks for the reference implementation."""
    return os.environ.get("VOCODER_KERNELS", "1").strip().lower() not in _OFF


@contextlib.contextmanager
def use_kernels(enabled: bool):
    """Set ``VOCODER_KERNELS`` for the duration of the block (benchmarks comparing both paths in one process),
    restoring what was there before."""
    old = os.environ.get("VOCODER_KERNELS")
    os.environ["VOCODER_KERNELS"] = "1" if enabled else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["VOCODER_KERNELS"]
        else:
            os.environ["VOCODER_KERNELS"] = old


def _filter_ok(f) -> bool:
    return isinstance(f, torch.Tensor) and f.numel() == 12


def unsupported_reason(module) -> str | None:
    """Why ``module`` cannot use the fused kernel, or ``None`` when it can."""
    up = getattr(module, "upsample", None)
    down = getattr(module, "downsample", None)
    act = getattr(module, "act", None)
    if up is None or down is None or act is None:
        return "module has no upsample/act/downsample"
    if getattr(module, "up_ratio", 2) != 2 or getattr(module, "down_ratio", 2) != 2:
        return "ratios other than 2"
    if (up.ratio, up.kernel_size, up.stride, up.pad, up.pad_left, up.pad_right) != (2, 12, 2, 5, 15, 15):
        return "upsampler is not ratio 2 with 12 taps"
    if not _filter_ok(getattr(up, "filter", None)):
        return "upsampler filter is not 12 taps"
    low = getattr(down, "lowpass", None)
    if low is None or getattr(down, "ratio", 2) != 2:
        return "downsampler is not ratio 2"
    if (low.kernel_size, low.stride, low.pad_left, low.pad_right) != (12, 2, 5, 6):
        return "downsampler is not 12 taps with stride 2"
    if not getattr(low, "padding", True) or getattr(low, "padding_mode", "replicate") != "replicate":
        return "downsampler padding is not replicate"
    if not _filter_ok(getattr(low, "filter", None)):
        return "downsampler filter is not 12 taps"
    kind = getattr(act, "kernel_name", None)  # declared by the activation class (vocoder.nn.activations)
    if kind not in ("snake", "snakebeta"):
        return f"activation {type(act).__name__} is not Snake/SnakeBeta"
    alpha = getattr(act, "alpha", None)
    if not isinstance(alpha, torch.Tensor) or alpha.dim() != 1:
        return "activation alpha is not a [C] tensor"
    if kind == "snakebeta":
        beta = getattr(act, "beta", None)
        if not isinstance(beta, torch.Tensor) or beta.shape != alpha.shape:
            return "activation beta is not a [C] tensor"
    return None


def _tracing() -> bool:
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return True
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling():
        return True
    onnx = getattr(torch, "onnx", None)
    return bool(onnx is not None and hasattr(onnx, "is_in_onnx_export") and onnx.is_in_onnx_export())


def anti_aliased_activation(x: torch.Tensor, module) -> torch.Tensor | None:
    """Fused ``module(x)`` for ``x [B, C, T]`` -> ``[B, C, T]``, or ``None`` to use the reference."""
    if not kernels_enabled() or _tracing():
        return None
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] < 1:
        return None
    if unsupported_reason(module) is not None:
        return None
    act = module.act
    if x.shape[1] != act.alpha.numel():
        return None
    if x.is_cuda:
        if x.dtype not in _CUDA_DTYPES:
            return None
        ext = build.load_cuda()
    elif x.device.type == "cpu":
        if x.dtype not in _CPU_DTYPES:
            return None
        ext = build.load_cpu()
    else:
        return None
    if ext is None:
        return None
    is_beta = act.kernel_name == "snakebeta"
    beta = act.beta if is_beta else act.alpha
    eps = float(getattr(act, "no_div_by_zero", 1e-9))
    return AntiAliasedActivation.apply(
        x,
        act.alpha,
        beta,
        module.upsample.filter,
        module.downsample.lowpass.filter,
        ext,
        is_beta,
        bool(getattr(act, "alpha_logscale", False)),
        eps,
    )


def kernels_available() -> dict:
    """``{"enabled": bool, "cpu": bool, "cuda": bool}``: which fused kernels can run here (builds them if needed).

    ``cuda`` is True only when a GPU is visible and the CUDA extension builds.
    """
    cpu = build.load_cpu() is not None
    cuda = torch.cuda.is_available() and build.load_cuda() is not None
    return {"enabled": kernels_enabled(), "cpu": cpu, "cuda": cuda}
