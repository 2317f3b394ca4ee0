"""Counter-based Gaussian noise: sample ``n`` of item ``b`` under seed ``s`` is a pure function of ``(s, b, n)``.

Why: a generator that takes noise (ParallelWaveGAN's WaveNet, a harmonic-plus-noise source) must draw the same
noise for sample ``n`` whether the utterance is decoded at once or streamed in chunks of any size; a sequential
RNG cannot skip ahead, a hash of the sample index can. Item ``b``'s key is the ``b``-th output of SplitMix64 seeded
with ``s``; its sample ``n`` is the ``n``-th output of SplitMix64 seeded with that key, whose 64 bits give two
32-bit uniforms, turned into one standard normal by Box-Muller in float64. Only int64 tensor ops (wrapping
multiplication, masked logical shifts), so it runs on any device and under ``torch.jit.script``.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

__all__ = ["counter_normal", "counter_noise", "counter_gaussian", "splitmix64", "item_keys", "mix64",
           "logical_shift_right"]

# SplitMix64's constants are written as literals below, as signed int64 (the same bits: int64 multiplication
# wraps like uint64's), because TorchScript does not capture module globals:
# 0x9E3779B97F4A7C15 = -7046029254386353131 (the increment), 0xBF58476D1CE4E5B9 = -4658895280553007687 and
# 0x94D049BB133111EB = -7723592293110705685 (the finaliser).


def logical_shift_right(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bits (``>>`` on int64 is arithmetic: the sign bit would smear in)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 bits: a bijection of the 64 bits with full avalanche."""
    x = (x ^ logical_shift_right(x, 30)) * -4658895280553007687
    x = (x ^ logical_shift_right(x, 27)) * -7723592293110705685
    return x ^ logical_shift_right(x, 31)


def splitmix64(key: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The ``index``-th (0-based) output of SplitMix64 seeded with ``key``, as int64 bits (broadcasting)."""
    return mix64(key + (index + 1) * -7046029254386353131)


def counter_gaussian(key: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Standard normal float64 samples, a pure function of ``(key, index)`` (int64 tensors, broadcasting):
    Box-Muller on one SplitMix64 output, ``sqrt(-2 ln u1) cos(2 pi u2)``, ``u1 = (hi32 + 0.5) / 2^32`` in (0, 1),
    ``u2 = lo32 / 2^32`` (tails reach 6.7 sigma)."""
    h = splitmix64(key, index)
    u1 = (logical_shift_right(h, 32).to(torch.float64) + 0.5) * 2.3283064365386963e-10  # 2^-32
    u2 = (h & 0xFFFFFFFF).to(torch.float64) * 2.3283064365386963e-10
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(6.283185307179586 * u2)


def item_keys(seed: int, items: torch.Tensor) -> torch.Tensor:
    """Each item's noise key (int64, shape of ``items``): the ``item``-th output of SplitMix64 seeded with ``seed``."""
    return splitmix64(torch.full_like(items.to(torch.int64), seed), items.to(torch.int64))


def counter_normal(seed: int, items: torch.Tensor, offset: torch.Tensor, n: int) -> torch.Tensor:
    """Standard normal noise ``[B, n]`` (float32, on ``items.device``) for samples ``offset .. offset + n - 1`` of
    the items ``items`` (int64 ``[B]``, one key per batch row) under ``seed``: sample ``m`` of item ``i`` is
    :func:`counter_gaussian` of ``(item_keys(seed, i), m)``.

    ``offset`` is an int64 tensor (``[]`` or ``[1]``) so a streaming layer can keep it in its state; the result
    for a sample depends only on ``(seed, item, sample index)``."""
    device = items.device
    index = torch.arange(n, dtype=torch.int64, device=device).reshape(1, -1) + offset.to(device).reshape(1, 1)
    return counter_gaussian(item_keys(seed, items.to(device)).reshape(-1, 1), index).to(torch.float32)


def counter_noise(seed: int, n: int, offset: int = 0, batch: int = 1,
                  device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
    """``[batch, 1, n]`` float32 noise for samples ``offset .. offset + n - 1`` of items ``0 .. batch - 1``:
    what a streamed decode with ``seed`` draws for the same samples, whatever its chunking."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not -2 ** 63 <= seed < 2 ** 63:
        raise ValueError(f"seed must be an int that fits in int64, got {seed!r}")
    if n < 0 or offset < 0 or batch < 1:
        raise ValueError(f"need n >= 0, offset >= 0 and batch >= 1, got n={n}, offset={offset}, batch={batch}")
    items = torch.arange(batch, dtype=torch.int64, device=device)
    return counter_normal(seed, items, torch.tensor(offset, dtype=torch.int64), n).unsqueeze(1)
