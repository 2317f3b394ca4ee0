"""MelGAN generator (Kumar et al. 2019): transposed-conv upsampling with dilated residual stacks, reflection padding.

Layout equals the official ``descriptinc/melgan-neurips`` ``Generator`` (one ``model`` ``nn.Sequential``:
reflect-pad + 7-tap conv, then per ratio r: LeakyReLU(0.2), transposed conv (kernel 2r), residual stack with
dilations 1, 3, 9; then LeakyReLU, reflect-pad, 7-tap conv to one channel, tanh), all convs weight-normed, so
its state dicts (``model.{i}.*``) load directly. Channels start at ``ngf * 2**len(ratios)`` and halve per stage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn

from ..audio.mel import MelConfig
from ..nn.blocks import MelGANResBlock
from ..nn.input_norm import check_input_norm, make_input_norm
from ..nn.weight_normalization import remove_weight_norm, weight_norm
from ..nn.streaming import StreamSequential, stream_input_norm, stream_sequence
from .common import as_tuple, check_generator_input
from .registry import resolve_config, register_generator, register_preset

__all__ = ["MelGANConfig", "MelGANGenerator", "MELGAN"]


@dataclass(frozen=True)
class MelGANConfig:
    """MelGAN hyper-parameters; defaults are the paper's (ngf 32, ratios 8-8-2-2, 3 residual layers)."""

    n_mels: int = 80
    ngf: int = 32
    ratios: Tuple[int, ...] = (8, 8, 2, 2)
    n_residual_layers: int = 3  # dilations 3**j: 1, 3, 9
    #: as in :class:`vocoder.generators.hifigan.HiFiGANConfig` (``"log10_standardize"`` for ParallelWaveGAN weights)
    input_norm: Optional[str] = None

    def __post_init__(self):
        object.__setattr__(self, "ratios", as_tuple(self.ratios, "ratios"))
        if self.n_mels < 1 or self.ngf < 1 or self.n_residual_layers < 0:
            raise ValueError(f"n_mels and ngf must be >= 1 and n_residual_layers >= 0, got {self}")
        if not self.ratios or any(r < 1 for r in self.ratios):
            raise ValueError(f"ratios must be a non-empty sequence of positive ints, got {self.ratios}")
        check_input_norm(self.input_norm)

    @property
    def hop_length(self) -> int:
        hop = 1
        for r in self.ratios:
            hop *= r
        return hop


def stream_melgan(gen: "MelGANGenerator") -> StreamSequential:
    """The streaming network of a MelGAN generator (same weights, cached state; see :mod:`vocoder.nn.streaming`)."""
    return StreamSequential(stream_input_norm(gen) + stream_sequence(gen.model))


@register_generator("melgan", MelGANConfig, streaming=stream_melgan)
class MelGANGenerator(nn.Module):
    """``forward(mel [B, n_mels, T]) -> wav [B, 1, T * hop_length]`` in [-1, 1] (tanh)."""

    def __init__(self, config: Optional[MelGANConfig] = None):
        super().__init__()
        self.config = config = resolve_config("melgan", config)
        self.n_mels = config.n_mels
        self.hop_length = config.hop_length
        mult = 2 ** len(config.ratios)
        self.input_norm = make_input_norm(config.input_norm, config.n_mels)
        layers = [nn.ReflectionPad1d(3), weight_norm(nn.Conv1d(config.n_mels, mult * config.ngf, 7))]
        for r in config.ratios:
            ch = mult * config.ngf
            # kernel 2r, padding r//2 + r%2, output_padding r%2: exactly r samples out per sample in.
            layers += [nn.LeakyReLU(0.2),
                       weight_norm(nn.ConvTranspose1d(ch, ch // 2, kernel_size=2 * r, stride=r,
                                                      padding=r // 2 + r % 2, output_padding=r % 2))]
            layers += [MelGANResBlock(ch // 2, dilation=3 ** j) for j in range(config.n_residual_layers)]
            mult //= 2
        layers += [nn.LeakyReLU(0.2), nn.ReflectionPad1d(3), weight_norm(nn.Conv1d(config.ngf, 1, 7)), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    #: reflection padding needs more input samples than it pads (3 on the first conv)
    min_frames = 4

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        check_generator_input(mel, self.n_mels)
        if mel.shape[-1] < self.min_frames:
            raise ValueError(f"MelGAN needs at least {self.min_frames} mel frames (reflection padding), "
                             f"got {mel.shape[-1]}")
        if self.input_norm is not None:
            mel = self.input_norm(mel)
        return self.model(mel)

    def remove_weight_norm(self) -> None:
        """Fold weight norm into plain weights (for inference / export); idempotent."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                remove_weight_norm(m)


MELGAN = MelGANConfig()
register_preset("melgan", "melgan", MELGAN,
                MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0,
                          fmax=8000.0),
                "MelGAN (Kumar et al. 2019; 4.26 M params), 22.05 kHz, 80 mels (HiFi-GAN log-mel front end)")
