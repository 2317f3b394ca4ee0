"""Input normalisation in front of a generator that was trained on other features than our log-mel.

ParallelWaveGAN (kan-bayashi) trains its generators on ``log10`` mels standardised per band with the training set's
statistics (``stats.h5``: ``mean``, ``scale``). :class:`MelStandardize` turns our natural-log mel into exactly those
features, so an imported ParallelWaveGAN generator takes the same input as every other model here.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["INPUT_NORMS", "MelStandardize", "check_input_norm", "make_input_norm"]

#: ``input_norm`` values a generator config accepts (``None``: the generator takes our log-mel as is).
INPUT_NORMS = ("log10_standardize",)


class MelStandardize(nn.Module):
    """``mel [B, n_mels, T]`` (natural log) -> ``(mel / ln 10 - mean) / scale`` per band, ``[B, n_mels, T]``.

    ``mean`` and ``scale`` are buffers (saved in the state dict); they start as 0 and 1 and are loaded from the
    imported model's statistics.
    """

    def __init__(self, n_mels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("scale", torch.ones(n_mels))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel / math.log(10.0) - self.mean[:, None]) / self.scale[:, None]

    def extra_repr(self) -> str:
        return f"n_mels={self.mean.numel()}, log10 then (x - mean) / scale"


def check_input_norm(kind) -> None:
    """ValueError unless ``kind`` is ``None`` or one of :data:`INPUT_NORMS` (generator configs call this)."""
    if kind is not None and kind not in INPUT_NORMS:
        raise ValueError(f"input_norm must be None or one of {INPUT_NORMS}, got {kind!r}")


def make_input_norm(kind, n_mels: int):
    """The module for a config's ``input_norm`` (``None`` -> ``None``); ValueError for an unknown kind."""
    check_input_norm(kind)
    return None if kind is None else MelStandardize(n_mels)
