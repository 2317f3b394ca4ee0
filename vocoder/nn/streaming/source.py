"""Streaming pieces of the source-filter generators (HiFTNet) beyond the standard layers: a frame-wise copy of a
small stateless module (Snake, the source's spectrum features, the phase of a residual head). The source itself
streams as :class:`vocoder.nn.harmonic_source.StreamHarmonicSource`."""
from __future__ import annotations

import copy
from typing import List

import torch
import torch.nn as nn

from .base import StreamLayer

__all__ = ["StreamFramewise"]


class StreamFramewise(StreamLayer):
    """A copy of a module that maps each frame (or sample) on its own, ``[B, C, t] -> [B, C', t]`` (no state),
    run as it is, so the arithmetic is the offline one."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(module)

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        return self.module(x)
