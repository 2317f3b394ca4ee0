"""Phase from the amplitude alone: Phase Gradient Heap Integration (PGHI) and its real-time form (RTPGHI).

For a Gaussian window ``g(t) = exp(-pi t^2 / lam)`` the STFT's log-amplitude and phase are tied (Portnoff; Průša,
Balazs, Søndergaard, "A noniterative method for reconstruction of phase from STFT magnitude", 2017): in the
time-invariant phase convention (each frame's phase relative to its window's centre), with ``x`` in samples and
``w`` in cycles per sample,

    d phase / dx =  (1 / lam) d log s / dw + 2 pi w        (the instantaneous frequency)
    d phase / dw = -lam d log s / dx                        (the local group delay, negated)

so the phase's gradient follows from the amplitude's, and a heap integrates it from the loudest bins outwards,
where the estimate is most reliable (trapezoidal steps between neighbouring bins). A Hann window of ``n``
samples behaves like the Gaussian of ``lam = 0.25645 n^2`` (the value the PGHI authors fit; :func:`hann_lambda`).
Bins below ``tolerance`` times the largest amplitude in reach are left out of the integration and get phase 0
(deterministic; they are 100 dB down at the default 1e-5), and the log-amplitude is floored there so that the
derivatives of the bins beside them stay finite.

- :func:`pghi`: the whole utterance at once, tolerance relative to its global maximum.
- :func:`rtpghi`: frame by frame (Průša, Søndergaard, "Real-time spectrogram inversion using phase gradient heap
  integration", 2016). Frame ``n`` needs frame ``n + 1`` for the time derivative (one frame of lookahead) and the
  phase of frame ``n - 1``, which seeds the heap; the tolerance is relative to the larger of this and the previous
  frame's maximum, so every quantity is known one frame after it arrives: it streams (:class:`RTPGHIStream`,
  equal to :func:`rtpghi` bit for bit).

The phases returned are in ``torch.stft``'s convention (relative to each frame's first sample), which
:class:`~vocoder.nn.convnext.InverseSTFT` inverts: the centred phase plus ``pi m`` for bin ``m`` (the window's
centre sits ``n_fft / 2`` samples into the frame). The phase gradients are vectorised NumPy; the heap integration
is sequential by nature and runs compiled (``vocoder/kernels/cpu/phase_heap.cpp``, built like the activation
kernel) with the Python loops here as its reference: the same heap order and arithmetic, the same bits (tested).
"""
from __future__ import annotations

import heapq
import math
from typing import Optional

import numpy as np
import torch

from ..kernels.dispatch import kernels_enabled

__all__ = ["PHASE_METHODS", "HANN_LAMBDA", "hann_lambda", "phase_steps", "pghi", "rtpghi", "frame_tolerances",
           "RTPGHIStream", "retrieve_phase"]

#: how a Fourier head's phase is obtained: its own prediction, or computed from its amplitude
PHASE_METHODS = ("model", "pghi", "rtpghi")
#: the time-frequency ratio of the Gaussian a Hann window of n samples resembles, over n^2 (Průša et al. 2017)
HANN_LAMBDA = 0.25645
DEFAULT_TOLERANCE = 1e-5


def hann_lambda(n_fft: int) -> float:
    """``lam`` (samples^2) of the Gaussian ``exp(-pi t^2 / lam)`` equivalent to a Hann window of ``n_fft``."""
    return HANN_LAMBDA * n_fft * n_fft


def _gradient(x: np.ndarray, axis: int) -> np.ndarray:
    """Centred differences, the edges padded by repeating them (``(x[1] - x[0]) / 2`` at the first): the rule
    of the reference implementations (pghipy, LTFAT's ``pderiv``), so the phases agree with theirs."""
    padded = np.concatenate([np.take(x, [0], axis), x, np.take(x, [-1], axis)], axis=axis)
    n = x.shape[axis]
    return (np.take(padded, np.arange(2, n + 2), axis) - np.take(padded, np.arange(n), axis)) / 2


def phase_steps(log_amplitude: np.ndarray, hop: int, n_fft: int, lam: Optional[float] = None):
    """The phase's advance per frame and per bin from the log-amplitude ``[F, T]`` (natural log):
    ``(time_step [F, T], freq_step [F, T])`` in radians, time-invariant (window-centred) convention.

    ``time_step[m, n] = hop * dphase/dx``; ``freq_step[m, n] = dphase/dm`` (one bin is ``1 / n_fft`` cycles per
    sample)."""
    lam = hann_lambda(n_fft) if lam is None else lam
    bins = np.arange(log_amplitude.shape[0], dtype=np.float64)[:, None]
    dlog_dm = _gradient(log_amplitude, 0)                  # per bin: d/dw = n_fft d/dm
    dlog_dn = _gradient(log_amplitude, 1)                  # per frame: d/dx = (1 / hop) d/dn
    time_step = hop * (n_fft / lam * dlog_dm + 2 * math.pi * bins / n_fft)
    freq_step = -(lam / n_fft) * dlog_dn / hop
    return time_step, freq_step


def _as_numpy(amplitude) -> np.ndarray:
    a = amplitude.detach().to("cpu", torch.float64).numpy() if torch.is_tensor(amplitude) else np.asarray(
        amplitude, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected an amplitude [F, T], got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError("expected a finite, non-negative amplitude")
    return a


def _to_frame_start(phase: np.ndarray) -> np.ndarray:
    """Window-centred phase -> ``torch.stft``'s (frame-start) convention: ``+ pi m`` (wrapped)."""
    shifted = phase + math.pi * np.arange(phase.shape[0])[:, None]
    return np.remainder(shifted + math.pi, 2 * math.pi) - math.pi


def _compiled():
    """The compiled heap integration (:mod:`vocoder.kernels`), or ``None``: not built, or ``VOCODER_KERNELS=0``."""
    if not kernels_enabled():
        return None
    from ..kernels.build import load_phase_heap

    return load_phase_heap()


def _pghi_heap(s: np.ndarray, time_step: np.ndarray, freq_step: np.ndarray, floor: float) -> np.ndarray:
    """PGHI's heap integration in Python (the reference ``cpu/phase_heap.cpp`` mirrors): window-centred phase."""
    F, T = s.shape
    phase = np.zeros((F, T))
    done = s < floor  # insignificant bins keep phase 0
    order = np.argsort(-s, axis=None, kind="stable")
    next_seed = 0
    heap: list = []
    while True:
        if not heap:  # a new island of significant bins: its loudest bin is the seed, phase 0
            while next_seed < order.size and done.flat[order[next_seed]]:
                next_seed += 1
            if next_seed == order.size:
                break
            m, n = divmod(int(order[next_seed]), T)
            done[m, n] = True
            heap.append((-s[m, n], m, n))
        _, m, n = heapq.heappop(heap)
        for k, j in ((m, n + 1), (m, n - 1), (m + 1, n), (m - 1, n)):
            if 0 <= k < F and 0 <= j < T and not done[k, j]:
                if j != n:  # along time: the instantaneous frequencies of both ends
                    phase[k, j] = phase[m, n] + (j - n) * 0.5 * (time_step[m, n] + time_step[k, j])
                else:       # along frequency: the group delays of both ends
                    phase[k, j] = phase[m, n] + (k - m) * 0.5 * (freq_step[m, n] + freq_step[k, j])
                done[k, j] = True
                heapq.heappush(heap, (-s[k, j], k, j))
    return phase


def _rtpghi_frame(col: np.ndarray, prev_col: Optional[np.ndarray], previous: np.ndarray,
                  prev_step: Optional[np.ndarray], time_step: np.ndarray, freq_step: np.ndarray, floor: float,
                  reach: float) -> np.ndarray:
    """One frame of RTPGHI's heap integration (window-centred phase ``[F]``): ``col`` its amplitude, ``prev_col``
    / ``previous`` / ``prev_step`` the previous frame's amplitude, phase and time steps (``None`` for the first
    frame), ``time_step`` / ``freq_step`` its own, ``floor`` / ``reach`` its tolerance and the maximum it is
    relative to."""
    F = col.shape[0]
    done = col < floor if reach > 0 else np.ones(F, dtype=bool)
    current = np.zeros(F)
    # seeds: the previous frame's bins, by their amplitude (their phases are known)
    heap = [(-prev_col[m], m, 0) for m in np.flatnonzero(~done)] if prev_col is not None else []
    heapq.heapify(heap)
    while True:
        if not heap:
            if done.all():
                break
            m = int(np.argmax(np.where(done, -1.0, col)))  # no path from the past: phase 0 for the loudest
            done[m] = True
            heapq.heappush(heap, (-col[m], m, 1))
            continue
        _, m, here = heapq.heappop(heap)
        if not here:  # a previous-frame bin: integrate along time into this frame
            if not done[m]:
                current[m] = previous[m] + 0.5 * (prev_step[m] + time_step[m])
                done[m] = True
                heapq.heappush(heap, (-col[m], m, 1))
            continue
        for k in (m - 1, m + 1):
            if 0 <= k < F and not done[k]:
                current[k] = current[m] + (k - m) * 0.5 * (freq_step[m] + freq_step[k])
                done[k] = True
                heapq.heappush(heap, (-col[k], k, 1))
    return current


def _rtpghi_heap(s: np.ndarray, time_step: np.ndarray, freq_step: np.ndarray, floors: np.ndarray,
                 reach: np.ndarray) -> np.ndarray:
    """RTPGHI's frame-by-frame heap integration in Python (the reference ``cpu/phase_heap.cpp`` mirrors)."""
    F, T = s.shape
    phase = np.zeros((F, T))
    for n in range(T):
        first = n == 0
        phase[:, n] = _rtpghi_frame(s[:, n], None if first else s[:, n - 1], None if first else phase[:, n - 1],
                                    None if first else time_step[:, n - 1], time_step[:, n], freq_step[:, n],
                                    floors[n], reach[n])
    return phase


_NO_PREVIOUS = torch.zeros(0, dtype=torch.float64)  # rtpghi_integrate: frame 0 is the first


def _f64(*arrays):
    return [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)) for a in arrays]


def pghi(amplitude, hop: int, n_fft: int, tolerance: float = DEFAULT_TOLERANCE, lam: Optional[float] = None,
         compiled: Optional[bool] = None) -> np.ndarray:
    """Phase ``[F, T]`` (frame-start convention) of the amplitude ``[F, T]`` (``F = n_fft // 2 + 1``), the whole
    utterance integrated at once from its loudest bins. ``compiled``: ``None`` uses the compiled heap
    integration when it is built (``VOCODER_KERNELS=0`` forbids it), ``False`` the Python reference, ``True``
    requires the compiled one; both give the same bits."""
    s = _as_numpy(amplitude)
    peak = float(s.max()) if s.size else 0.0
    if peak <= 0:
        return _to_frame_start(np.zeros(s.shape))
    floor = tolerance * peak
    time_step, freq_step = phase_steps(np.log(np.maximum(s, floor)), hop, n_fft, lam)
    ext = _heap_extension(compiled)
    if ext is None:
        return _to_frame_start(_pghi_heap(s, time_step, freq_step, floor))
    return _to_frame_start(ext.pghi_integrate(*_f64(s, time_step, freq_step), float(floor)).numpy())


def frame_tolerances(s: np.ndarray, tolerance: float, previous_max: float = 0.0):
    """RTPGHI's significance rule for frames ``s [F, t]``: ``(floors [t], reach [t], log-amplitude [F, t])``. A
    frame's floor is ``tolerance`` times its reach, the larger of its own and the previous frame's maximum
    (``previous_max`` before the first; 0 at an utterance's start); the log-amplitude is floored there."""
    maxima = s.max(axis=0)
    reach = np.maximum(maxima, np.concatenate([[previous_max], maxima[:-1]]))
    floors = tolerance * reach
    return floors, reach, np.log(np.maximum(s, np.maximum(floors, 1e-300)[None, :]))


def rtpghi(amplitude, hop: int, n_fft: int, tolerance: float = DEFAULT_TOLERANCE, lam: Optional[float] = None,
           compiled: Optional[bool] = None) -> np.ndarray:
    """Phase ``[F, T]`` (frame-start convention) of the amplitude ``[F, T]``, frame by frame with one frame of
    lookahead: frame ``n``'s phase depends on frames ``<= n + 1`` only, so a stream gives the same phase.
    ``compiled``: as in :func:`pghi`."""
    s = _as_numpy(amplitude)
    F, T = s.shape
    if T == 0:
        return np.zeros((F, T))
    floors, reach, logs = frame_tolerances(s, tolerance)
    time_step, freq_step = phase_steps(logs, hop, n_fft, lam)
    ext = _heap_extension(compiled)
    if ext is None:
        return _to_frame_start(_rtpghi_heap(s, time_step, freq_step, floors, reach))
    return _to_frame_start(ext.rtpghi_integrate(*_f64(s, time_step, freq_step, floors, reach), _NO_PREVIOUS).numpy())


def _heap_extension(compiled: Optional[bool]):
    if compiled is False:
        return None
    ext = _compiled()
    if ext is None and compiled:
        raise RuntimeError("the compiled PGHI heap integration is not available (build failed, or "
                           "VOCODER_KERNELS=0); scripts/build_kernels.py says why")
    return ext


class RTPGHIStream:
    """:func:`rtpghi` for a stream: ``push(amplitude [F, t])`` returns the phases ``[F, t']`` that are final (each
    frame waits for the next one: the time derivative is centred), ``flush()`` the last frame's; all pieces together
    equal ``rtpghi`` of the whole amplitude, bit for bit (tested), whatever the chunking. The frames a push makes
    final are integrated in one call of the compiled heap (``compiled`` as in :func:`pghi`), seeded with the last
    integrated frame.

    State: the frame still waiting for its successor (amplitude, log-amplitude, tolerance), the last integrated
    frame's amplitude, log-amplitude, time steps and phase, and the last frame's maximum (the tolerance of a frame
    is relative to it and its predecessor).
    """

    def __init__(self, hop: int, n_fft: int, tolerance: float = DEFAULT_TOLERANCE, lam: Optional[float] = None,
                 compiled: Optional[bool] = None):
        self.hop, self.n_fft, self.tolerance, self.lam = int(hop), int(n_fft), float(tolerance), lam
        self._ext = _heap_extension(compiled)
        self.reset()

    def reset(self) -> None:
        """Start a new utterance."""
        self._pending = None          # (amplitude [F, 1], log [F, 1], floors [1], reach [1]) of the newest frame
        self._prev = None             # (amplitude, log, time_step, phase) [F] of the last integrated frame
        self._prev_max = 0.0          # maximum of the last frame pushed

    @property
    def pending_frames(self) -> int:
        """Frames pushed whose phase is not out yet (0 or 1)."""
        return 0 if self._pending is None else 1

    def _prepare(self, s: np.ndarray):
        """The tolerances and log-amplitudes of new frames ``[F, t]``, as :func:`rtpghi` computes them."""
        floors, reach, logs = frame_tolerances(s, self.tolerance, self._prev_max)
        self._prev_max = float(s[:, -1].max())
        return s, logs, floors, reach

    def _integrate(self, s, logs, floors, reach, after: np.ndarray) -> np.ndarray:
        """Window-centred phases ``[F, k]`` of frames ``s [F, k]`` (``after``: the next frame's log-amplitude)."""
        before = self._prev[1] if self._prev is not None else logs[:, 0]
        # the offline steps of these frames: the same centred differences over the same neighbours, bit for bit
        steps = phase_steps(np.concatenate([before[:, None], logs, after[:, None]], axis=1), self.hop, self.n_fft,
                            self.lam)
        time_step, freq_step = steps[0][:, 1:-1], steps[1][:, 1:-1]
        prev = self._prev
        if self._ext is not None:
            previous = _NO_PREVIOUS if prev is None else torch.from_numpy(np.stack([prev[0], prev[3], prev[2]]))
            phase = self._ext.rtpghi_integrate(*_f64(s, time_step, freq_step, floors, reach), previous).numpy()
        else:
            phase = np.zeros(s.shape)
            for n in range(s.shape[1]):
                if n > 0:
                    prev = (s[:, n - 1], None, time_step[:, n - 1], phase[:, n - 1])
                phase[:, n] = _rtpghi_frame(s[:, n], None if prev is None else prev[0],
                                            None if prev is None else prev[3], None if prev is None else prev[2],
                                            time_step[:, n], freq_step[:, n], floors[n], reach[n])
        self._prev = (s[:, -1].copy(), logs[:, -1].copy(), time_step[:, -1].copy(), phase[:, -1].copy())
        return _to_frame_start(phase)

    def push(self, amplitude) -> np.ndarray:
        """Amplitude frames ``[F, t]`` in; the phases ``[F, t']`` now final out (``t' = t`` once running)."""
        s = _as_numpy(amplitude)
        if s.shape[1] == 0:
            return np.zeros((s.shape[0], 0))
        new = self._prepare(s)
        if self._pending is not None:  # the waiting frame goes first
            new = tuple(np.concatenate([a, b], axis=-1) for a, b in zip(self._pending, new))
        self._pending = tuple(np.ascontiguousarray(a[..., -1:]) for a in new)
        if new[0].shape[1] < 2:
            return np.zeros((s.shape[0], 0))
        ready = tuple(np.ascontiguousarray(a[..., :-1]) for a in new)
        return self._integrate(*ready, after=new[1][:, -1])

    def flush(self, n_bins: int) -> np.ndarray:
        """The last frame's phase ``[F, 1]`` (``[F, 0]`` when nothing is pending); then :meth:`reset`."""
        out = np.zeros((n_bins, 0))
        if self._pending is not None:
            out = self._integrate(*self._pending, after=self._pending[1][:, 0])
        self.reset()
        return out


def retrieve_phase(amplitude: torch.Tensor, method: str, hop: int, n_fft: int,
                   tolerance: float = DEFAULT_TOLERANCE) -> torch.Tensor:
    """``amplitude [B, F, T]`` -> phase ``[B, F, T]`` (float32, the amplitude's device) by ``method``
    (``"pghi"`` or ``"rtpghi"``), item by item."""
    if method not in ("pghi", "rtpghi"):
        raise ValueError(f"phase retrieval method must be 'pghi' or 'rtpghi', got {method!r}")
    if amplitude.dim() != 3:
        raise ValueError(f"expected an amplitude [B, F, T], got shape {tuple(amplitude.shape)}")
    fn = pghi if method == "pghi" else rtpghi
    out = [torch.from_numpy(fn(a, hop, n_fft, tolerance)) for a in amplitude]
    return torch.stack(out).to(device=amplitude.device, dtype=torch.float32)
