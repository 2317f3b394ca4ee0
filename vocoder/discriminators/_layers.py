"""Small helpers shared by the discriminators: norms with official key names, padding, input checks.

Weight norm is :func:`vocoder.nn.weight_norm.weight_norm` (keys ``weight_g``/``weight_v``, as the generators
use) and spectral norm the hook-based ``torch.nn.utils.spectral_norm`` (``weight_orig``/``weight_u``/
``weight_v``): those are the keys of the official HiFi-GAN and BigVGAN discriminator checkpoints, so they load
with a plain ``load_state_dict``.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from ..nn.weight_norm import weight_norm as _weight_norm

__all__ = ["weight_norm", "spectral_norm", "norm_layer", "get_padding", "get_2d_padding", "check_wav"]


def weight_norm(module: nn.Module) -> nn.Module:
    """Weight norm over output channels with the official keys (``weight_g``, ``weight_v``)."""
    return _weight_norm(module, dim=0)


def _detach_weight(module: nn.Module, inputs, output) -> None:
    # the norm's pre-hook recomputes ``weight`` every forward; keeping a graph-free copy in between lets
    # ``copy.deepcopy`` work (as vocoder.nn.weight_norm does for weight norm)
    w = module.__dict__.get("weight")
    if isinstance(w, torch.Tensor) and w.grad_fn is not None:
        module.__dict__["weight"] = w.detach()


def spectral_norm(module: nn.Module) -> nn.Module:
    """Hook-based spectral norm (``weight_orig``, ``weight_u``, ``weight_v``)."""
    module = torch.nn.utils.spectral_norm(module)
    module.register_forward_hook(_detach_weight)
    return module


def norm_layer(use_spectral_norm: bool):
    return spectral_norm if use_spectral_norm else weight_norm


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of an odd kernel."""
    return (kernel_size * dilation - dilation) // 2


def get_2d_padding(kernel_size: Tuple[int, int], dilation: Tuple[int, int] = (1, 1)) -> Tuple[int, int]:
    return ((kernel_size[0] - 1) * dilation[0]) // 2, ((kernel_size[1] - 1) * dilation[1]) // 2


def check_wav(wav: torch.Tensor, who: str, min_length: int = 1) -> None:
    """Raise ``ValueError`` unless ``wav`` is a float tensor ``[B, 1, T]`` with ``T >= min_length``."""
    if not torch.is_tensor(wav):
        raise ValueError(f"{who}: expected a torch.Tensor [B, 1, T], got {type(wav).__name__}")
    if wav.dim() != 3 or wav.shape[1] != 1:
        raise ValueError(f"{who}: expected audio of shape [B, 1, T], got {tuple(wav.shape)}")
    if not wav.is_floating_point():
        raise ValueError(f"{who}: expected float audio, got dtype {wav.dtype}")
    if wav.shape[-1] < min_length:
        raise ValueError(f"{who}: audio too short, need at least {min_length} samples, got {wav.shape[-1]}")
