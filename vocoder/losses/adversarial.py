"""Adversarial losses over a list of discriminator outputs (one logits tensor per sub-discriminator).

``"lsgan"`` (least squares, HiFi-GAN / BigVGAN): D minimises ``mean((1 - D(x))^2) + mean(D(G(z))^2)``,
G minimises ``mean((1 - D(G(z)))^2)``. ``"hinge"`` (MelGAN): D minimises ``mean(relu(1 - D(x))) +
mean(relu(1 + D(G(z))))``, G minimises ``-mean(D(G(z)))``. Totals are sums over sub-discriminators, as in
HiFi-GAN's ``generator_loss`` / ``discriminator_loss``.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = ["generator_adversarial_loss", "discriminator_adversarial_loss", "ADVERSARIAL_KINDS"]

ADVERSARIAL_KINDS = ("lsgan", "hinge")


def _check(kind: str, logits: Sequence[torch.Tensor], what: str) -> None:
    if kind not in ADVERSARIAL_KINDS:
        raise ValueError(f"adversarial loss kind must be one of {ADVERSARIAL_KINDS}, got {kind!r}")
    if isinstance(logits, torch.Tensor) or len(logits) == 0:
        raise ValueError(f"{what} must be a non-empty list of tensors (one per sub-discriminator), got "
                         f"{type(logits).__name__}{'' if isinstance(logits, torch.Tensor) else ' of length 0'}")


def generator_adversarial_loss(fake_logits: Sequence[torch.Tensor], kind: str = "lsgan"
                               ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Generator side. ``fake_logits``: D's outputs on generated audio. Returns ``(total, per-item losses)``."""
    _check(kind, fake_logits, "fake_logits")
    if kind == "lsgan":
        items = [torch.mean((1 - dg) ** 2) for dg in fake_logits]
    else:
        items = [-torch.mean(dg) for dg in fake_logits]
    return torch.stack(items).sum(), items


def discriminator_adversarial_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor],
                                   kind: str = "lsgan") -> Tuple[torch.Tensor, List[torch.Tensor], List[torch.Tensor]]:
    """Discriminator side. Returns ``(total, real losses, fake losses)``, one entry per sub-discriminator."""
    _check(kind, real_logits, "real_logits")
    _check(kind, fake_logits, "fake_logits")
    if len(real_logits) != len(fake_logits):
        raise ValueError(f"real_logits and fake_logits must have equal lengths, got {len(real_logits)} "
                         f"and {len(fake_logits)}")
    if kind == "lsgan":
        real = [torch.mean((1 - dr) ** 2) for dr in real_logits]
        fake = [torch.mean(dg ** 2) for dg in fake_logits]
    else:
        real = [torch.mean(F.relu(1 - dr)) for dr in real_logits]
        fake = [torch.mean(F.relu(1 + dg)) for dg in fake_logits]
    return torch.stack(real + fake).sum(), real, fake
