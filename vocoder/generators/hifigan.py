"""HiFi-GAN generator (Kong et al. 2020): transposed-conv upsampling + multi-receptive-field fusion of resblocks.

Same module names and forward as the official ``jik876/hifi-gan`` ``models.Generator`` (``conv_pre``, ``ups``,
``resblocks``, ``conv_post``; leaky ReLU 0.1 before each upsampler, the default 0.01 before ``conv_post``), so
official ``g_*`` state dicts load with a plain ``load_state_dict``. Presets V1 / V2 / V3 follow the paper's
Table (22.05 kHz, 80 mels, hop 256).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..audio.mel import MelConfig
from ..nn.blocks import LRELU_SLOPE, ResBlock1, ResBlock2
from ..nn.input_norm import check_input_norm, make_input_norm
from ..nn.twin_deconv import TwinDeconv1d
from ..nn.weight_normalization import remove_weight_norm, weight_norm
from ..nn.streaming import (StreamConv1d, StreamConvTranspose1d, StreamLayer, StreamPointwise, StreamSequential,
                            StreamSum, stream_input_norm, stream_resblock)
from .common import as_nested_tuple, as_tuple, check_generator_input, check_upsampling, mrf, mrf_resblocks
from .registry import resolve_config, register_generator, register_preset

__all__ = ["HiFiGANConfig", "HiFiGANGenerator", "HIFIGAN_V1", "HIFIGAN_V2", "HIFIGAN_V3", "stream_hifigan"]

#: the upsampling layers a HiFi-GAN config may choose (``HiFiGANConfig.upsample``)
UPSAMPLERS = ("transposed", "twin")

#: leaky ReLU slope before ``conv_post``: F.leaky_relu's default, as in the official code
POST_SLOPE = 0.01


@dataclass(frozen=True)
class HiFiGANConfig:
    """HiFi-GAN generator hyper-parameters; the defaults are V1 (13.92 M parameters)."""

    n_mels: int = 80
    upsample_rates: Tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: Tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock: str = "1"
    resblock_kernel_sizes: Tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: Tuple[Tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    #: ``None``: the input is our log-mel; ``"log10_standardize"``: ParallelWaveGAN-trained weights, whose input
    #: features are made from ours first (:class:`vocoder.nn.input_norm.MelStandardize`, statistics as buffers).
    input_norm: Optional[str] = None
    #: ``"transposed"``: HiFi-GAN's ``nn.ConvTranspose1d`` upsamplers; ``"twin"``: FA-GAN's anti-aliased twin
    #: deconvolution (:class:`vocoder.nn.twin_deconv.TwinDeconv1d`, keys ``ups.{i}.conv.*``; offline only)
    upsample: str = "transposed"

    def __post_init__(self):
        # Lists from JSON / YAML become tuples so the config stays hashable and comparable.
        object.__setattr__(self, "upsample_rates", as_tuple(self.upsample_rates, "upsample_rates"))
        object.__setattr__(self, "upsample_kernel_sizes", as_tuple(self.upsample_kernel_sizes, "upsample_kernel_sizes"))
        object.__setattr__(self, "resblock_kernel_sizes", as_tuple(self.resblock_kernel_sizes, "resblock_kernel_sizes"))
        object.__setattr__(self, "resblock_dilation_sizes",
                           as_nested_tuple(self.resblock_dilation_sizes, "resblock_dilation_sizes"))
        object.__setattr__(self, "resblock", str(self.resblock))
        check_input_norm(self.input_norm)
        if self.upsample not in UPSAMPLERS:
            raise ValueError(f"upsample must be one of {list(UPSAMPLERS)}, got {self.upsample!r}")
        if self.n_mels < 1:
            raise ValueError(f"n_mels must be >= 1, got {self.n_mels}")
        check_upsampling(self.upsample_rates, self.upsample_kernel_sizes, self.upsample_initial_channel,
                         self.resblock_kernel_sizes, self.resblock_dilation_sizes, self.resblock)

    @classmethod
    def from_official(cls, h: Mapping) -> "HiFiGANConfig":
        """From an official jik876/hifi-gan ``config.json`` dict (``num_mels``; training keys are ignored, missing
        architecture keys take the V1 defaults)."""
        kw = {k: h[k] for k in ("upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel", "resblock",
                                "resblock_kernel_sizes", "resblock_dilation_sizes") if k in h}
        for key in ("num_mels", "n_mels"):
            if key in h:
                kw["n_mels"] = h[key]
                break
        return cls(**kw)

    @property
    def hop_length(self) -> int:
        hop = 1
        for u in self.upsample_rates:
            hop *= u
        return hop


def _transposed(c_in: int, c_out: int, k: int, u: int) -> nn.Module:
    return weight_norm(nn.ConvTranspose1d(c_in, c_out, k, u, padding=(k - u) // 2))


def _twin(c_in: int, c_out: int, k: int, u: int) -> nn.Module:
    return TwinDeconv1d(c_in, c_out, k, u, padding=(k - u) // 2)


def stream_hifigan(gen: "HiFiGANGenerator") -> StreamSequential:
    """The streaming network of a HiFi-GAN generator (same weights, cached state; see :mod:`vocoder.nn.streaming`).

    ``upsample="twin"`` is refused: the twin's overlap correction depends on where the clip's edges are.
    """
    if gen.config.upsample != "transposed":
        raise ValueError(f"HiFi-GAN streaming supports upsample='transposed' only, this generator has "
                         f"upsample={gen.config.upsample!r} (FA-GAN's twin deconvolution runs offline only)")
    layers: List[StreamLayer] = stream_input_norm(gen) + [StreamConv1d.from_conv(gen.conv_pre)]
    nk = gen.num_kernels
    for i, up in enumerate(gen.ups):
        layers.append(StreamPointwise("leaky_relu", LRELU_SLOPE))
        layers.append(StreamConvTranspose1d.from_conv(up))
        blocks = [stream_resblock(gen.resblocks[i * nk + j]) for j in range(nk)]
        layers.append(StreamSum(blocks, up.out_channels, divisor=nk))
    layers += [StreamPointwise("leaky_relu", POST_SLOPE), StreamConv1d.from_conv(gen.conv_post), StreamPointwise("tanh")]
    return StreamSequential(layers)


@register_generator("hifigan", HiFiGANConfig, streaming=stream_hifigan)
class HiFiGANGenerator(nn.Module):
    """``forward(mel [B, n_mels, T]) -> wav [B, 1, T * hop_length]`` in [-1, 1] (tanh)."""

    def __init__(self, config: Optional[HiFiGANConfig] = None):
        super().__init__()
        self.config = config = resolve_config("hifigan", config)
        self.n_mels = config.n_mels
        self.hop_length = config.hop_length
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.num_upsamples = len(config.upsample_rates)
        ch0 = config.upsample_initial_channel

        self.input_norm = make_input_norm(config.input_norm, config.n_mels)
        self.conv_pre = weight_norm(nn.Conv1d(config.n_mels, ch0, 7, 1, padding=3))
        block_cls = ResBlock1 if config.resblock == "1" else ResBlock2
        upsampler = _twin if config.upsample == "twin" else _transposed
        self.ups = nn.ModuleList(
            upsampler(ch0 // 2 ** i, ch0 // 2 ** (i + 1), k, u)
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes))
        )
        self.resblocks, ch = mrf_resblocks(block_cls, ch0, self.num_upsamples, config.resblock_kernel_sizes,
                                           config.resblock_dilation_sizes)
        self.conv_post = weight_norm(nn.Conv1d(ch, 1, 7, 1, padding=3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        check_generator_input(mel, self.n_mels)
        if self.input_norm is not None:
            mel = self.input_norm(mel)
        x = self.conv_pre(mel)
        for i in range(self.num_upsamples):
            x = F.leaky_relu(x, LRELU_SLOPE)
            x = self.ups[i](x)
            x = mrf(self.resblocks, i, self.num_kernels, x)
        x = F.leaky_relu(x, POST_SLOPE)
        x = self.conv_post(x)
        return torch.tanh(x)

    def remove_weight_norm(self) -> None:
        """Fold weight norm into plain weights (for inference / export); idempotent."""
        remove_weight_norm(self.conv_pre)
        for up in self.ups:
            if isinstance(up, TwinDeconv1d):
                up.remove_weight_norm()
            else:
                remove_weight_norm(up)
        for block in self.resblocks:
            block.remove_weight_norm()
        remove_weight_norm(self.conv_post)


_MEL_22K = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0,
                     fmax=8000.0)

HIFIGAN_V1 = HiFiGANConfig()
HIFIGAN_V2 = HiFiGANConfig(upsample_initial_channel=128)
HIFIGAN_V3 = HiFiGANConfig(upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8), upsample_initial_channel=256,
                           resblock="2", resblock_kernel_sizes=(3, 5, 7),
                           resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)))

register_preset("hifigan_v1", "hifigan", HIFIGAN_V1, _MEL_22K, "HiFi-GAN V1 (13.92 M params), 22.05 kHz, 80 mels")
register_preset("hifigan_v2", "hifigan", HIFIGAN_V2, _MEL_22K, "HiFi-GAN V2 (0.92 M params), 22.05 kHz, 80 mels")
register_preset("hifigan_v3", "hifigan", HIFIGAN_V3, _MEL_22K, "HiFi-GAN V3 (1.46 M params), 22.05 kHz, 80 mels")
