"""Fourier-head generators (Vocos, Siuzdak 2023): a ConvNeXt backbone at frame rate predicts the STFT, an inverse STFT
makes the audio. No upsampling layers: the network runs at ``sample_rate / hop`` frames a second.

Module names equal the official ``vocos`` package (``backbone.embed``, ``backbone.norm``, ``backbone.convnext.{i}``,
``backbone.final_layer_norm``, ``head.out``, ``head.istft.window``), so its ``pytorch_model.bin`` loads directly
(without its ``feature_extractor.*`` entries). Options beyond the official model, for the default model:

- ``prior="pinv"`` (FreeV, Lv et al. 2024): the amplitude ``A0 = clamp(pinv(mel_basis) @ exp(mel), 1e-5)``;
  with ``prior_input`` the backbone reads ``log A0`` ``[B, n_fft//2+1, T]`` instead of the mel, and the predicted
  log-amplitude is ``log A0`` plus a residual whose projection starts at zero, so the untrained model outputs
  the prior's amplitude.
- ``head="atan2"`` (APNet, Ai & Ling 2023): phase ``atan2(I, R)`` of two learned projections instead of one raw
  phase value per bin.

Shapes: ``forward(mel [B, n_mels, T]) -> wav [B, 1, T * hop]``; ``spectrum(mel) -> (log_amplitude, phase)``, each
``[B, n_fft // 2 + 1, T]``; ``synthesize(log_amplitude, phase) -> wav [B, 1, T * hop]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn as nn

from ..audio.mel import MelConfig, pinv_basis, pinv_log_amplitude
from ..nn.convnext import ISTFT_PADDINGS, ConvNeXtBlock, InverseSTFT, synthesis_dtype
from ..nn.phase_refinement import DEFAULT_MOMENTUM, refine_phase
from ..nn.phase_retrieval import retrieve_phase
from ..nn.streaming import (StreamChannelNorm, StreamConcat, StreamConv1d, StreamConvNeXtPointwise, StreamFourierHead,
                            StreamIdentity, StreamISTFT, StreamLayer, StreamMelPrior, StreamSequential, StreamSum)
from .common import check_generator_input
from .registry import register_generator, register_preset, resolve_config

__all__ = ["VocosConfig", "VocosGenerator", "VocosBackbone", "FourierHead", "VOCOS_22KHZ", "VOCOS_22KHZ_SMALL",
           "VOCOS_MEL_24KHZ", "VOCOS_MEL", "vocos_mel_config", "vocos_mel_problems"]

HEADS = ("vocos", "atan2")
PRIORS = (None, "pinv")
#: the official head's safeguard: amplitudes are clipped at 100
MAX_AMPLITUDE = 1e2
#: FreeV's floor on the pseudo-inverse amplitude
PRIOR_FLOOR = 1e-5


@dataclass(frozen=True)
class VocosConfig:
    """Backbone and head sizes; defaults are the official ``vocos-mel-24khz`` network (13.5 M parameters)."""

    n_mels: int = 100
    dim: int = 512
    intermediate_dim: int = 1536
    num_layers: int = 8
    #: ConvNeXt layer scale at init; ``None`` means ``1 / num_layers`` (as the official backbone)
    layer_scale_init_value: Optional[float] = None
    n_fft: int = 1024
    hop_length: int = 256
    padding: str = "center"
    head: str = "vocos"
    prior: Optional[str] = None
    #: with ``prior``: the backbone reads the prior's log-amplitude instead of the mel
    prior_input: bool = True
    #: the mel filterbank the prior inverts (our Slaney front end); only read when ``prior`` is set
    sample_rate: int = 22050
    fmin: float = 0.0
    fmax: Optional[float] = 8000.0

    def __post_init__(self):
        if min(self.n_mels, self.dim, self.intermediate_dim, self.num_layers) < 1:
            raise ValueError(f"n_mels, dim, intermediate_dim and num_layers must be >= 1, got {self}")
        if self.padding not in ISTFT_PADDINGS:
            raise ValueError(f"padding must be one of {ISTFT_PADDINGS}, got {self.padding!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")
        if (self.n_fft - self.hop_length) % 2 or not 0 < self.hop_length <= self.n_fft // 2:
            raise ValueError(f"need 0 < hop_length <= n_fft / 2 and n_fft - hop_length even, got n_fft "
                             f"{self.n_fft}, hop_length {self.hop_length}")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def prior_mel_config(self) -> MelConfig:
        return MelConfig(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                         win_length=self.n_fft, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax)


class VocosBackbone(nn.Module):
    """``features [B, C_in, T] -> [B, dim, T]``: 7-tap conv, LayerNorm, ConvNeXt blocks, LayerNorm."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int,
                 layer_scale_init_value: Optional[float] = None):
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        scale = layer_scale_init_value if layer_scale_init_value is not None else 1.0 / num_layers
        self.convnext = nn.ModuleList([ConvNeXtBlock(dim, intermediate_dim, scale) for _ in range(num_layers)])
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        for m in self.modules():  # the official initialisation
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.constant_(m.bias, 0)

    @staticmethod
    def layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        """LayerNorm over channels of ``[B, C, T]``."""
        return norm(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(self.norm, self.embed(x))
        for block in self.convnext:
            x = block(x)
        return self.layer_norm(self.final_layer_norm, x)


class FourierHead(nn.Module):
    """``hidden [B, dim, T] -> (log_amplitude, phase)`` each ``[B, n_fft//2+1, T]``; ``istft`` makes the audio.

    ``"vocos"``: one linear layer to ``n_fft + 2`` values, split into log-amplitude and a raw phase (the official
    ``ISTFTHead``). ``"atan2"``: three projections, log-amplitude, R and I, and the phase ``atan2(I, R)``.
    """

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str, kind: str = "vocos"):
        super().__init__()
        self.kind = kind
        self.n_bins = n_fft // 2 + 1
        self.out = nn.Linear(dim, (2 if kind == "vocos" else 3) * self.n_bins)
        self.istft = InverseSTFT(n_fft, hop_length, padding)

    def zero_amplitude_projection(self) -> None:
        """Start the log-amplitude output at zero (a residual on a prior then starts as the prior)."""
        with torch.no_grad():
            self.out.weight[: self.n_bins].zero_()
            self.out.bias[: self.n_bins].zero_()

    def forward(self, hidden: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.out(hidden.transpose(1, 2)).transpose(1, 2)
        if self.kind == "vocos":
            log_amp, phase = x.chunk(2, dim=1)
        else:
            log_amp, real, imag = x.chunk(3, dim=1)
            phase = torch.atan2(imag, real)
        return log_amp, phase

    def synthesize(self, log_amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """``[B, F, T]`` twice -> ``[B, T * hop]`` in :func:`~vocoder.nn.convnext.synthesis_dtype` (float32 for a
        half-precision network, float64 for float64)."""
        dtype = synthesis_dtype(log_amplitude.dtype)
        log_amplitude, phase = log_amplitude.to(dtype), phase.to(dtype)
        amp = torch.exp(log_amplitude).clip(max=MAX_AMPLITUDE)
        return self.istft(torch.complex(amp * torch.cos(phase), amp * torch.sin(phase)))

    def graph_parts(self, hidden: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``hidden -> (log_amplitude, cos(phase), sin(phase))`` without ``atan2`` (ONNX has none): for the
        ``"atan2"`` head ``(R, I) / |R + iI|``, and ``(1, 0)`` where both are 0 (``atan2(0, 0) = 0``)."""
        x = self.out(hidden.transpose(1, 2)).transpose(1, 2)
        if self.kind == "vocos":
            log_amp, phase = x.chunk(2, dim=1)
            return log_amp, torch.cos(phase), torch.sin(phase)
        log_amp, real, imag = x.chunk(3, dim=1)
        radius = torch.sqrt(real * real + imag * imag)
        zero = radius == 0
        safe = torch.where(zero, torch.ones_like(radius), radius)
        return (log_amp, torch.where(zero, torch.ones_like(real), real / safe),
                torch.where(zero, torch.zeros_like(imag), imag / safe))


def stream_vocos(gen: "VocosGenerator") -> StreamSequential:
    """Vocos: ConvNeXt backbone at frame rate (the 7-tap embed and depthwise convs keep 3 frames of context
    each, a block's residual waits in a :class:`StreamSum` queue), the frame-wise head projection, and the
    inverse STFT's overlap-add. With the pinv prior, the prior's frames wait in a :class:`StreamConcat` queue
    until the backbone's prediction for them is out."""
    bb, head, cfg = gen.backbone, gen.head, gen.config
    layers: List[StreamLayer] = [StreamConv1d.from_conv(bb.embed), StreamChannelNorm(bb.norm)]
    dim = bb.embed.out_channels
    for block in bb.convnext:
        f = StreamSequential([StreamConv1d.from_conv(block.dwconv), StreamConvNeXtPointwise(block)])
        layers.append(StreamSum([f, StreamIdentity()], dim))  # x + pointwise(dwconv(x))
    layers += [StreamChannelNorm(bb.final_layer_norm), StreamFourierHead(head)]
    net = StreamSequential(layers)
    istft = head.istft
    out = StreamISTFT(istft.window, istft.n_fft, istft.hop_length, istft.padding, MAX_AMPLITUDE,
                      with_prior=gen.prior_basis is not None)
    if gen.prior_basis is None:
        return StreamSequential([net, out])
    prior = StreamMelPrior(gen.prior_basis, PRIOR_FLOOR)
    _check_prior(gen, prior)
    n_bins, n_head = head.n_bins, 2 * head.n_bins
    if cfg.prior_input:  # the backbone reads the prior: [prior, head(backbone(prior))]
        return StreamSequential([prior, StreamConcat([StreamIdentity(), net], [n_bins, n_head]), out])
    return StreamSequential([StreamConcat([prior, net], [n_bins, n_head]), out])  # [prior(mel), head(backbone(mel))]


def _check_prior(gen: nn.Module, prior: StreamMelPrior) -> None:
    """The streaming prior repeats ``prior_log_amplitude``'s arithmetic: refuse to build if they disagree."""
    basis = prior.basis
    probe = torch.linspace(-6.0, 2.0, 3 * gen.n_mels, dtype=basis.dtype, device=basis.device).view(1, gen.n_mels, 3)
    with torch.no_grad():
        want = gen.prior_log_amplitude(probe).to(probe.dtype)  # what spectrum() adds, in the network's dtype
        got = prior(probe, [], False)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-5, atol=1e-5):
        raise RuntimeError("the streaming amplitude prior differs from VocosGenerator.prior_log_amplitude; "
                           "update vocoder.nn.streaming.fourier.StreamMelPrior")


@register_generator("vocos", VocosConfig, streaming=stream_vocos, fourier=True)
class VocosGenerator(nn.Module):
    """ConvNeXt backbone + Fourier head; ``forward(mel [B, n_mels, T]) -> wav [B, 1, T * hop]``."""

    min_frames = 1

    def __init__(self, config: Optional[VocosConfig] = None):
        super().__init__()
        self.config = config = resolve_config("vocos", config)
        self.n_mels, self.hop_length = config.n_mels, config.hop_length
        use_prior_input = config.prior is not None and config.prior_input
        self.backbone = VocosBackbone(config.n_bins if use_prior_input else config.n_mels, config.dim,
                                      config.intermediate_dim, config.num_layers, config.layer_scale_init_value)
        self.head = FourierHead(config.dim, config.n_fft, config.hop_length, config.padding, config.head)
        if config.prior is not None:
            # Deterministic from the config, so not saved: pinv of the Slaney filterbank [F, n_mels].
            self.register_buffer("prior_basis", pinv_basis(config.prior_mel_config()), persistent=False)
            self.head.zero_amplitude_projection()
        else:
            self.prior_basis = None

    def prior_log_amplitude(self, mel: torch.Tensor) -> torch.Tensor:
        """``log clamp(pinv(mel_basis) @ exp(mel), 1e-5)``: ``[B, n_mels, T] -> [B, n_fft//2+1, T]`` (float32),
        computed in float64 (:func:`vocoder.audio.mel.pinv_log_amplitude` says why)."""
        if self.prior_basis is None:
            raise ValueError("this generator has no amplitude prior (config.prior is None)")
        return pinv_log_amplitude(self.prior_basis, mel, PRIOR_FLOOR)

    def spectrum(self, mel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``mel [B, n_mels, T] -> (log_amplitude, phase)``, each ``[B, n_fft//2+1, T]``."""
        check_generator_input(mel, self.n_mels)
        if self.prior_basis is None:
            return self.head(self.backbone(mel))
        prior = self.prior_log_amplitude(mel).to(mel.dtype)
        log_amp, phase = self.head(self.backbone(prior if self.config.prior_input else mel))
        return prior + log_amp, phase

    def synthesize(self, log_amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        return self.head.synthesize(log_amplitude, phase).unsqueeze(1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.synthesize(*self.spectrum(mel))

    def refined(self, mel: torch.Tensor, iterations: int, momentum: float = DEFAULT_MOMENTUM,
                phase: str = "model") -> torch.Tensor:
        """:meth:`forward` with the phase taken from ``phase`` (``"model"``: the predicted one; ``"pghi"`` /
        ``"rtpghi"``: computed from the predicted amplitude, :mod:`vocoder.nn.phase_retrieval`), then
        ``iterations`` of fast Griffin-Lim from it (offline; :mod:`vocoder.nn.phase_refinement`):
        ``mel [B, n_mels, T] -> wav [B, 1, T * hop]``, float32."""
        log_amp, predicted = self.spectrum(mel)
        amp = torch.exp(log_amp.float()).clip(max=MAX_AMPLITUDE)
        if phase != "model":
            istft = self.head.istft
            predicted = retrieve_phase(amp, phase, istft.hop_length, istft.n_fft)
        return refine_phase(amp, predicted, self.head.istft, iterations, momentum).unsqueeze(1)

    def graph_forward(self, mel: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` in real arithmetic, for TorchScript tracing and ONNX export (no complex tensors, FFT,
        ``atan2`` or sizes computed from the input: :meth:`FourierHead.graph_parts`,
        :meth:`~vocoder.nn.convnext.InverseSTFT.forward_real`); equal to it to float32 rounding."""
        if self.prior_basis is None:
            prior = None
            hidden = self.backbone(mel)
        else:
            prior = self.prior_log_amplitude(mel).to(mel.dtype)
            hidden = self.backbone(prior if self.config.prior_input else mel)
        log_amp, cos, sin = self.head.graph_parts(hidden)
        if prior is not None:
            log_amp = prior + log_amp
        amp = torch.exp(log_amp).clip(max=MAX_AMPLITUDE)
        return self.head.istft.forward_real(amp * cos, amp * sin).unsqueeze(1)

    def remove_weight_norm(self) -> None:
        """Nothing to fold: the family has no weight norm (kept for the generator contract)."""


def vocos_mel_config(sample_rate: int = 24000, n_fft: int = 1024, hop_length: int = 256, n_mels: int = 100,
                     padding: str = "center") -> MelConfig:
    """The mel of the official ``MelSpectrogramFeatures(sample_rate, n_fft, hop_length, n_mels, padding)``:
    torchaudio's ``MelSpectrogram(power=1)`` (HTK filters without normalisation, 0 Hz to Nyquist, |X| of a Hann
    window of ``n_fft``), centred (``"center"``) or reflect-padded by ``(n_fft - hop) / 2`` (``"same"``), then
    ``log(clip(x, 1e-7))``."""
    if padding not in ISTFT_PADDINGS:
        raise ValueError(f"Vocos feature padding must be one of {ISTFT_PADDINGS}, got {padding!r}")
    return MelConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, win_length=n_fft, n_mels=n_mels,
                     fmin=0.0, fmax=None, center=padding == "center", mel_scale="htk", mel_norm=None,
                     magnitude_eps=0.0, log_floor=1e-7)


def vocos_mel_problems(mel: MelConfig) -> list:
    """Why the official ``MelSpectrogramFeatures`` cannot compute ``mel`` (empty when it can)."""
    want = vocos_mel_config(mel.sample_rate, mel.n_fft, mel.hop_length, mel.n_mels,
                            "center" if mel.center else "same")
    got = mel.to_dict()
    if got.get("fmax") is not None and float(got["fmax"]) == mel.sample_rate // 2:
        got["fmax"] = None  # torchaudio's f_max=None is sample_rate // 2
    return [f"{k}={got[k]!r} (Vocos's feature extractor has {v!r})" for k, v in want.to_dict().items()
            if got[k] != v]


_OUR_MEL = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0, fmax=8000.0)

#: the official ``charactr/vocos-mel-24khz`` network (its mel front end is Vocos's own convention)
VOCOS_MEL_24KHZ = VocosConfig()
#: the official ``charactr/vocos-mel-24khz`` front end: 24 kHz, n_fft 1024, hop 256, 100 HTK mels, centred, floor 1e-7
VOCOS_MEL = vocos_mel_config()
register_preset("vocos_mel_24khz", "vocos", VOCOS_MEL_24KHZ, VOCOS_MEL,
                "Vocos (official vocos-mel-24khz network): ConvNeXt 512x8, ISTFT head, centred; 24 kHz, 100 HTK mels, "
                "hop 256")
#: our default model: our 22.05 kHz HiFi-GAN mel, "same" framing, pinv amplitude prior, atan2 phase
VOCOS_22KHZ = VocosConfig(n_mels=80, dim=384, intermediate_dim=1152, num_layers=8, padding="same", head="atan2",
                          prior="pinv")
VOCOS_22KHZ_SMALL = VocosConfig(n_mels=80, dim=256, intermediate_dim=768, num_layers=6, padding="same",
                                head="atan2", prior="pinv")
register_preset("vocos_22khz_80band", "vocos", VOCOS_22KHZ, _OUR_MEL,
                "Fourier-head ConvNeXt 384x8, pinv amplitude prior, atan2 phase; 22.05 kHz, 80 mels, hop 256")
register_preset("vocos_22khz_80band_small", "vocos", VOCOS_22KHZ_SMALL, _OUR_MEL,
                "Fourier-head ConvNeXt 256x6, pinv amplitude prior, atan2 phase; 22.05 kHz, 80 mels, hop 256")
