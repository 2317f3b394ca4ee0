"""Adversarial losses over a list of discriminator outputs (one logits tensor per sub-discriminator).

``"lsgan"`` (least squares, HiFi-GAN / BigVGAN): D minimises ``mean((1 - D(x))^2) + mean(D(G(z))^2)``,
G minimises ``mean((1 - D(G(z)))^2)``. ``"hinge"`` (MelGAN): D minimises ``mean(relu(1 - D(x))) +
mean(relu(1 + D(G(z))))``, G minimises ``-mean(D(G(z)))``. Totals are sums over sub-discriminators, as in
HiFi-GAN's ``generator_loss`` / ``discriminator_loss``.

Registered (:mod:`.registry`): ``losses.adv`` (the generator's term, objective ``losses.kind``) and ``losses.disc``
(the discriminators' loss).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Argument, LossSpec, Weight, one_of, register_loss

__all__ = ["generator_adversarial_loss", "discriminator_adversarial_loss", "ADVERSARIAL_KINDS",
           "GeneratorAdversarialLoss", "DiscriminatorAdversarialLoss"]

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


class GeneratorAdversarialLoss(nn.Module):
    """``(real, fake) -> {"adv": scalar}``, each a ``(logits, feature_maps)`` judgement; only the fake logits count."""

    def __init__(self, kind: str = "lsgan"):
        super().__init__()
        self.kind = kind

    def forward(self, real, fake) -> Dict[str, torch.Tensor]:
        return {"adv": generator_adversarial_loss(fake[0], kind=self.kind)[0]}


class DiscriminatorAdversarialLoss(nn.Module):
    """``(real_logits, fake_logits) -> {"disc": scalar}``."""

    def __init__(self, kind: str = "lsgan"):
        super().__init__()
        self.kind = kind

    def forward(self, real_logits, fake_logits) -> Dict[str, torch.Tensor]:
        return {"disc": discriminator_adversarial_loss(real_logits, fake_logits, kind=self.kind)[0]}


register_loss(LossSpec(
    "adversarial", "judgement",
    (Argument("kind", "lsgan", "adversarial objective: lsgan (HiFi-GAN, BigVGAN) | hinge (MelGAN)",
              one_of(*ADVERSARIAL_KINDS)),
     Weight("adv", 1.0, "generator adversarial loss", log="adv_g")),
    lambda ctx: GeneratorAdversarialLoss(ctx.settings.kind),
    "the generator's adversarial loss, summed over sub-discriminators (HiFi-GAN, BigVGAN 1; Parallel WaveGAN 4)"))
register_loss(LossSpec(
    "discriminator", "discrimination", (Weight("disc", 1.0, "discriminator loss"),),
    lambda ctx: DiscriminatorAdversarialLoss(ctx.settings.kind),
    "the discriminators' adversarial loss on real and generated audio (objective `losses.kind`)"))
