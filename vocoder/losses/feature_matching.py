"""Feature-matching loss (HiFi-GAN): L1 between D's feature maps on real and generated audio.

Registered (:mod:`.registry`) as ``losses.fm``."""
from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import nn

from .registry import LossSpec, Weight, register_loss

__all__ = ["feature_matching_loss", "FeatureMatchingLoss"]


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


class FeatureMatchingLoss(nn.Module):
    """``(real, fake) -> {"fm": scalar}``, each a ``(logits, feature_maps)`` judgement."""

    def forward(self, real, fake) -> Dict[str, torch.Tensor]:
        return {"fm": feature_matching_loss(real[1], fake[1])}


register_loss(LossSpec(
    "feature_matching", "judgement", (Weight("fm", 2.0, "feature-matching weight"),),
    lambda ctx: FeatureMatchingLoss(),
    "L1 between the discriminators' feature maps on real and generated audio (HiFi-GAN, BigVGAN 2; MelGAN 10)"))
