"""BigVGAN generator (Lee et al. 2023) and BigVGAN-v2: HiFi-GAN's layout with anti-aliased Snake AMP blocks.

Module names and forward equal NVIDIA's ``bigvgan.BigVGAN`` (``conv_pre``, ``ups.{i}.0``, ``resblocks``,
``activation_post``, ``conv_post``), so an official ``bigvgan_generator.pt`` ``["generator"]`` state dict loads
with a plain ``load_state_dict`` and gives the same waveform. Presets copy the official ``config.json`` files
(generator part here, STFT / mel part as the preset's :class:`MelConfig`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from ..audio.mel import MelConfig
from ..nn.blocks import AMPBlock1, AMPBlock2, make_activation
from ..nn.filters import Activation1d
from ..nn.weight_normalization import remove_weight_norm, weight_norm
from ..nn.streaming import (StreamActivation1d, StreamConv1d, StreamConvTranspose1d, StreamLayer, StreamPointwise,
                            StreamSequential, StreamSum, stream_amp_block, stream_input_norm)
from .common import as_nested_tuple, as_tuple, check_generator_input, check_upsampling, mrf, mrf_resblocks
from .registry import resolve_config, register_generator, register_preset

__all__ = ["BigVGANConfig", "BigVGANGenerator", "BIGVGAN_PRESETS"]


@dataclass(frozen=True)
class BigVGANConfig:
    """BigVGAN generator hyper-parameters; the defaults are BigVGAN-v2 24 kHz / 100 bands / 256x (112.4 M)."""

    n_mels: int = 100
    upsample_rates: Tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: Tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock: str = "1"
    resblock_kernel_sizes: Tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: Tuple[Tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: str = "snakebeta"
    snake_logscale: bool = True
    use_tanh_at_final: bool = True  # v2 checkpoints: False (the output is clamped to [-1, 1] instead)
    use_bias_at_final: bool = True  # v2 checkpoints: False (conv_post without bias)

    def __post_init__(self):
        object.__setattr__(self, "upsample_rates", as_tuple(self.upsample_rates, "upsample_rates"))
        object.__setattr__(self, "upsample_kernel_sizes", as_tuple(self.upsample_kernel_sizes, "upsample_kernel_sizes"))
        object.__setattr__(self, "resblock_kernel_sizes", as_tuple(self.resblock_kernel_sizes, "resblock_kernel_sizes"))
        object.__setattr__(self, "resblock_dilation_sizes",
                           as_nested_tuple(self.resblock_dilation_sizes, "resblock_dilation_sizes"))
        object.__setattr__(self, "resblock", str(self.resblock))
        if self.n_mels < 1:
            raise ValueError(f"n_mels must be >= 1, got {self.n_mels}")
        if self.activation not in ("snake", "snakebeta"):
            raise ValueError(f"activation must be 'snake' or 'snakebeta', got {self.activation!r}")
        check_upsampling(self.upsample_rates, self.upsample_kernel_sizes, self.upsample_initial_channel,
                         self.resblock_kernel_sizes, self.resblock_dilation_sizes, self.resblock)

    @property
    def hop_length(self) -> int:
        hop = 1
        for u in self.upsample_rates:
            hop *= u
        return hop

    @classmethod
    def from_official(cls, h: Mapping) -> "BigVGANConfig":
        """From an official ``config.json`` dict (``num_mels``; training keys are ignored)."""
        try:
            return cls(n_mels=h["num_mels"], upsample_rates=h["upsample_rates"],
                       upsample_kernel_sizes=h["upsample_kernel_sizes"],
                       upsample_initial_channel=h["upsample_initial_channel"], resblock=h["resblock"],
                       resblock_kernel_sizes=h["resblock_kernel_sizes"],
                       resblock_dilation_sizes=h["resblock_dilation_sizes"], activation=h["activation"],
                       snake_logscale=h["snake_logscale"], use_tanh_at_final=h.get("use_tanh_at_final", True),
                       use_bias_at_final=h.get("use_bias_at_final", True))
        except KeyError as e:
            raise ValueError(f"official BigVGAN config is missing {e.args[0]!r}; got keys {sorted(h)}") from None


def stream_bigvgan(gen: "BigVGANGenerator") -> StreamSequential:
    """The streaming network of a BigVGAN generator (same weights, cached state; see :mod:`vocoder.nn.streaming`)."""
    layers: List[StreamLayer] = stream_input_norm(gen) + [StreamConv1d.from_conv(gen.conv_pre)]
    nk = gen.num_kernels
    for i, stage in enumerate(gen.ups):
        out_ch = 0
        for up in stage:
            layers.append(StreamConvTranspose1d.from_conv(up))
            out_ch = up.out_channels
        blocks = [stream_amp_block(gen.resblocks[i * nk + j]) for j in range(nk)]
        layers.append(StreamSum(blocks, out_ch, divisor=nk))
    layers += [StreamActivation1d(gen.activation_post), StreamConv1d.from_conv(gen.conv_post),
               StreamPointwise("tanh" if gen.use_tanh_at_final else "clamp")]
    return StreamSequential(layers)


@register_generator("bigvgan", BigVGANConfig, streaming=stream_bigvgan)
class BigVGANGenerator(nn.Module):
    """``forward(mel [B, n_mels, T]) -> wav [B, 1, T * hop_length]`` in [-1, 1] (tanh, or clamp for v2)."""

    def __init__(self, config: Optional[BigVGANConfig] = None):
        super().__init__()
        self.config = config = resolve_config("bigvgan", config)
        self.n_mels = config.n_mels
        self.hop_length = config.hop_length
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.num_upsamples = len(config.upsample_rates)
        ch0 = config.upsample_initial_channel

        self.conv_pre = weight_norm(nn.Conv1d(config.n_mels, ch0, 7, 1, padding=3))
        block_cls = AMPBlock1 if config.resblock == "1" else AMPBlock2
        # Each stage is a one-element ModuleList, as in the official code (keys `ups.{i}.0.*`).
        self.ups = nn.ModuleList(
            nn.ModuleList([weight_norm(nn.ConvTranspose1d(ch0 // 2 ** i, ch0 // 2 ** (i + 1), k, u,
                                                          padding=(k - u) // 2))])
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes))
        )
        self.resblocks, ch = mrf_resblocks(
            lambda c, k, d: block_cls(c, k, d, activation=config.activation, snake_logscale=config.snake_logscale),
            ch0, self.num_upsamples, config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        self.activation_post = Activation1d(make_activation(config.activation, ch, config.snake_logscale))
        self.use_bias_at_final = config.use_bias_at_final
        self.use_tanh_at_final = config.use_tanh_at_final
        self.conv_post = weight_norm(nn.Conv1d(ch, 1, 7, 1, padding=3, bias=config.use_bias_at_final))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        check_generator_input(mel, self.n_mels)
        x = self.conv_pre(mel)
        for i in range(self.num_upsamples):
            for up in self.ups[i]:
                x = up(x)
            x = mrf(self.resblocks, i, self.num_kernels, x)
        x = self.activation_post(x)
        x = self.conv_post(x)
        if self.use_tanh_at_final:
            return torch.tanh(x)
        return torch.clamp(x, min=-1.0, max=1.0)

    def remove_weight_norm(self) -> None:
        """Fold weight norm into plain weights (for inference / export); idempotent."""
        remove_weight_norm(self.conv_pre)
        for stage in self.ups:
            for up in stage:
                remove_weight_norm(up)
        for block in self.resblocks:
            block.remove_weight_norm()
        remove_weight_norm(self.conv_post)


def _mel(sr: int, n_fft: int, hop: int, n_mels: int, fmax: Optional[float]) -> MelConfig:
    return MelConfig(sample_rate=sr, n_fft=n_fft, hop_length=hop, win_length=n_fft, n_mels=n_mels, fmin=0.0,
                     fmax=fmax)


_V1_256X = dict(upsample_rates=(4, 4, 2, 2, 2, 2), upsample_kernel_sizes=(8, 8, 4, 4, 4, 4),
                upsample_initial_channel=1536)
_V1_BASE = dict(upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(16, 16, 4, 4), upsample_initial_channel=512)
_V2 = dict(use_tanh_at_final=False, use_bias_at_final=False)
_V2_512X = dict(upsample_rates=(8, 4, 2, 2, 2, 2), upsample_kernel_sizes=(16, 8, 4, 4, 4, 4),
                upsample_initial_channel=1536)

# name -> (generator config, mel config, parameters with weight norm as the official README states them)
BIGVGAN_PRESETS = {
    "bigvgan_base_22khz_80band": (BigVGANConfig(n_mels=80, **_V1_BASE), _mel(22050, 1024, 256, 80, 8000.0), "14 M"),
    "bigvgan_22khz_80band": (BigVGANConfig(n_mels=80, **_V1_256X), _mel(22050, 1024, 256, 80, 8000.0), "112 M"),
    "bigvgan_base_24khz_100band": (BigVGANConfig(n_mels=100, **_V1_BASE), _mel(24000, 1024, 256, 100, 12000.0),
                                   "14 M"),
    "bigvgan_24khz_100band": (BigVGANConfig(n_mels=100, **_V1_256X), _mel(24000, 1024, 256, 100, 12000.0), "112 M"),
    "bigvgan_v2_22khz_80band_256x": (BigVGANConfig(n_mels=80, **_V1_256X, **_V2), _mel(22050, 1024, 256, 80, None),
                                     "112 M"),
    "bigvgan_v2_22khz_80band_fmax8k_256x": (BigVGANConfig(n_mels=80, **_V1_256X, **_V2),
                                            _mel(22050, 1024, 256, 80, 8000.0), "112 M"),
    "bigvgan_v2_24khz_100band_256x": (BigVGANConfig(n_mels=100, **_V1_256X, **_V2),
                                      _mel(24000, 1024, 256, 100, None), "112.4 M"),
    "bigvgan_v2_44khz_128band_256x": (BigVGANConfig(n_mels=128, **_V1_256X, **_V2),
                                      _mel(44100, 1024, 256, 128, None), "112 M"),
    "bigvgan_v2_44khz_128band_512x": (BigVGANConfig(n_mels=128, **_V2_512X, **_V2),
                                      _mel(44100, 2048, 512, 128, None), "122.2 M"),
}

for _name, (_cfg, _mel_cfg, _params) in BIGVGAN_PRESETS.items():
    register_preset(_name, "bigvgan", _cfg, _mel_cfg,
                    f"BigVGAN{'-v2' if '_v2_' in _name else ''} ({_params} params), {_mel_cfg.sample_rate} Hz, "
                    f"{_mel_cfg.n_mels} mels, hop {_mel_cfg.hop_length}; official config")
