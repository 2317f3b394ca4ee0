"""Small pieces every generator shares: config normalisation and the input check before the first conv."""
from __future__ import annotations

from typing import Any, Callable, Sequence, Tuple

import torch
import torch.nn as nn

from ..audio.mel import check_mel as _check_mel_input

__all__ = ["as_tuple", "as_nested_tuple", "check_generator_input", "check_upsampling", "mrf_resblocks", "mrf"]


def as_tuple(v: Any, name: str) -> Tuple[int, ...]:
    """A flat int sequence (list from JSON/YAML, or tuple) as a tuple; ValueError otherwise."""
    try:
        return tuple(int(x) for x in v)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of ints, got {v!r}") from None


def as_nested_tuple(v: Any, name: str) -> Tuple[Tuple[int, ...], ...]:
    try:
        return tuple(tuple(int(x) for x in row) for row in v)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of int sequences, got {v!r}") from None


def check_generator_input(mel: torch.Tensor, n_mels: int) -> None:
    """Raise ValueError unless ``mel`` is a floating ``[B, n_mels, T]`` tensor with ``T >= 1``: a generator's
    ``forward`` contract, O(1). The values (NaN / inf, the range) are checked once where a mel enters the API
    (:func:`vocoder.audio.mel.check_mel` in ``Vocoder`` and ``StreamingVocoder``), never per forward (a scan would
    sync every call)."""
    if not isinstance(mel, torch.Tensor):
        raise ValueError(f"expected a mel tensor [B, {n_mels}, T], got {type(mel).__name__}")
    _check_mel_input(mel, n_mels, layout="batch", finite=False)


def mrf_resblocks(make_block: Callable[[int, int, Sequence[int]], nn.Module], initial_channel: int,
                  num_upsamples: int, kernel_sizes: Sequence[int], dilation_sizes: Sequence[Sequence[int]]
                  ) -> Tuple[nn.ModuleList, int]:
    """The residual blocks of HiFi-GAN's multi-receptive-field fusion (BigVGAN's too): after upsampling stage ``i``
    (``initial_channel / 2^(i+1)`` channels) one ``make_block(channels, kernel, dilations)`` per kernel size, flat
    in that order (the official ``resblocks.{i * num_kernels + j}`` keys). Returns ``(blocks, last channels)``."""
    blocks = nn.ModuleList()
    ch = initial_channel
    for i in range(num_upsamples):
        ch = initial_channel // 2 ** (i + 1)
        for k, d in zip(kernel_sizes, dilation_sizes):
            blocks.append(make_block(ch, k, d))
    return blocks, ch


def mrf(resblocks: nn.ModuleList, stage: int, num_kernels: int, x: torch.Tensor) -> torch.Tensor:
    """Multi-receptive-field fusion after upsampling ``stage``: the mean of its ``num_kernels`` blocks on ``x``."""
    xs = resblocks[stage * num_kernels](x)
    for j in range(1, num_kernels):
        xs = xs + resblocks[stage * num_kernels + j](x)
    return xs / num_kernels


def check_upsampling(rates, kernels, initial_channel: int, resblock_kernels, resblock_dilations, resblock) -> None:
    """Validate a HiFi-GAN-style upsampling stack so that the output is exactly ``T * prod(rates)`` samples."""
    if len(rates) == 0:
        raise ValueError("upsample_rates must not be empty")
    if len(rates) != len(kernels):
        raise ValueError(f"upsample_rates {rates} and upsample_kernel_sizes {kernels} must have the same length")
    for u, k in zip(rates, kernels):
        # Transposed conv with padding (k-u)//2 gives T*u + (k-u) - 2*((k-u)//2) samples: exact only for even k-u.
        if u < 1 or k < u or (k - u) % 2:
            raise ValueError(f"each upsample kernel must be >= its rate with an even difference, got rate {u}, "
                             f"kernel {k}")
    if initial_channel % (2 ** len(rates)):
        raise ValueError(f"upsample_initial_channel ({initial_channel}) must be divisible by 2**{len(rates)}")
    if len(resblock_kernels) == 0 or len(resblock_kernels) != len(resblock_dilations):
        raise ValueError(f"resblock_kernel_sizes {resblock_kernels} and resblock_dilation_sizes "
                         f"{resblock_dilations} must be non-empty and of the same length")
    if any(k % 2 == 0 for k in resblock_kernels):
        raise ValueError(f"resblock_kernel_sizes must be odd (for 'same' padding), got {resblock_kernels}")
    if resblock not in ("1", "2"):
        raise ValueError(f"resblock must be '1' or '2', got {resblock!r}")
