"""Feature-matching loss (HiFi-GAN): L1 between D's feature maps on real and generated audio."""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["feature_matching_loss"]


def feature_matching_loss(real_fmaps: Sequence[Sequence[torch.Tensor]],
                          fake_fmaps: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """``sum over sub-discriminators and layers of mean(|real - fake|)``.

    This is HiFi-GAN / BigVGAN's ``feature_loss`` without its built-in factor 2: the caller applies the
    paper's weight (2) itself. ``real_fmaps`` are treated as targets (detached), so judging the real
    audio under ``torch.no_grad()`` gives the same value and the same generator gradient.
    """
    if len(real_fmaps) != len(fake_fmaps) or not real_fmaps:
        raise ValueError(f"need equally many non-empty feature-map lists, got {len(real_fmaps)} real and "
                         f"{len(fake_fmaps)} fake")
    terms = []
    for i, (dr, dg) in enumerate(zip(real_fmaps, fake_fmaps)):
        if len(dr) != len(dg):
            raise ValueError(f"sub-discriminator {i}: {len(dr)} real feature maps but {len(dg)} fake ones")
        for rl, gl in zip(dr, dg):
            if rl.shape != gl.shape:
                raise ValueError(f"sub-discriminator {i}: feature map shapes differ, real {tuple(rl.shape)} "
                                 f"vs fake {tuple(gl.shape)}")
            terms.append(torch.mean(torch.abs(rl.detach() - gl)))
    return torch.stack(terms).sum()
