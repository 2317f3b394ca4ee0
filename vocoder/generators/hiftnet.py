"""Source-filter Fourier generators (HiFTNet, Li et al. 2023): an F0 network reads the mel, a harmonic-plus-noise
source turns its F0 into an excitation, and the excitation's STFT steers a generator whose last layer predicts an
STFT for an inverse STFT.

Two families, one idea:

- ``hiftnet``: HiFTNet's generator, iSTFTNet's C8C8I (HiFi-GAN-style upsampling by 8 x 8, Snake residual blocks,
  then an inverse STFT with n_fft 16 and hop 4, as the paper's 22.05 kHz configuration). The source's STFT (same
  n_fft and hop) is brought to each upsampling stage's rate by a strided conv and a residual block and added
  there; ``conv_post`` predicts the log-amplitude and a phase ``sin(x)`` per bin. ``source=False`` (with
  ``resblock_activation="leaky_relu"``) is iSTFTNet C8C8I itself (no F0 network, HiFi-GAN's residual blocks).
- ``hiftnet_frame``: the Fourier family's ConvNeXt backbone at frame rate (:mod:`.vocos`'s classes), reading the
  mel next to the source's STFT at the head's n_fft and hop (log-amplitude, and the cos / sin of its phase); the
  head predicts the log-amplitude and a phase *residual* added to the source's phase (its projection starts at
  zero: the untrained model has the source's phase). ``prior="pinv"``: the default model's amplitude prior
  (FreeV): the backbone reads the mel's pinv log-amplitude instead of the mel, and predicts a residual on it.

Differences from the official code, each for exact streaming or export: the source's STFT is fed as real and
imaginary parts (HiFTNet: magnitude and ``atan2`` phase, whose 2 pi jumps for bins near zero follow float rounding,
so a chunked decode could differ by 2 pi in an input; ONNX has no atan2) -- the same 18 channels and parameter
count; the STFTs use the uncentred "same" framing (reflect padding of ``(n_fft - hop) / 2``: exactly ``T * 64``
frames, where HiFTNet's centred STFT has one more and reflect-pads the generator's last stage by one to match); the
amplitude ``exp(x)`` is clipped at 100 (the Fourier family's safeguard, :data:`.vocos.MAX_AMPLITUDE`); the
F0 network is ours (:class:`vocoder.nn.f0_predictor.F0Predictor`, from the mel) instead of the JDC network on a
spectrogram, and the source (:mod:`vocoder.nn.harmonic_source`) keeps its phase in fixed point and draws
counter-based noise, so decoding in chunks makes the same samples.

The F0 network gets no gradient from the generator's losses (F0 reaches the source's sines without one, as in
HiFTNet, whose sine generator runs under ``no_grad``): it is trained on its own (``scripts/train_f0_predictor.py``)
and loaded here. ``f0_init: PATH`` loads it when the generator is built (a file of
:func:`~vocoder.nn.f0_predictor.f0_predictor_checkpoint`, its config checked, or a bare ``F0Predictor`` state dict),
``freeze_f0: true`` also takes it out of the optimiser (``requires_grad=False``) and keeps it in eval mode, as
HiFTNet freezes its pretrained JDC network. The loaded weights are part of the generator's state dict from then on,
so a saved model holds them; the built generator's ``config.f0_init`` is ``None`` (a checkpoint does not refer to
the file).

Shapes: ``forward(mel [B, n_mels, T]) -> wav [B, 1, T * hop]``; ``excitation(mel) -> [B, 1, T * hop]``;
``hiftnet_frame`` also ``spectrum(mel) -> (log_amplitude, phase)``, each ``[B, n_fft // 2 + 1, T]``.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..audio.mel import MelConfig, pinv_basis, pinv_log_amplitude
from ..nn.activations import Snake
from ..nn.blocks import LRELU_SLOPE, ResBlock1, get_padding
from ..nn.convnext import InverseSTFT, synthesis_dtype
from ..nn.f0_predictor import CHECKPOINT_FORMAT as F0_CHECKPOINT_FORMAT, F0Predictor, stream_f0_predictor
from ..nn.fast_conv import FastConv1d
from ..nn.harmonic_source import HarmonicSource, StreamHarmonicSource, harmonic_excitation
from ..nn.phase_refinement import DEFAULT_MOMENTUM, refine_phase
from ..nn.phase_retrieval import retrieve_phase
from ..nn.streaming import (StreamChannelNorm, StreamConcat, StreamConv1d, StreamConvNeXtPointwise,
                            StreamConvTranspose1d, StreamFourierHead, StreamIdentity, StreamISTFT, StreamLayer,
                            StreamPointwise, StreamSequential, StreamSum, stream_resblock)
from ..nn.streaming.source import StreamFramewise
from ..nn.weight_normalization import remove_weight_norm, weight_norm
from .common import as_nested_tuple, as_tuple, check_generator_input, check_upsampling, mrf, mrf_resblocks
from .registry import register_generator, register_preset, resolve_config
from .vocos import MAX_AMPLITUDE, PRIOR_FLOOR, PRIORS, FourierHead, VocosBackbone, VocosConfig

__all__ = ["HiFTNetConfig", "HiFTNetGenerator", "HiFTNetFrameConfig", "HiFTNetFrameGenerator", "SnakeResBlock",
           "SourceSTFT", "HIFTNET_22KHZ", "ISTFTNET_C8C8I_22KHZ", "HIFTNET_FRAME_22KHZ", "stream_hiftnet",
           "stream_hiftnet_frame"]

#: leaky ReLU slope before ``conv_post``: F.leaky_relu's default, as in HiFi-GAN / HiFTNet
POST_SLOPE = 0.01
#: floor of the source amplitude whose log the frame-rate backbone reads
SOURCE_FLOOR = 1e-5
ACTIVATIONS = ("snake", "leaky_relu")


# ------------------------------------------------------------------------------------------------ configs
@dataclass(frozen=True)
class _SourceFields:
    """What both families share: the mel, the F0 network, the harmonic-plus-noise source."""

    n_mels: int = 80
    sample_rate: int = 22050
    #: the source: ``harmonics`` overtones above F0, sine amplitude, noise std in voiced frames, noise seed
    harmonics: int = 8
    sine_amp: float = 0.1
    noise_std: float = 0.003
    seed: int = 0
    #: the F0 network (:class:`~vocoder.nn.f0_predictor.F0Predictor`); 192 channels: the pretrained one the recipes
    #: load (``recipes/warm_start/f0_predictor_22khz.pt``)
    f0_channels: int = 192
    f0_kernel_size: int = 5
    f0_layers: int = 6
    f0_min: float = 50.0
    f0_max: float = 1100.0
    #: the F0 network's weights: a file of ``f0_predictor_checkpoint`` (``scripts/train_f0_predictor.py``) or a bare
    #: ``F0Predictor`` state dict, read when the generator is built (a relative path: from the working directory,
    #: else from the repository)
    f0_init: Optional[str] = None
    #: keep the F0 network fixed (no gradient; eval mode while the generator trains)
    freeze_f0: bool = False

    def _check_source(self) -> None:
        if self.n_mels < 1 or self.sample_rate < 1:
            raise ValueError(f"n_mels and sample_rate must be >= 1, got {self.n_mels}, {self.sample_rate}")
        if self.harmonics < 0 or self.sine_amp < 0 or self.noise_std < 0:
            raise ValueError(f"harmonics, sine_amp and noise_std must be >= 0, got {self.harmonics}, "
                             f"{self.sine_amp}, {self.noise_std}")
        if not 0 < self.f0_min < self.f0_max:
            raise ValueError(f"need 0 < f0_min < f0_max, got {self.f0_min}, {self.f0_max}")
        if self.f0_init is not None and not isinstance(self.f0_init, (str, os.PathLike)):
            raise ValueError(f"f0_init must be a path to an F0 predictor checkpoint, got {self.f0_init!r}")


@dataclass(frozen=True)
class HiFTNetConfig(_SourceFields):
    """HiFTNet's generator; the defaults are the paper's 22.05 kHz configuration (``hiftnet_22khz``)."""

    upsample_rates: Tuple[int, ...] = (8, 8)
    upsample_kernel_sizes: Tuple[int, ...] = (16, 16)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: Tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: Tuple[Tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    #: ``"snake"`` (HiFTNet) or ``"leaky_relu"`` (iSTFTNet / HiFi-GAN's ResBlock1)
    resblock_activation: str = "snake"
    #: the source's residual block after each stage's strided conv: kernel per stage (HiFTNet: 7, the last 11)
    source_resblock_kernel_sizes: Tuple[int, ...] = (7, 11)
    source_resblock_dilations: Tuple[int, ...] = (1, 3, 5)
    #: the inverse STFT of the head (and the STFT of the source)
    istft_n_fft: int = 16
    istft_hop_length: int = 4
    #: ``False``: no F0 network and no source (iSTFTNet)
    source: bool = True

    def __post_init__(self):
        for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes",
                     "source_resblock_kernel_sizes", "source_resblock_dilations"):
            object.__setattr__(self, name, as_tuple(getattr(self, name), name))
        object.__setattr__(self, "resblock_dilation_sizes",
                           as_nested_tuple(self.resblock_dilation_sizes, "resblock_dilation_sizes"))
        self._check_source()
        check_upsampling(self.upsample_rates, self.upsample_kernel_sizes, self.upsample_initial_channel,
                         self.resblock_kernel_sizes, self.resblock_dilation_sizes, "1")
        if self.resblock_activation not in ACTIVATIONS:
            raise ValueError(f"resblock_activation must be one of {ACTIVATIONS}, got {self.resblock_activation!r}")
        if len(self.source_resblock_kernel_sizes) != len(self.upsample_rates):
            raise ValueError(f"one source_resblock_kernel_sizes entry per upsampling stage: "
                             f"{self.source_resblock_kernel_sizes} for {len(self.upsample_rates)} stages")
        if any(k % 2 == 0 for k in self.source_resblock_kernel_sizes):
            raise ValueError(f"source_resblock_kernel_sizes must be odd, got {self.source_resblock_kernel_sizes}")
        _check_istft(self.istft_n_fft, self.istft_hop_length)
        if not self.source and (self.f0_init is not None or self.freeze_f0):
            raise ValueError("f0_init / freeze_f0 need the source (source=False has no F0 network)")

    @property
    def hop_length(self) -> int:
        """Samples per mel frame: the upsampling times the inverse STFT's hop."""
        return math.prod(self.upsample_rates) * self.istft_hop_length


@dataclass(frozen=True)
class HiFTNetFrameConfig(_SourceFields):
    """The frame-rate variant: Vocos's ConvNeXt backbone on ``[mel, source STFT features]``, a Fourier head with a
    phase residual on the source's phase. ``n_fft`` / ``hop_length`` / ``padding`` are the head's inverse STFT
    (and the source's STFT); ``hop_length`` is the mel hop."""

    dim: int = 384
    intermediate_dim: int = 1152
    num_layers: int = 8
    layer_scale_init_value: Optional[float] = None
    n_fft: int = 1024
    hop_length: int = 256
    padding: str = "same"
    #: the backbone also reads the cos / sin of the source's phase (else its log-amplitude only)
    source_phase_input: bool = True
    #: ``"pinv"``: the default model's amplitude prior (FreeV): the backbone reads ``log A0`` of the mel
    #: (``[B, n_fft // 2 + 1, T]``) instead of the mel, and the log-amplitude is ``log A0`` plus a residual whose
    #: projection starts at zero; ``fmin`` / ``fmax`` are the mel filterbank's it inverts
    prior: Optional[str] = None
    fmin: float = 0.0
    fmax: Optional[float] = 8000.0

    def __post_init__(self):
        self._check_source()
        if min(self.dim, self.intermediate_dim, self.num_layers) < 1:
            raise ValueError(f"dim, intermediate_dim and num_layers must be >= 1, got {self.dim}, "
                             f"{self.intermediate_dim}, {self.num_layers}")
        if self.padding != "same":
            raise ValueError(f"hiftnet_frame frames its STFTs with padding 'same' only, got {self.padding!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")
        _check_istft(self.n_fft, self.hop_length)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    #: the filterbank the prior inverts, from the same fields as the vocos family's
    prior_mel_config = VocosConfig.prior_mel_config


def _check_istft(n_fft: int, hop: int) -> None:
    if (n_fft - hop) % 2 or not 0 < hop <= n_fft // 2:
        raise ValueError(f"need 0 < hop <= n_fft / 2 and n_fft - hop even, got n_fft {n_fft}, hop {hop}")


# ------------------------------------------------------------------------------------------------ pieces
class SnakeResBlock(nn.Module):
    """HiFTNet's residual block: HiFi-GAN's ResBlock1 with Snake (one ``alpha`` per channel, linear scale, starting
    at 1) instead of leaky ReLU: per dilation d, ``x += conv1(snake(conv_d(snake(x))))``. ``activations``
    interleaves the pairs ``[a1_0, a2_0, a1_1, ...]`` (as :class:`~vocoder.nn.blocks.AMPBlock1`). ``[B, C, T]``."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList([_wn_conv(channels, kernel_size, d) for d in dilation])
        self.convs2 = nn.ModuleList([_wn_conv(channels, kernel_size, 1) for _ in dilation])
        self.activations = nn.ModuleList([Snake(channels) for _ in range(2 * len(dilation))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            xt = c2(self.activations[2 * i + 1](c1(self.activations[2 * i](x))))
            x = xt + x
        return x

    def remove_weight_norm(self) -> None:
        for c in list(self.convs1) + list(self.convs2):
            remove_weight_norm(c)


def _wn_conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    return weight_norm(FastConv1d(channels, channels, kernel_size, 1, dilation=dilation,
                                  padding=get_padding(kernel_size, dilation)))


def stream_snake_resblock(block: SnakeResBlock) -> StreamLayer:
    ch = block.convs1[0].in_channels
    layers: List[StreamLayer] = []
    for i, (c1, c2) in enumerate(zip(block.convs1, block.convs2)):
        f = StreamSequential([StreamFramewise(block.activations[2 * i]), StreamConv1d.from_conv(c1),
                              StreamFramewise(block.activations[2 * i + 1]), StreamConv1d.from_conv(c2)])
        layers.append(StreamSum([f, StreamIdentity()], ch))
    return StreamSequential(layers)


class SourceSTFT(nn.Module):
    """Excitation ``[B, 1, T * hop]`` -> its STFT as ``[real, imaginary]`` ``[B, 2 * (n_fft // 2 + 1), T]``: Hann
    window of ``n_fft``, the "same" framing (reflect padding of ``(n_fft - hop) / 2`` on both sides, as
    :func:`vocoder.nn.convnext.analysis_frames`), computed as one strided conv with the DFT basis, which the
    streaming network runs as a :class:`~vocoder.nn.streaming.StreamConv1d` (same weights, same padding)."""

    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        _check_istft(n_fft, hop_length)
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.n_bins = self.n_fft // 2 + 1
        self.pad = (self.n_fft - self.hop_length) // 2
        k = torch.arange(self.n_bins, dtype=torch.float64)[:, None]
        t = torch.arange(self.n_fft, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * ((k * t) % self.n_fft) / self.n_fft  # reduced first: exact angles for large k * t
        window = torch.hann_window(self.n_fft, dtype=torch.float64)
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
        # deterministic from n_fft: not saved
        self.register_buffer("basis", basis[:, None, :].float(), persistent=False)

    def forward(self, excitation: torch.Tensor) -> torch.Tensor:
        x = F.pad(excitation, (self.pad, self.pad), mode="reflect")
        return F.conv1d(x, self.basis.to(x.dtype), stride=self.hop_length)

    def stream(self) -> StreamConv1d:
        return StreamConv1d(self.basis, None, self.hop_length, 1, 1, self.pad, self.pad, "reflect")


class SourceFeatures(nn.Module):
    """``[real, imaginary] [B, 2F, T]`` -> ``[log amplitude, cos phase, sin phase] [B, 3F, T]`` (or the log
    amplitude alone): what the frame-rate backbone reads of the source. The phase as ``(R, I) / |R + iI|``
    (``(1, 0)`` where both are 0), never an angle: continuous, and no atan2 in the graph."""

    def __init__(self, n_bins: int, with_phase: bool):
        super().__init__()
        self.n_bins, self.with_phase = int(n_bins), bool(with_phase)
        self.floor = SOURCE_FLOOR  # an attribute: TorchScript (the streaming network) takes no global constants

    def forward(self, ri: torch.Tensor) -> torch.Tensor:
        real, imag = ri[:, :self.n_bins], ri[:, self.n_bins:]
        radius = torch.sqrt(real * real + imag * imag)
        log_amp = torch.log(torch.clamp(radius, min=self.floor))
        if not self.with_phase:
            return log_amp
        cos, sin = _unit(real, imag, radius)
        return torch.cat([log_amp, cos, sin], dim=1)


def _unit(real: torch.Tensor, imag: torch.Tensor, radius: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    zero = radius == 0
    safe = torch.where(zero, torch.ones_like(radius), radius)
    return torch.where(zero, torch.ones_like(real), real / safe), torch.where(zero, torch.zeros_like(imag), imag / safe)


class MelAndSourceFeatures(nn.Module):
    """``[mel, source real, source imaginary] [B, n_mels + 2F, T]`` -> ``[mel, SourceFeatures]``: the frame-rate
    backbone's input."""

    def __init__(self, n_mels: int, n_bins: int, with_phase: bool):
        super().__init__()
        self.n_mels = int(n_mels)
        self.features = SourceFeatures(n_bins, with_phase)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, :self.n_mels], self.features(x[:, self.n_mels:])], dim=1)


class ResidualPhase(nn.Module):
    """``[log_amplitude, residual, source real, source imaginary] [B, 4F, T]`` -> ``[log_amplitude, phase]``
    ``[B, 2F, T]`` with ``phase = atan2(I, R) + residual`` (the source's phase plus the predicted residual).
    ``with_prior``: ``[log_amplitude, residual, prior, R, I] [B, 5F, T]``, the log-amplitude ``prior + log_amplitude``
    (the offline generator's sum, in its order)."""

    def __init__(self, n_bins: int, with_prior: bool = False):
        super().__init__()
        self.n_bins = int(n_bins)
        self.with_prior = bool(with_prior)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.n_bins
        s = 3 * f if self.with_prior else 2 * f  # the source's R, I
        log_amp = x[:, 2 * f:3 * f] + x[:, :f] if self.with_prior else x[:, :f]
        phase = torch.atan2(x[:, s + f:s + 2 * f], x[:, s:s + f]) + x[:, f:2 * f]
        return torch.cat([log_amp, phase], dim=1)


class PriorAndSource(nn.Module):
    """``[mel, source R, source I] [B, n_mels + 2F, T]`` -> ``[log A0, R, I] [B, 3F, T]``: the mel replaced by the
    pinv amplitude prior of :func:`~vocoder.audio.mel.pinv_log_amplitude` (frame-wise, no context), in the
    mel's dtype."""

    def __init__(self, basis: torch.Tensor, n_mels: int):
        super().__init__()
        self.register_buffer("basis", basis, persistent=False)  # from the config: not saved
        self.n_mels = int(n_mels)
        self.floor = PRIOR_FLOOR  # an attribute: TorchScript reads no module globals

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel = x[:, :self.n_mels]
        return torch.cat([pinv_log_amplitude(self.basis, mel, self.floor).to(mel.dtype), x[:, self.n_mels:]], dim=1)


class SinePhase(nn.Module):
    """``conv_post``'s ``[log_amplitude, x] [B, 2F, T]`` -> ``[log_amplitude, sin(x)]``: HiFTNet's (iSTFTNet's)
    phase output."""

    def __init__(self, n_bins: int):
        super().__init__()
        self.n_bins = int(n_bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, :self.n_bins], torch.sin(x[:, self.n_bins:])], dim=1)


# ------------------------------------------------------------------------------------------------ shared base
class _SourceFilter(nn.Module):
    """The F0 network and the source, shared by both families; F0 init / freezing; ``vocoder info``'s summary."""

    def _build_source(self, config: _SourceFields, hop_length: int) -> None:
        self.f0_predictor = F0Predictor(config.n_mels, config.f0_channels, config.f0_kernel_size, config.f0_layers,
                                        config.f0_min, config.f0_max)
        self.source = HarmonicSource(config.sample_rate, hop_length, config.harmonics, config.sine_amp,
                                     config.noise_std, config.seed)
        if config.f0_init is not None:
            _load_f0(self.f0_predictor, str(config.f0_init), config.sample_rate, hop_length)
            # The weights now live in this generator's state dict: a checkpoint must not need the file.
            self.config = dataclasses.replace(config, f0_init=None)
        if config.freeze_f0:
            self.f0_predictor.requires_grad_(False)
            self.f0_predictor.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "f0_predictor", None) is not None and self.config.freeze_f0:
            self.f0_predictor.eval()
        return self

    def f0(self, mel: torch.Tensor, float64: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """``mel [B, n_mels, T] -> (f0_hz [B, T]``, 0 where unvoiced; ``voiced [B, T]`` bool), no gradient.

        The F0 network runs in float64 (its float32 weights cast per call): the source's phase is a running sum
        of F0, so a rounding difference in F0 becomes a phase drift that grows with the utterance, and one in the
        voiced logit near 0 flips a frame's voicing. In float32 a chunked F0 network (streaming) differs from the
        whole utterance's by ~1e-6 in log-F0 (measured on hiftnet_frame_22khz: its stream then differed from the
        offline decode by 1.4e-4 after 41 frames, over every family's tolerance of 1e-4); in float64 by ~1e-15,
        and the stream by 4e-7. ``float64=False``: the network as it is (the exported graphs: ONNX Runtime has no
        float64 convolution, and ``torch.func`` refuses traces)."""
        net = self.f0_predictor
        if not float64:
            return net.f0(mel)
        weights = {k: v.double() for k, v in itertools.chain(net.named_parameters(), net.named_buffers())}
        with torch.no_grad(), torch.autocast(mel.device.type, enabled=False):  # no bf16 convs under mixed precision
            log_f0, logit = torch.func.functional_call(net, weights, (mel.double(),))
        voiced = logit > 0  # F0Predictor.f0's rule
        return torch.where(voiced, torch.exp(log_f0), torch.zeros_like(log_f0)), voiced

    def excitation(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel [B, n_mels, T] -> [B, 1, T * hop]``: the harmonic-plus-noise source from the predicted F0."""
        f0, voiced = self.f0(mel)
        return self.source(f0, voiced)[0]

    def graph_excitation(self, mel: torch.Tensor) -> torch.Tensor:
        """:meth:`excitation` for the exported graphs: the F0 network in float32 (see :meth:`f0`) and the source's
        arithmetic (:func:`~vocoder.nn.harmonic_source.harmonic_excitation`) without its input checks
        (``bool(isfinite(f0).all())`` and the like: branches on values, which ``torch.export`` cannot trace; the F0
        network's output passes them by construction)."""
        f0, voiced = self.f0(mel, float64=False)
        src = self.source
        state = src.initial_state(f0.shape[0], f0.device)
        return harmonic_excitation(f0, voiced, state, src.merge.weight, src.sample_rate, src.hop_length,
                                   src.sine_amp, src.noise_std)[0]

    def f0_summary(self) -> Dict[str, Any]:
        """What ``vocoder info`` shows of the F0 network."""
        cfg = self.config
        net = self.f0_predictor
        return {"network": type(net).__name__, "parameters": sum(p.numel() for p in net.parameters()),
                "layers": cfg.f0_layers, "channels": cfg.f0_channels, "kernel_size": cfg.f0_kernel_size,
                "range_hz": [cfg.f0_min, cfg.f0_max], "lookahead_frames": int(net.lookahead),
                "frozen": bool(cfg.freeze_f0),
                "source_harmonics": cfg.harmonics}

    def stream_source(self) -> StreamSequential:
        """mel ``[B, n_mels, t]`` -> excitation ``[B, 1, t * hop]``, streamed; the F0 network in float64, as
        :meth:`f0` runs it."""
        f0_net = copy.deepcopy(self.f0_predictor).double()
        cast = _ToDtypeOf(f0_net.conv_out.weight, self.source.merge.weight.dtype)
        return StreamSequential([StreamFramewise(cast), stream_f0_predictor(f0_net),
                                 StreamHarmonicSource(self.source)])


class _ToDtypeOf(nn.Module):
    """``x -> x`` in the F0 network's dtype (float64; its streamed copy's), the streamed F0 network's input cast.

    ``network_dtype``, registered first, is an empty buffer of the generator's own dtype: :class:`StreamingVocoder
    <vocoder.streaming.StreamingVocoder>` takes a network's dtype (its input's and its states') from the first
    floating buffer it meets, which in ``hiftnet_frame``'s network would otherwise be the float64 F0 network's."""

    def __init__(self, like: torch.Tensor, network_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.register_buffer("network_dtype", torch.zeros(0, dtype=network_dtype))
        self.register_buffer("f0_dtype", torch.zeros(0, dtype=like.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.f0_dtype.dtype)


#: the repository checkout (where ``recipes/`` is) of an editable install: a relative ``f0_init`` not found from
#: the working directory is looked up there, so recipes can name ``recipes/warm_start/...`` wherever they run
_REPO_ROOT = Path(__file__).resolve().parents[2]


def _f0_file(path: str) -> str:
    tried = [path] if os.path.isabs(path) else [path, str(_REPO_ROOT / path)]
    for p in tried:
        if os.path.isfile(p):
            return p
    raise ValueError(f"f0_init: no file {' or '.join(map(repr, tried))} (expected an F0 predictor checkpoint or "
                     f"state dict, e.g. recipes/warm_start/f0_predictor_22khz.pt)")


def _load_f0(net: F0Predictor, path: str, sample_rate: int, hop_length: int) -> None:
    """Load ``path`` into ``net``: a file of :func:`~vocoder.nn.f0_predictor.f0_predictor_checkpoint` (its config
    and mel checked against this generator's) or a bare ``F0Predictor`` state dict."""
    path = _f0_file(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(ckpt, dict) and ckpt.get("format") == F0_CHECKPOINT_FORMAT:
        want = net.config()
        got = dict(ckpt.get("config") or {})
        wrong = [f"{k}: file {got.get(k)!r}, generator {v!r}" for k, v in want.items() if got.get(k) != v]
        mel = dict(ckpt.get("mel") or {})
        for k, v in (("sample_rate", sample_rate), ("hop_length", hop_length)):
            if k in mel and mel[k] != v:
                wrong.append(f"mel {k}: file {mel[k]!r}, generator {v!r}")
        if wrong:
            raise ValueError(f"f0_init {path!r} is an F0 network for other settings: {'; '.join(wrong)}")
        ckpt = ckpt.get("state_dict")
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(f"f0_init {path!r}: expected an F0 predictor checkpoint or a state dict (name -> tensor) "
                         f"of F0Predictor, got {type(ckpt).__name__}")
    own = net.state_dict()
    missing, unexpected = sorted(set(own) - set(ckpt)), sorted(set(ckpt) - set(own))
    wrong = sorted(k for k in set(own) & set(ckpt) if own[k].shape != ckpt[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"f0_init {path!r} does not fit this F0 network (n_mels / f0_channels / f0_kernel_size / "
                         f"f0_layers): missing {missing[:5]}, unexpected {unexpected[:5]}, other shapes {wrong[:5]}")
    net.load_state_dict({k: v.float() for k, v in ckpt.items()})


# ------------------------------------------------------------------------------------------------ hiftnet
def stream_hiftnet(gen: "HiFTNetGenerator") -> StreamSequential:
    """Stage ``i`` sums the main path (upsampled) and the source path (the source's STFT through that stage's
    strided conv and residual block), each a branch reading the mel: the source path of every stage runs its own
    copy of the F0 network, the source and the STFT (a small share of the work: the F0 network runs at frame rate,
    the source and its STFT on one channel), so every join is a plain :class:`StreamSum` of equal rates."""
    nk = gen.num_kernels
    main: List[StreamLayer] = [StreamConv1d.from_conv(gen.conv_pre)]
    for i, up in enumerate(gen.ups):
        main += [StreamPointwise("leaky_relu", LRELU_SLOPE), StreamConvTranspose1d.from_conv(up)]
        if gen.source_convs is not None:
            src = StreamSequential([gen.stream_source(), gen.source_stft.stream(),
                                    StreamConv1d.from_conv(gen.source_convs[i]),
                                    gen.stream_block(gen.source_resblocks[i])])
            main = [StreamSum([StreamSequential(main), src], up.out_channels)]
        blocks = [gen.stream_block(gen.resblocks[i * nk + j]) for j in range(nk)]
        main.append(StreamSum(blocks, up.out_channels, divisor=nk))
    istft = gen.istft
    main += [StreamPointwise("leaky_relu", POST_SLOPE), StreamConv1d.from_conv(gen.conv_post),
             StreamFramewise(SinePhase(gen.n_bins)),
             StreamISTFT(istft.window, istft.n_fft, istft.hop_length, istft.padding, MAX_AMPLITUDE)]
    return StreamSequential(main)


@register_generator("hiftnet", HiFTNetConfig, streaming=stream_hiftnet)
class HiFTNetGenerator(_SourceFilter):
    """HiFTNet (or, ``source=False``, iSTFTNet C8C8I): ``forward(mel [B, n_mels, T]) -> wav [B, 1, T * hop]``."""

    min_frames = 1

    def __init__(self, config: Optional[HiFTNetConfig] = None):
        super().__init__()
        self.config = config = resolve_config("hiftnet", config)
        self.n_mels, self.hop_length = config.n_mels, config.hop_length
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.num_upsamples = len(config.upsample_rates)
        n_fft, hop = config.istft_n_fft, config.istft_hop_length
        self.n_bins = n_fft // 2 + 1
        ch0 = config.upsample_initial_channel
        snake = config.resblock_activation == "snake"
        block = SnakeResBlock if snake else ResBlock1

        self.conv_pre = weight_norm(nn.Conv1d(config.n_mels, ch0, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            weight_norm(nn.ConvTranspose1d(ch0 // 2 ** i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes)))
        self.resblocks, ch = mrf_resblocks(block, ch0, self.num_upsamples, config.resblock_kernel_sizes,
                                           config.resblock_dilation_sizes)
        self.conv_post = weight_norm(nn.Conv1d(ch, n_fft + 2, 7, 1, padding=3))
        self.istft = InverseSTFT(n_fft, hop, "same")
        self.source_convs: Optional[nn.ModuleList] = None
        self.source_resblocks: Optional[nn.ModuleList] = None
        if config.source:
            self._build_source(config, self.hop_length)
            self.source_stft = SourceSTFT(n_fft, hop)
            self.source_convs, self.source_resblocks = nn.ModuleList(), nn.ModuleList()
            for i in range(self.num_upsamples):
                c = ch0 // 2 ** (i + 1)
                # to stage i's rate: the source's STFT frames are `stride` times denser than stage i's samples
                stride = math.prod(config.upsample_rates[i + 1:])
                conv = (nn.Conv1d(n_fft + 2, c, 2 * stride, stride, padding=(stride + 1) // 2) if stride > 1
                        else nn.Conv1d(n_fft + 2, c, 1))
                self.source_convs.append(conv)
                self.source_resblocks.append(block(c, config.source_resblock_kernel_sizes[i],
                                                   config.source_resblock_dilations))

    def stream_block(self, block: nn.Module) -> StreamLayer:
        return stream_snake_resblock(block) if isinstance(block, SnakeResBlock) else stream_resblock(block)

    def f0_summary(self) -> Optional[Dict[str, Any]]:
        return super().f0_summary() if self.config.source else None

    def frames(self, mel: torch.Tensor, graph: bool = False) -> torch.Tensor:
        """``mel [B, n_mels, T] -> conv_post``'s output ``[B, n_fft + 2, T * hop / istft_hop]`` (the log-amplitude,
        then the phase before its sine); ``graph``: the source as :meth:`graph_excitation` makes it."""
        check_generator_input(mel, self.n_mels)
        source = None
        if self.source_convs is not None:
            source = self.source_stft(self.graph_excitation(mel) if graph else self.excitation(mel))
        x = self.conv_pre(mel)
        for i in range(self.num_upsamples):
            x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
            if source is not None:
                x = x + self.source_resblocks[i](self.source_convs[i](source))
            x = mrf(self.resblocks, i, self.num_kernels, x)
        return self.conv_post(F.leaky_relu(x, POST_SLOPE))

    def spectrum(self, mel: torch.Tensor, graph: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """``mel -> (log_amplitude, phase)``, each ``[B, n_fft // 2 + 1, T * hop / istft_hop]`` (the head's STFT)."""
        x = self.frames(mel, graph)
        return x[:, :self.n_bins], torch.sin(x[:, self.n_bins:])

    def synthesize(self, log_amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        dtype = synthesis_dtype(log_amplitude.dtype)
        amp = torch.exp(log_amplitude.to(dtype)).clip(max=MAX_AMPLITUDE)
        phase = phase.to(dtype)
        return self.istft(torch.complex(amp * torch.cos(phase), amp * torch.sin(phase))).unsqueeze(1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.synthesize(*self.spectrum(mel))

    def graph_forward(self, mel: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` in real arithmetic (no complex tensors or FFT), for TorchScript and ONNX."""
        log_amp, phase = self.spectrum(mel, graph=True)
        amp = torch.exp(log_amp).clip(max=MAX_AMPLITUDE)
        return self.istft.forward_real(amp * torch.cos(phase), amp * torch.sin(phase)).unsqueeze(1)

    def remove_weight_norm(self) -> None:
        """Fold weight norm into plain weights (for inference / export); idempotent."""
        for m in [self.conv_pre, self.conv_post, *self.ups]:
            remove_weight_norm(m)
        for b in list(self.resblocks) + list(self.source_resblocks or []):
            b.remove_weight_norm()


# ------------------------------------------------------------------------------------------------ hiftnet_frame
def stream_hiftnet_frame(gen: "HiFTNetFrameGenerator") -> StreamSequential:
    """``[mel, source STFT]`` (the source branch waits in a :class:`StreamConcat` queue for the mel, which needs
    none), then ``[head(backbone(features)), source STFT]`` (the source's frames wait for the backbone's), the
    source's phase plus the residual, and the inverse STFT's overlap-add."""
    bb, head, cfg = gen.backbone, gen.head, gen.config
    f = cfg.n_bins
    n_in = f if gen.prior is not None else cfg.n_mels  # what the features read in front of the source's R, I
    source = StreamSequential([gen.stream_source(), gen.source_stft.stream()])
    layers: List[StreamLayer] = [StreamFramewise(gen.features), StreamConv1d.from_conv(bb.embed),
                                 StreamChannelNorm(bb.norm)]
    for block in bb.convnext:
        pw = StreamSequential([StreamConv1d.from_conv(block.dwconv), StreamConvNeXtPointwise(block)])
        layers.append(StreamSum([pw, StreamIdentity()], cfg.dim))
    layers += [StreamChannelNorm(bb.final_layer_norm), StreamFourierHead(head)]
    istft = head.istft
    # the source's R, I (and with the prior, log A0 in front of them) wait beside the backbone for its frames
    kept = 3 * f if gen.prior is not None else 2 * f
    return StreamSequential([
        StreamConcat([StreamIdentity(), source], [cfg.n_mels, 2 * f]),
        *([StreamFramewise(gen.prior)] if gen.prior is not None else []),
        StreamConcat([StreamSequential(layers), StreamFramewise(_Channels(n_in + 2 * f - kept, n_in + 2 * f))],
                     [2 * f, kept]),
        StreamFramewise(ResidualPhase(f, with_prior=gen.prior is not None)),
        StreamISTFT(istft.window, istft.n_fft, istft.hop_length, istft.padding, MAX_AMPLITUDE),
    ])


class _Channels(nn.Module):
    """``x[:, lo:hi]``."""

    def __init__(self, lo: int, hi: int):
        super().__init__()
        self.lo, self.hi = int(lo), int(hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.lo:self.hi]


@register_generator("hiftnet_frame", HiFTNetFrameConfig, streaming=stream_hiftnet_frame, fourier=True)
class HiFTNetFrameGenerator(_SourceFilter):
    """Frame-rate HiFTNet: ``forward(mel [B, n_mels, T]) -> wav [B, 1, T * hop]``; ``spectrum``, ``synthesize``
    and ``refined`` as the ``vocos`` family's."""

    #: the source's STFT reflect-pads the excitation by (n_fft - hop) / 2 samples: more than one frame's
    min_frames = 2

    def __init__(self, config: Optional[HiFTNetFrameConfig] = None):
        super().__init__()
        self.config = config = resolve_config("hiftnet_frame", config)
        self.n_mels, self.hop_length = config.n_mels, config.hop_length
        self._build_source(config, config.hop_length)
        self.source_stft = SourceSTFT(config.n_fft, config.hop_length)
        # with the pinv prior the backbone reads log A0 where it would read the mel
        self.prior = (PriorAndSource(pinv_basis(config.prior_mel_config()), config.n_mels)
                      if config.prior is not None else None)
        n_in = config.n_bins if self.prior is not None else config.n_mels
        self.features = MelAndSourceFeatures(n_in, config.n_bins, config.source_phase_input)
        inputs = n_in + (3 if config.source_phase_input else 1) * config.n_bins
        self.backbone = VocosBackbone(inputs, config.dim, config.intermediate_dim, config.num_layers,
                                      config.layer_scale_init_value)
        self.head = FourierHead(config.dim, config.n_fft, config.hop_length, config.padding, "vocos")
        with torch.no_grad():  # the phase residual starts at zero: the untrained model has the source's phase
            self.head.out.weight[config.n_bins:].zero_()
            self.head.out.bias[config.n_bins:].zero_()
        if self.prior is not None:  # and the amplitude residual too: the untrained model has the prior's amplitude
            self.head.zero_amplitude_projection()

    def _check(self, mel: torch.Tensor) -> None:
        check_generator_input(mel, self.n_mels)
        if mel.shape[-1] < self.min_frames:
            raise ValueError(f"hiftnet_frame needs at least {self.min_frames} mel frames (the source's STFT "
                             f"reflect-pads {self.source_stft.pad} samples), got {mel.shape[-1]}")

    def _predict(self, mel: torch.Tensor, graph: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mel -> (log_amplitude, phase residual, source [real, imaginary])``; ``graph``: the source as
        :meth:`graph_excitation` makes it."""
        self._check(mel)
        ri = self.source_stft(self.graph_excitation(mel) if graph else self.excitation(mel))
        x = torch.cat([mel, ri.to(mel.dtype)], dim=1)
        if self.prior is not None:
            x = self.prior(x)  # [log A0, R, I]
        log_amp, residual = self.head(self.backbone(self.features(x)))
        if self.prior is not None:
            log_amp = x[:, :self.config.n_bins] + log_amp
        return log_amp, residual, ri

    def spectrum(self, mel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``mel [B, n_mels, T] -> (log_amplitude, phase)``, each ``[B, n_fft // 2 + 1, T]``; the phase is the
        source's plus the predicted residual."""
        log_amp, residual, ri = self._predict(mel)
        f = self.config.n_bins
        return log_amp, torch.atan2(ri[:, f:], ri[:, :f]) + residual

    def synthesize(self, log_amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        return self.head.synthesize(log_amplitude, phase).unsqueeze(1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.synthesize(*self.spectrum(mel))

    def refined(self, mel: torch.Tensor, iterations: int, momentum: float = DEFAULT_MOMENTUM,
                phase: str = "model") -> torch.Tensor:
        """As :meth:`VocosGenerator.refined <vocoder.generators.vocos.VocosGenerator.refined>`: the phase from
        ``phase`` (``"model"``, ``"pghi"``, ``"rtpghi"``), then ``iterations`` of fast Griffin-Lim."""
        log_amp, predicted = self.spectrum(mel)
        amp = torch.exp(log_amp.float()).clip(max=MAX_AMPLITUDE)
        istft = self.head.istft
        if phase != "model":
            predicted = retrieve_phase(amp, phase, istft.hop_length, istft.n_fft)
        return refine_phase(amp, predicted, istft, iterations, momentum).unsqueeze(1)

    def graph_forward(self, mel: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` in real arithmetic, for TorchScript and ONNX: ``cos / sin`` of the source phase plus the
        residual by the angle-sum formulas (no atan2, complex tensors or FFT)."""
        log_amp, residual, ri = self._predict(mel, graph=True)
        f = self.config.n_bins
        real, imag = ri[:, :f], ri[:, f:]
        cs, ss = _unit(real, imag, torch.sqrt(real * real + imag * imag))
        cr, sr = torch.cos(residual), torch.sin(residual)
        amp = torch.exp(log_amp).clip(max=MAX_AMPLITUDE)
        return self.head.istft.forward_real(amp * (cs * cr - ss * sr), amp * (ss * cr + cs * sr)).unsqueeze(1)

    def remove_weight_norm(self) -> None:
        """Nothing to fold: neither the backbone nor the F0 network has weight norm (kept for the generator
        contract)."""


# ------------------------------------------------------------------------------------------------ presets
_OUR_MEL = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0, fmax=8000.0)

#: HiFTNet, 22.05 kHz (the paper's / official config_v1.json): C8C8I, 512 channels, Snake ResBlock1 (3, 7, 11)
HIFTNET_22KHZ = HiFTNetConfig()
#: iSTFTNet C8C8I (Kaneko et al. 2022): HiFi-GAN V1's first two stages, leaky-ReLU ResBlock1, iSTFT 16 / 4
ISTFTNET_C8C8I_22KHZ = HiFTNetConfig(resblock_activation="leaky_relu", source=False)
#: frame-rate HiFTNet on the default model's Fourier head: ConvNeXt 384 x 8, n_fft 1024, hop 256, "same"
HIFTNET_FRAME_22KHZ = HiFTNetFrameConfig()
register_preset("hiftnet_22khz", "hiftnet", HIFTNET_22KHZ, _OUR_MEL,
                "HiFTNet: F0 network + harmonic-plus-noise source, C8C8I upsampling with Snake resblocks, iSTFT "
                "n_fft 16 / hop 4; 22.05 kHz, 80 mels, hop 256")
register_preset("istftnet_c8c8i_22khz", "hiftnet", ISTFTNET_C8C8I_22KHZ, _OUR_MEL,
                "iSTFTNet C8C8I: HiFi-GAN V1 upsampling 8 x 8, iSTFT n_fft 16 / hop 4; 22.05 kHz, 80 mels, hop 256")
register_preset("hiftnet_frame_22khz", "hiftnet_frame", HIFTNET_FRAME_22KHZ, _OUR_MEL,
                "frame-rate HiFTNet: F0 network + source, ConvNeXt 384x8 on [mel, source STFT], phase residual on "
                "the source's phase; 22.05 kHz, 80 mels, hop 256, n_fft 1024")
