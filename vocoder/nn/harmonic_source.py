"""The harmonic-plus-noise excitation of NSF / HiFTNet: sines at F0 and its overtones, merged by a learned
``Linear + tanh``, plus Gaussian noise; a generator of the ``hiftnet`` family filters it.

Choices, and why (each one keeps a streamed utterance equal to its offline decode, bit for bit):

- **F0 to the sample rate: nearest** (frame ``t``'s F0 and voicing hold for samples ``[t * hop, (t + 1) * hop)``).
  That block is centred on the mel frame's own centre (``t * hop + hop / 2`` with our ``center=False`` framing,
  :class:`vocoder.audio.mel.MelConfig`), so no look-ahead is needed: chunks of whole frames give the same
  samples as the whole utterance. HiFTNet upsamples F0 the same way (``nn.Upsample``, nearest); the phase is a
  running sum, so F0 steps at frame edges are steps in frequency, never jumps in the waveform.
- **Phase in fixed point**: the fundamental's phase is an ``int64`` count of ``2^-32`` cycles; the increment per
  sample is ``round(f / sr * 2^32)`` (frequency resolution ``sr * 2^-32``, 5e-6 Hz at 22.05 kHz) and the running
  sum is wrapped with a mask. Integer addition is exact and associative, so splitting the sum at any sample
  cannot change a bit (a float64 running sum, wrapped per chunk, would drift from the whole sum by rounding).
  Harmonic ``k``'s phase is ``k`` times the fundamental's plus a fixed random start (NSF / HiFTNet give the
  overtones random initial phases, which lowers the crest factor); the fundamental starts at phase 0.
  Unvoiced samples do not advance the phase (their F0 is ignored).
- **No aliasing**: harmonic ``k`` is silent on the samples where ``k * F0 >= sr / 2`` (NSF keeps them, folded).
- **Merge: learned** ``tanh(w . sines)`` with ``w = merge.weight [1, harmonics + 1]``, no bias (as HiFTNet's
  ``SourceModuleHnNSF`` less its bias: a bias would put a constant under unvoiced noise), initialised to
  ``1 / sqrt(harmonics + 1)`` (the sum then has one sine's RMS at random phases, where ``tanh`` is nearly linear:
  its distortion products, which do alias, stay about 50 dB down at F0 = 1.5 kHz). The generator trains ``w``.
- **Noise after the merge** (NSF adds one noise per sine before it): one Gaussian stream, standard deviation ``noise_std`` on voiced samples and
  ``sine_amp / 3`` on unvoiced ones (NSF's amplitudes), so unvoiced samples carry noise only. It is
  counter-based: sample ``n`` (counted from the utterance's start) of item ``i`` is the ``n``-th output of
  SplitMix64 seeded with the ``i``-th output of SplitMix64 seeded with ``seed``, mapped to a Gaussian by
  Box-Muller (the top 32 bits give the radius, the low 32 bits the angle): :mod:`vocoder.nn.counter_noise`, which
  Parallel WaveGAN's streamed noise uses too. A function of (seed, item, sample)
  only, so chunk boundaries, batch composition and device leave it unchanged.

State (``[B, 3] int64``, one row per item): the fundamental's phase (``2^-32`` cycles), the index of the next
sample, and the item's noise key. :meth:`HarmonicSource.initial_state` makes it; ``forward`` returns the next one.
:class:`StreamHarmonicSource` runs the same arithmetic (:func:`harmonic_excitation`) as a streaming layer behind
:func:`vocoder.nn.f0_predictor.stream_f0_predictor`.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn

from .counter_noise import counter_gaussian, item_keys, logical_shift_right, splitmix64
from .streaming.base import StateAllocator, StreamLayer

__all__ = ["HarmonicSource", "StreamHarmonicSource", "harmonic_excitation", "harmonic_sines", "source_noise",
           "PHASE_BITS"]

#: Fractional bits of the fixed-point phase (one cycle = ``2^PHASE_BITS``).
PHASE_BITS = 32


def _signed(c: int) -> int:
    """A 64-bit constant as the int64 with the same bits (torch has no uint64 arithmetic)."""
    return c - (1 << 64) if c >= (1 << 63) else c


def source_noise(state: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Unit Gaussian noise ``[B, n_samples]`` float64 for the samples from the state's position on."""
    idx = state[:, 1:2] + torch.arange(n_samples, dtype=torch.int64, device=state.device)[None, :]
    return counter_gaussian(state[:, 2:3], idx)


def harmonic_sines(f0_hz: torch.Tensor, voiced: torch.Tensor, state: torch.Tensor, n_sines: int, sample_rate: int,
                   hop_length: int, sine_amp: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """``f0_hz [B, T]``, ``voiced [B, T]`` bool, ``state [B, 3]`` -> (``[B, n_sines, T * hop]`` float64:
    ``sine_amp * sin(phase_k)`` where voiced and ``k * F0 < sr / 2``, else 0; the next state)."""
    one_cycle = 4294967296  # 2^32: PHASE_BITS fractional bits
    mask = 4294967295
    # Frame rate -> sample rate, nearest: [B, T] -> [B, T * hop].
    f = (f0_hz.to(torch.float64) * voiced.to(torch.float64)).repeat_interleave(hop_length, dim=1)
    v = voiced.repeat_interleave(hop_length, dim=1)
    # A fundamental past Nyquist is silent anyway; the clamp only keeps the running sum far from overflow.
    inc = torch.round(f.clamp(max=float(sample_rate)) * (one_cycle / sample_rate)).to(torch.int64)
    run = torch.cumsum(inc, dim=1)
    phase = (state[:, :1] + run - inc) & mask  # exclusive: sample n's phase before its own step
    new_state = state.clone()
    if run.shape[1] > 0:
        new_state[:, 0] = (state[:, 0] + run[:, -1]) & mask
    new_state[:, 1] = state[:, 1] + run.shape[1]
    # Overtone k's phase: k * fundamental + a fixed start drawn "before" the noise's counter (k = 1 starts at 0).
    k = torch.arange(1, n_sines + 1, dtype=torch.int64, device=f0_hz.device)
    start = logical_shift_right(splitmix64(state[:, 2:3], -k[None, :]), 32)  # [B, K]
    start[:, 0] = 0
    phk = (k[None, :, None] * phase[:, None, :] + start[:, :, None]) & mask  # [B, K, N]
    s = torch.sin(phk.to(torch.float64) * (6.283185307179586 / one_cycle))
    keep = (k.to(torch.float64)[None, :, None] * f[:, None, :] < sample_rate / 2) & v[:, None, :]
    return torch.where(keep, s * sine_amp, torch.zeros_like(s)), new_state


def harmonic_excitation(f0_hz: torch.Tensor, voiced: torch.Tensor, state: torch.Tensor, weight: torch.Tensor,
                        sample_rate: int, hop_length: int, sine_amp: float,
                        noise_std: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The arithmetic of :meth:`HarmonicSource.forward` (no checks): ``(excitation [B, 1, T * hop]`` in
    ``weight``'s dtype, ``next state)``; ``weight [1, n_sines]`` merges the sines."""
    sines, new_state = harmonic_sines(f0_hz, voiced, state, weight.shape[1], sample_rate, hop_length, sine_amp)
    harmonic = torch.tanh(torch.einsum("k,bkn->bn", weight[0], sines.to(weight.dtype)))
    v = voiced.repeat_interleave(hop_length, dim=1)
    amp = torch.where(v, torch.full_like(v, noise_std, dtype=torch.float64),
                      torch.full_like(v, sine_amp / 3.0, dtype=torch.float64))
    noise = (source_noise(state, v.shape[1]) * amp).to(weight.dtype)
    return (harmonic + noise).unsqueeze(1), new_state


class HarmonicSource(nn.Module):
    """NSF / HiFTNet harmonic-plus-noise excitation from frame-rate F0 (see the module docstring for the choices).

    Args:
        sample_rate, hop_length: the audio rate and the samples per F0 frame (the mel's hop).
        harmonics: overtones above the fundamental (HiFTNet's ``harmonic_num``): ``harmonics + 1`` sines at
            ``k * F0``, ``k = 1 .. harmonics + 1``.
        sine_amp: amplitude of each sine before the merge (NSF: 0.1); unvoiced noise has std ``sine_amp / 3``.
        noise_std: std of the noise on voiced samples (NSF: 0.003).
        seed: the noise generator's seed (also the overtones' initial phases).
    """

    def __init__(self, sample_rate: int, hop_length: int, harmonics: int = 8, sine_amp: float = 0.1,
                 noise_std: float = 0.003, seed: int = 0):
        super().__init__()
        if int(sample_rate) <= 0 or int(hop_length) <= 0:
            raise ValueError(f"sample_rate and hop_length must be positive, got {sample_rate}, {hop_length}")
        if int(harmonics) < 0:
            raise ValueError(f"harmonics (overtones above F0) must be >= 0, got {harmonics}")
        if not (sine_amp >= 0 and noise_std >= 0):
            raise ValueError(f"sine_amp and noise_std must be >= 0, got {sine_amp}, {noise_std}")
        if not -(1 << 63) <= int(seed) < (1 << 64):
            raise ValueError(f"seed must fit in 64 bits, got {seed}")
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.harmonics = int(harmonics)
        self.n_sines = self.harmonics + 1
        self.sine_amp = float(sine_amp)
        self.noise_std = float(noise_std)
        self.seed = _signed(int(seed) % (1 << 64))
        self.merge = nn.Linear(self.n_sines, 1, bias=False)
        nn.init.constant_(self.merge.weight, 1.0 / math.sqrt(self.n_sines))

    # ------------------------------------------------------------------------------------------------- state
    def initial_state(self, batch: int, device=None, sample_offset: int = 0,
                      item_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``[batch, 3] int64``: phase 0, next sample ``sample_offset``, and item ``i``'s noise key (``i`` = its
        index in the batch, or ``item_ids[i]`` to give a streamed item the noise it has in an offline batch)."""
        if int(sample_offset) < 0:
            raise ValueError(f"sample_offset must be >= 0, got {sample_offset}")
        if item_ids is None:
            item_ids = torch.arange(batch, dtype=torch.int64, device=device)
        else:
            item_ids = torch.as_tensor(item_ids, device=device)
            if item_ids.dtype.is_floating_point or item_ids.dim() != 1 or item_ids.shape[0] != batch:
                raise ValueError(f"item_ids must be {batch} integers [B], got {tuple(item_ids.shape)} "
                                 f"{item_ids.dtype}")
            item_ids = item_ids.to(torch.int64)
        keys = item_keys(self.seed, item_ids)
        state = torch.zeros(batch, 3, dtype=torch.int64, device=device)
        state[:, 1] = int(sample_offset)
        state[:, 2] = keys
        return state

    def _check(self, f0_hz, voiced, state, sample_offset: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if not torch.is_tensor(f0_hz) or not f0_hz.is_floating_point() or f0_hz.dim() != 2:
            raise ValueError(f"expected f0_hz as a float tensor [B, T] (Hz, frame rate), got "
                             f"{tuple(f0_hz.shape) if torch.is_tensor(f0_hz) else type(f0_hz).__name__}")
        if not torch.is_tensor(voiced) or voiced.shape != f0_hz.shape:
            raise ValueError(f"expected voiced [B, T] = {tuple(f0_hz.shape)} (bool or 0/1), got "
                             f"{tuple(voiced.shape) if torch.is_tensor(voiced) else type(voiced).__name__}")
        if not bool(torch.isfinite(f0_hz).all()) or bool((f0_hz < 0).any()):
            raise ValueError("f0_hz must be finite and >= 0 (Hz; unvoiced frames may hold 0)")
        voiced = voiced if voiced.dtype == torch.bool else voiced > 0.5
        if state is not None:
            if not torch.is_tensor(state) or state.dtype != torch.int64 or tuple(state.shape) != (f0_hz.shape[0], 3):
                raise ValueError(f"expected a source state [B={f0_hz.shape[0]}, 3] int64 (from initial_state or "
                                 f"a previous call), got "
                                 f"{(tuple(state.shape), state.dtype) if torch.is_tensor(state) else state!r}")
            if sample_offset != 0:
                raise ValueError("give the position either in the state or as sample_offset, not both "
                                 f"(got a state and sample_offset={sample_offset})")
        return f0_hz, voiced

    # ------------------------------------------------------------------------------------------- the signal
    def sines(self, f0_hz: torch.Tensor, voiced: torch.Tensor, state: Optional[torch.Tensor] = None,
              sample_offset: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
        """The unmerged sines: ``[B, harmonics + 1, T * hop]`` float64, ``sine_amp * sin(phase_k)`` where voiced and
        ``k * F0`` is under Nyquist, else 0; and the next state."""
        f0_hz, voiced = self._check(f0_hz, voiced, state, sample_offset)
        return harmonic_sines(f0_hz, voiced, self._start(f0_hz, state, sample_offset), self.n_sines,
                              self.sample_rate, self.hop_length, self.sine_amp)

    def _start(self, f0_hz: torch.Tensor, state: Optional[torch.Tensor], sample_offset: int) -> torch.Tensor:
        if state is None:
            return self.initial_state(f0_hz.shape[0], f0_hz.device, sample_offset)
        return state.to(f0_hz.device)

    def noise(self, state: torch.Tensor, n_samples: int) -> torch.Tensor:
        """Unit Gaussian noise ``[B, n_samples]`` float64 for the samples from the state's position on."""
        return source_noise(state, n_samples)

    def forward(self, f0_hz: torch.Tensor, voiced: torch.Tensor, state: Optional[torch.Tensor] = None,
                sample_offset: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
        """``f0_hz [B, T]`` (Hz), ``voiced [B, T]`` (bool or 0/1) at frame rate -> ``(excitation [B, 1, T * hop],
        new_state [B, 3])``. ``state=None`` starts the utterance (phase 0) at sample ``sample_offset`` (the noise's
        position only); a state continues it (then ``sample_offset`` must stay 0). The excitation has the
        dtype of ``merge.weight``; gradients reach ``merge.weight`` (not F0)."""
        f0_hz, voiced = self._check(f0_hz, voiced, state, sample_offset)
        return harmonic_excitation(f0_hz, voiced, self._start(f0_hz, state, sample_offset), self.merge.weight,
                                   self.sample_rate, self.hop_length, self.sine_amp, self.noise_std)

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, hop_length={self.hop_length}, harmonics={self.harmonics}, "
                f"sine_amp={self.sine_amp}, noise_std={self.noise_std}, seed={self.seed}")


class StreamHarmonicSource(StreamLayer):
    """The source as a :mod:`vocoder.nn.streaming` layer (compiles with ``torch.jit.script``):
    ``[B, 2, t]`` rows (log-F0 in natural-log Hz, voiced logit: what
    :func:`vocoder.nn.f0_predictor.stream_f0_predictor` emits) -> excitation ``[B, 1, t * hop]``, with
    ``F0 = exp(log_f0)`` where ``logit > 0`` (the rule of :meth:`~vocoder.nn.f0_predictor.F0Predictor.f0`).

    State: one slot, the source's ``[B, 3]`` (phase, position, noise key); item ``i`` of the batch that
    ``fill_states`` gets draws the noise of item ``i`` of an offline batch. Copies ``merge.weight``.
    """

    def __init__(self, source: HarmonicSource):
        super().__init__()
        self.register_buffer("weight", source.merge.weight.detach().clone())
        self.sample_rate = source.sample_rate
        self.hop_length = source.hop_length
        self.sine_amp = source.sine_amp
        self.noise_std = source.noise_std
        self.seed = source.seed
        self.offset = 0

    def allocate(self, alloc: StateAllocator) -> None:
        self.offset = alloc.take(1)

    def fill_states(self, states: List[torch.Tensor], batch: int, ref: torch.Tensor) -> None:
        items = torch.arange(batch, dtype=torch.int64, device=ref.device)
        state = torch.zeros(batch, 3, dtype=torch.int64, device=ref.device)
        state[:, 2] = item_keys(self.seed, items)
        states[self.offset] = state

    def forward(self, x: torch.Tensor, states: List[torch.Tensor], final: bool) -> torch.Tensor:
        voiced = x[:, 1] > 0
        f0 = torch.where(voiced, torch.exp(x[:, 0]), torch.zeros_like(x[:, 0]))
        y, state = harmonic_excitation(f0, voiced, states[self.offset], self.weight, self.sample_rate,
                                       self.hop_length, self.sine_amp, self.noise_std)
        states[self.offset] = state
        return y

    def out_count(self, n: int) -> int:
        return n * self.hop_length

    def in_range(self, a: int, b: int) -> Tuple[int, int]:
        return a // self.hop_length, b // self.hop_length
