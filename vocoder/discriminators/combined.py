"""Several discriminators judged as one: their logits and feature maps are concatenated in order."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

__all__ = ["CombinedDiscriminator"]


class CombinedDiscriminator(nn.Module):
    """``CombinedDiscriminator([mpd, mrd])(wav [B, 1, T]) -> (logits, feature_maps)``, each list the
    concatenation of the members' lists (e.g. 5 MPD periods then 3 MRD resolutions).

    Members live in ``self.discriminators`` so their state-dict keys read ``discriminators.{i}.<member key>``.
    """

    def __init__(self, discriminators: Sequence[nn.Module]):
        super().__init__()
        discriminators = list(discriminators)
        if not discriminators:
            raise ValueError("CombinedDiscriminator needs at least one discriminator, got an empty list")
        for d in discriminators:
            if not isinstance(d, nn.Module):
                raise ValueError(f"CombinedDiscriminator expects nn.Module discriminators, got {type(d).__name__}")
        self.discriminators = nn.ModuleList(discriminators)

    def forward(self, wav: torch.Tensor) -> Tuple[List[torch.Tensor], List[List[torch.Tensor]]]:
        logits, fmaps = [], []
        for d in self.discriminators:
            y, f = d(wav)
            logits.extend(y)
            fmaps.extend(f)
        return logits, fmaps
