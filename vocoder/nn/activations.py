"""Periodic activations of BigVGAN: Snake and SnakeBeta (Ziyin et al. 2020), one parameter set per channel.

``Snake(x) = x + 1 / (alpha + eps) * sin(alpha * x)^2`` and ``SnakeBeta(x) = x + 1 / (beta + eps) *
sin(alpha * x)^2`` with ``eps = 1e-9``. With ``alpha_logscale`` the stored parameters are logarithms
(initialised to 0, so ``exp`` gives 1). Parameter names (``alpha``, ``beta``) and the operation order match
BigVGAN's ``activations.py``, so official state dicts load and outputs agree bit for bit.
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["Snake", "SnakeBeta", "EPS"]

EPS = 1e-9  # keeps 1 / alpha finite when a (linear-scale) alpha is trained to zero


def _init(in_features: int, alpha: float, logscale: bool) -> nn.Parameter:
    # Log-scale parameters start at 0 (exp -> 1); the `* alpha` mirrors the official initialisation exactly.
    base = torch.zeros(in_features) if logscale else torch.ones(in_features)
    return nn.Parameter(base * alpha)


class Snake(nn.Module):
    """``x + 1/alpha * sin^2(alpha x)`` on ``[B, C, T]``, ``alpha`` of shape ``[C]``."""

    #: the fused anti-aliased kernel computing this activation (see :mod:`vocoder.kernels.dispatch`)
    kernel_name = "snake"

    def __init__(self, in_features: int, alpha: float = 1.0, alpha_trainable: bool = True,
                 alpha_logscale: bool = False):
        super().__init__()
        self.in_features = in_features
        self.alpha_logscale = alpha_logscale
        self.alpha = _init(in_features, alpha, alpha_logscale)
        self.alpha.requires_grad = alpha_trainable
        self.no_div_by_zero = EPS

    def effective_alpha(self) -> torch.Tensor:
        """The frequency actually applied, ``[C]`` (``exp(alpha)`` in log scale)."""
        return torch.exp(self.alpha) if self.alpha_logscale else self.alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.unsqueeze(0).unsqueeze(-1)  # [1, C, 1]
        if self.alpha_logscale:
            alpha = torch.exp(alpha)
        return x + (1.0 / (alpha + self.no_div_by_zero)) * torch.pow(torch.sin(x * alpha), 2)

    def extra_repr(self) -> str:
        return f"{self.in_features}, alpha_logscale={self.alpha_logscale}"


class SnakeBeta(Snake):
    """``x + 1/beta * sin^2(alpha x)`` on ``[B, C, T]``; ``alpha`` (frequency) and ``beta`` (magnitude) ``[C]``."""

    kernel_name = "snakebeta"

    def __init__(self, in_features: int, alpha: float = 1.0, alpha_trainable: bool = True,
                 alpha_logscale: bool = False):
        super().__init__(in_features, alpha, alpha_trainable, alpha_logscale)
        # The official code initialises beta with the same `alpha` argument; keep that.
        self.beta = _init(in_features, alpha, alpha_logscale)
        self.beta.requires_grad = alpha_trainable

    def effective_beta(self) -> torch.Tensor:
        return torch.exp(self.beta) if self.alpha_logscale else self.beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.unsqueeze(0).unsqueeze(-1)  # [1, C, 1]
        beta = self.beta.unsqueeze(0).unsqueeze(-1)
        if self.alpha_logscale:
            alpha = torch.exp(alpha)
            beta = torch.exp(beta)
        return x + (1.0 / (beta + self.no_div_by_zero)) * torch.pow(torch.sin(x * alpha), 2)
