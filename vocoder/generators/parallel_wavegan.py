"""Parallel WaveGAN generator (Yamamoto et al. 2020): a non-causal WaveNet that turns Gaussian noise at the sample
rate into speech, conditioned on the mel through a conv-in + upsampling network.

Layout and names equal the ``parallel_wavegan`` package's ``ParallelWaveGANGenerator`` with its defaults
(``ConvInUpsampleNetwork`` without nonlinearity, nearest interpolation, one-bin frequency kernel; no causal convs;
``first_conv``, ``upsample_net.conv_in``, ``upsample_net.upsample.up_layers.{2i+1}``, ``conv_layers.{i}.*``,
``last_conv_layers.{1,3}``), every conv weight-normed, so its state dicts load with a plain ``load_state_dict``.

The noise: ``forward(mel)`` draws ``torch.randn(1, 1, T * hop)`` per item from torch's global generator, as the
package's ``inference`` does, so the same ``torch.manual_seed`` gives the same audio; ``forward(mel, noise=z)``
takes ``z`` as given; ``forward(mel, seed=s)`` draws the counter-based noise of :mod:`vocoder.nn.counter_noise`
(a function of the sample index), which is what a stream draws: a streamed decode equals ``forward(mel,
seed=generator.noise_seed)`` for every chunking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..audio.mel import MelConfig
from ..nn.counter_noise import counter_noise, counter_normal
from ..nn.input_norm import check_input_norm, make_input_norm
from ..nn.streaming import StreamConv1d, StreamSequential, stream_input_norm
from ..nn.streaming.wavenet import StreamNoiseInput, StreamRepeat, StreamWaveNetBlock, StreamWaveNetOutput
from ..nn.wavenet import ConvInUpsampleNetwork, WaveNetResidualBlock
from ..nn.weight_normalization import effective_weight, remove_weight_norm, weight_norm
from .common import as_tuple, check_generator_input
from .registry import register_generator, register_preset, resolve_config

__all__ = ["ParallelWaveGANConfig", "ParallelWaveGANGenerator", "PARALLEL_WAVEGAN"]


@dataclass(frozen=True)
class ParallelWaveGANConfig:
    """Parallel WaveGAN hyper-parameters; defaults are the paper's (30 layers in 3 dilation cycles 1..512, 64
    residual / 128 gate / 64 skip channels, 80 mels with a 2-frame context window each side, upsampling 4-4-4-4)."""

    n_mels: int = 80  # the package's aux_channels
    layers: int = 30
    stacks: int = 3  # dilation cycles: dilation 2 ** (layer % (layers // stacks))
    residual_channels: int = 64
    gate_channels: int = 128
    skip_channels: int = 64
    kernel_size: int = 3
    aux_context_window: int = 2
    upsample_scales: Tuple[int, ...] = (4, 4, 4, 4)
    #: as in :class:`vocoder.generators.hifigan.HiFiGANConfig` (``"log10_standardize"`` for ParallelWaveGAN weights)
    input_norm: Optional[str] = None

    def __post_init__(self):
        object.__setattr__(self, "upsample_scales", as_tuple(self.upsample_scales, "upsample_scales"))
        ints = dict(n_mels=self.n_mels, layers=self.layers, stacks=self.stacks,
                    residual_channels=self.residual_channels, gate_channels=self.gate_channels,
                    skip_channels=self.skip_channels, kernel_size=self.kernel_size)
        bad = {k: v for k, v in ints.items() if v < 1}
        if bad:
            raise ValueError(f"ParallelWaveGANConfig: {bad} must be >= 1")
        if self.layers % self.stacks:
            raise ValueError(f"layers ({self.layers}) must be a multiple of stacks ({self.stacks})")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (non-causal 'same' padding), got {self.kernel_size}")
        if self.gate_channels % 2:
            raise ValueError(f"gate_channels must be even (tanh and sigmoid halves), got {self.gate_channels}")
        if self.aux_context_window < 0:
            raise ValueError(f"aux_context_window must be >= 0, got {self.aux_context_window}")
        if not self.upsample_scales or any(s < 1 for s in self.upsample_scales):
            raise ValueError(f"upsample_scales must be a non-empty sequence of positive ints, got "
                             f"{self.upsample_scales}")
        check_input_norm(self.input_norm)

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_scales)

    @property
    def dilations(self) -> Tuple[int, ...]:
        per_stack = self.layers // self.stacks
        return tuple(2 ** (i % per_stack) for i in range(self.layers))

    @property
    def wavenet_lookahead_samples(self) -> int:
        """Right receptive field of the WaveNet in samples: ``(kernel_size - 1) / 2`` times the dilations' sum."""
        return (self.kernel_size - 1) // 2 * sum(self.dilations)

    @property
    def lookahead_samples(self) -> int:
        """How many samples after the end of a frame its input still reaches (the right receptive field, in output
        samples): the conv-in's ``aux_context_window`` frames, each upsampling conv's ``s`` samples at its rate,
        and the WaveNet's. The streaming delay is this in frames, rounded up (the paper's configuration:
        512 + 340 + 3069 = 3921 samples, 16 frames)."""
        hop, rate, up = self.hop_length, 1, 0
        for s in self.upsample_scales:
            rate *= s
            up += s * (hop // rate)
        return self.aux_context_window * hop + up + self.wavenet_lookahead_samples


def stream_parallel_wavegan(gen: "ParallelWaveGANGenerator") -> StreamSequential:
    """The streaming network of a Parallel WaveGAN generator (same weights, cached state): the mel's replication
    padding and conv-in, the upsampling (each ``(1, 2s + 1)`` Conv2d as a depthwise conv), then the WaveNet on the
    counter noise of seed ``gen.noise_seed``. Its delay is the conv-in's context window plus the upsampler's and
    the WaveNet's right reach (:attr:`ParallelWaveGANConfig.lookahead_samples`) in frames, rounded up."""
    cfg = gen.config
    ctx = cfg.aux_context_window
    layers = stream_input_norm(gen)
    layers.append(StreamConv1d.from_conv(gen.upsample_net.conv_in, ctx, ctx, "replicate"))
    ups = gen.upsample_net.upsample.up_layers
    for i, s in enumerate(cfg.upsample_scales):
        w = effective_weight(ups[2 * i + 1]).detach().reshape(1, 1, -1)  # one kernel for every mel band
        layers.append(StreamRepeat(s))
        layers.append(StreamConv1d(w.expand(cfg.n_mels, 1, w.shape[-1]).contiguous(), None, groups=cfg.n_mels,
                                   pad_left=s, pad_right=s))
    layers.append(StreamNoiseInput(gen.first_conv, cfg.skip_channels, gen.noise_seed))
    layers += [StreamWaveNetBlock(block, cfg.n_mels) for block in gen.conv_layers]
    layers.append(StreamWaveNetOutput(gen.last_conv_layers[1], gen.last_conv_layers[3], cfg.skip_channels,
                                      cfg.layers))
    return StreamSequential(layers)


@register_generator("parallel_wavegan", ParallelWaveGANConfig, streaming=stream_parallel_wavegan)
class ParallelWaveGANGenerator(nn.Module):
    """``forward(mel [B, n_mels, T], noise=None, seed=None) -> wav [B, 1, T * hop_length]`` (not bounded: no
    final tanh, as the paper).

    ``noise``: ``[B, 1, T * hop]`` taken as given. ``seed``: the counter-based noise of that seed (what streaming
    draws). Neither: ``torch.randn(1, 1, T * hop)`` per item, in batch order, from torch's global generator on the
    CPU (as ``parallel_wavegan``'s ``inference``, also when the model is on a GPU), moved to the mel's device.

    Attribute ``noise_seed`` (default 0, not saved): the seed a stream of this generator draws its noise with.
    """

    def __init__(self, config: Optional[ParallelWaveGANConfig] = None):
        super().__init__()
        self.config = config = resolve_config("parallel_wavegan", config)
        self.n_mels = config.n_mels
        self.hop_length = config.hop_length
        self.noise_seed = 0
        self.input_norm = make_input_norm(config.input_norm, config.n_mels)
        self.first_conv = nn.Conv1d(1, config.residual_channels, 1)
        self.upsample_net = ConvInUpsampleNetwork(config.upsample_scales, config.n_mels, config.aux_context_window)
        self.conv_layers = nn.ModuleList(
            WaveNetResidualBlock(config.kernel_size, config.residual_channels, config.gate_channels,
                                 config.skip_channels, config.n_mels, d) for d in config.dilations)
        self.last_conv_layers = nn.ModuleList([nn.ReLU(), nn.Conv1d(config.skip_channels, config.skip_channels, 1),
                                               nn.ReLU(), nn.Conv1d(config.skip_channels, 1, 1)])
        for m in self.modules():  # the package applies weight norm to every Conv1d and Conv2d
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                weight_norm(m)

    def make_noise(self, mel: torch.Tensor, seed: Optional[int] = None) -> torch.Tensor:
        """The noise ``forward(mel, seed=seed)`` uses: ``[B, 1, T * hop]`` on ``mel``'s device and dtype."""
        batch, n = mel.shape[0], mel.shape[-1] * self.hop_length
        if seed is not None:
            z = counter_noise(seed, n, batch=batch, device=mel.device)
        else:
            z = torch.cat([torch.randn(1, 1, n) for _ in range(batch)])
        return z.to(device=mel.device, dtype=mel.dtype)

    def forward(self, mel: torch.Tensor, noise: Optional[torch.Tensor] = None,
                seed: Optional[int] = None) -> torch.Tensor:
        check_generator_input(mel, self.n_mels)
        expected = (mel.shape[0], 1, mel.shape[-1] * self.hop_length)
        if noise is None:
            noise = self.make_noise(mel, seed)
        elif seed is not None:
            raise ValueError("pass noise= or seed=, not both")
        elif not isinstance(noise, torch.Tensor) or tuple(noise.shape) != expected:
            got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ValueError(f"noise must be a tensor [B, 1, T * hop] = {list(expected)} for this mel, got {got}")
        if self.input_norm is not None:
            mel = self.input_norm(mel)
        ctx = self.config.aux_context_window
        c = self.upsample_net(F.pad(mel, (ctx, ctx), mode="replicate") if ctx else mel)
        x = self.first_conv(noise.to(device=mel.device, dtype=mel.dtype))
        skips = 0
        for f in self.conv_layers:
            x, h = f(x, c)
            skips = skips + h
        x = skips * math.sqrt(1.0 / len(self.conv_layers))
        for f in self.last_conv_layers:
            x = f(x)
        return x

    def graph_forward(self, mel: torch.Tensor) -> torch.Tensor:
        """What the exported graphs (TorchScript, ONNX) compute: ``forward(mel, seed=noise_seed)``, the counter
        noise drawn with tensor ops, so the graph needs no RNG and gives the audio a stream of this model gives."""
        items = torch.arange(mel.shape[0], device=mel.device)
        n = mel.shape[-1] * self.hop_length
        noise = counter_normal(self.noise_seed, items, torch.zeros(1, dtype=torch.long), n).unsqueeze(1)
        return self.forward(mel, noise=noise.to(mel.dtype))

    def remove_weight_norm(self) -> None:
        """Fold weight norm into plain weights (for inference / export); idempotent."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                remove_weight_norm(m)


PARALLEL_WAVEGAN = ParallelWaveGANConfig()
register_preset("parallel_wavegan", "parallel_wavegan", PARALLEL_WAVEGAN,
                MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0,
                          fmax=8000.0),
                "Parallel WaveGAN (Yamamoto et al. 2020; 1.35 M params as its reference code builds it, the paper "
                "states 1.44 M): WaveNet on Gaussian noise, 22.05 kHz, 80 mels (HiFi-GAN log-mel front end), hop 256 "
                "= upsampling 4-4-4-4")
