"""F0 and voicing from the log-mel: the pitch a HiFTNet-style generator feeds its harmonic source
(:class:`vocoder.nn.harmonic_source.HarmonicSource`), so the generator still takes a mel alone.

The network is a stack of non-causal convs over frames (replicate padding, so a clip's edges look like its
first / last frame rather than like silence):

    MelStandardize -> Conv(n_mels -> C, k) -> (layers - 1) x [x + Conv(C -> C, k)(leaky_relu(x))]
                   -> Conv(C -> 2, 1)(leaky_relu(x)) -> (log-F0 logit, voiced logit)

Each ``k``-tap conv sees ``(k - 1) / 2`` frames on either side, so the whole stack needs
``lookahead = layers * (k - 1) / 2`` frames of the future (12 frames, 139 ms at hop 256 / 22.05 kHz with the
defaults): :func:`stream_f0_predictor` builds it from the :mod:`vocoder.nn.streaming` layers, whose output equals
the offline one. Log-F0 is bounded: ``log f0_min + (log f0_max - log f0_min) * sigmoid(logit)``.

Training targets come from :mod:`vocoder.nn.f0_targets` (pYIN on our frame centres); the trained weights
ship as ``recipes/warm_start/f0_predictor_22khz.pt`` (``scripts/train_f0_predictor.py``), and a generator that
holds the predictor as a submodule saves it in its own checkpoint.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .input_norm import MelStandardize
from .streaming import StreamConv1d, StreamIdentity, StreamLayer, StreamSequential, StreamStandardize, StreamSum

__all__ = ["F0Predictor", "StreamF0Head", "stream_f0_predictor", "LRELU_SLOPE", "CHECKPOINT_FORMAT",
           "f0_predictor_checkpoint", "load_f0_predictor"]

LRELU_SLOPE = 0.1
CHECKPOINT_FORMAT = "vocoder-f0-predictor"


class F0Predictor(nn.Module):
    """``log_mel [B, n_mels, T]`` -> ``(log_f0 [B, T]`` (natural log of Hz), ``voiced_logit [B, T])``.

    Args:
        n_mels: mel bands of the input.
        channels, kernel_size, layers: width, taps per conv (odd) and number of ``kernel_size`` convs.
        f0_min, f0_max: the F0 range (Hz) the output is bounded to.
    Attributes:
        lookahead: frames of the future an output depends on (= frames of the past): ``layers * (k - 1) / 2``.
        receptive_field: ``2 * lookahead + 1`` frames.
    """

    def __init__(self, n_mels: int = 80, channels: int = 256, kernel_size: int = 5, layers: int = 6,
                 f0_min: float = 50.0, f0_max: float = 1100.0):
        super().__init__()
        if n_mels <= 0 or channels <= 0 or layers < 1:
            raise ValueError(f"need n_mels, channels > 0 and layers >= 1, got {n_mels}, {channels}, {layers}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centred, non-causal conv), got {kernel_size}")
        if not 0 < f0_min < f0_max:
            raise ValueError(f"need 0 < f0_min < f0_max, got {f0_min}, {f0_max}")
        self.n_mels, self.channels = int(n_mels), int(channels)
        self.kernel_size, self.layers = int(kernel_size), int(layers)
        self.f0_min, self.f0_max = float(f0_min), float(f0_max)
        pad = self.kernel_size // 2
        self.norm = MelStandardize(self.n_mels)
        self.conv_in = nn.Conv1d(self.n_mels, self.channels, self.kernel_size, padding=pad, padding_mode="replicate")
        self.convs = nn.ModuleList(
            nn.Conv1d(self.channels, self.channels, self.kernel_size, padding=pad, padding_mode="replicate")
            for _ in range(self.layers - 1))
        self.conv_out = nn.Conv1d(self.channels, 2, 1)
        self.lookahead = self.layers * pad
        self.receptive_field = 2 * self.lookahead + 1

    def config(self) -> dict:
        """The constructor's arguments (what a checkpoint stores)."""
        return {"n_mels": self.n_mels, "channels": self.channels, "kernel_size": self.kernel_size,
                "layers": self.layers, "f0_min": self.f0_min, "f0_max": self.f0_max}

    def _check(self, log_mel: torch.Tensor) -> None:
        if (not torch.is_tensor(log_mel) or not log_mel.is_floating_point() or log_mel.dim() != 3
                or log_mel.shape[1] != self.n_mels):
            got = f"{tuple(log_mel.shape)} {log_mel.dtype}" if torch.is_tensor(log_mel) else type(log_mel).__name__
            raise ValueError(f"expected a float log-mel [B, {self.n_mels}, T], got {got}")
        if log_mel.shape[2] == 0:
            raise ValueError(f"expected at least one mel frame, got shape {tuple(log_mel.shape)}")

    def raw(self, log_mel: torch.Tensor) -> torch.Tensor:
        """The network before the output mapping: ``[B, 2, T]`` (log-F0 logit, voiced logit)."""
        self._check(log_mel)
        x = self.conv_in(self.norm(log_mel))
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return self.conv_out(F.leaky_relu(x, LRELU_SLOPE))

    def log_f0_from_logit(self, logit: torch.Tensor) -> torch.Tensor:
        lo, hi = math.log(self.f0_min), math.log(self.f0_max)
        return lo + (hi - lo) * torch.sigmoid(logit)

    def forward(self, log_mel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        y = self.raw(log_mel)
        return self.log_f0_from_logit(y[:, 0]), y[:, 1]

    @torch.no_grad()
    def f0(self, log_mel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(f0_hz [B, T]`` float, 0 where unvoiced; ``voiced [B, T]`` bool: ``voiced_logit > 0``)."""
        log_f0, logit = self(log_mel)
        voiced = logit > 0
        return torch.where(voiced, torch.exp(log_f0), torch.zeros_like(log_f0)), voiced

    def extra_repr(self) -> str:
        return f"lookahead={self.lookahead} frames, f0 in [{self.f0_min}, {self.f0_max}] Hz"


class StreamF0Head(StreamLayer):
    """The output mapping, frame-wise (no state): ``[B, 2, t]`` raw -> ``[B, 2, t]`` (log-F0 in natural-log Hz,
    voiced logit), the arithmetic of :meth:`F0Predictor.log_f0_from_logit`."""

    def __init__(self, f0_min: float, f0_max: float):
        super().__init__()
        self.log_min = math.log(f0_min)
        self.log_span = math.log(f0_max) - math.log(f0_min)

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        return torch.cat([self.log_min + self.log_span * torch.sigmoid(x[:, :1]), x[:, 1:]], dim=1)


def stream_f0_predictor(module: F0Predictor) -> StreamSequential:
    """The predictor as a :mod:`vocoder.nn.streaming` stack: ``mel [B, n_mels, t] -> [B, 2, t']``, rows
    (log-F0, voiced logit), equal to ``torch.stack(module(mel), 1)`` when fed in chunks and flushed with
    ``final=True``; ``module.lookahead`` frames behind its input until the flush. Allocate its states with a
    :class:`~vocoder.nn.streaming.StateAllocator` and ``fill_states`` (or nest it in a family's network)."""
    if not isinstance(module, F0Predictor):
        raise ValueError(f"expected an F0Predictor, got {type(module).__name__}")
    layers: List[StreamLayer] = [StreamStandardize(module.norm), StreamConv1d.from_conv(module.conv_in)]
    for conv in module.convs:
        f = StreamConv1d.from_conv(conv, pre_slope=LRELU_SLOPE)  # leaky ReLU fused into the conv's input
        layers.append(StreamSum([f, StreamIdentity()], module.channels))
    layers.append(StreamConv1d.from_conv(module.conv_out, pre_slope=LRELU_SLOPE))
    layers.append(StreamF0Head(module.f0_min, module.f0_max))
    return StreamSequential(layers)


def f0_predictor_checkpoint(module: F0Predictor, mel_config: dict, meta: dict | None = None) -> dict:
    """A self-describing dict for ``torch.save`` (loads with ``weights_only=True``): format, the predictor's
    config, the ``MelConfig`` dict it was trained on, its state dict and free-form ``meta`` (targets, scores)."""
    return {"format": CHECKPOINT_FORMAT, "version": 1, "config": module.config(), "mel": dict(mel_config),
            "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
            "meta": dict(meta or {})}


def load_f0_predictor(path) -> Tuple[F0Predictor, dict]:
    """``(predictor in eval mode, its MelConfig dict)`` from a file :func:`f0_predictor_checkpoint` wrote."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an F0 predictor checkpoint (format {CHECKPOINT_FORMAT!r}), got "
                         f"{ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__!r}")
    model = F0Predictor(**ckpt["config"])
    model.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
    return model.eval(), ckpt["mel"]
