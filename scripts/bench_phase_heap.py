#!/usr/bin/env python
"""Why PGHI's heap integration is a C++ op: it against the same loop in numba (nopython, heapq) and in Python.

    python scripts/bench_phase_heap.py        # numba is optional: pip install numba to time it too

One 10-s spectrogram (513 bins x 861 frames, log-normal amplitudes), 1 thread, the best of 5 calls; checks that
the three give the same bits. Measured 2026-12-07 (AMD EPYC, AVX-512; numba 0.68.1): C++ 115 ms, numba 150 ms plus
3.6 s of JIT compilation in every new process, Python 1,491 ms. The C++ op is faster, needs no JIT warm-up and no
new dependency, and builds with the other kernels (vocoder/kernels/cpu/phase_heap.cpp).
"""
import heapq
import time

import numpy as np
import torch

from vocoder.kernels.build import load_phase_heap
from vocoder.nn import phase_retrieval as pr

try:
    import numba
except ImportError:
    numba = None


def pghi_heap_loop(s, time_step, freq_step, floor):
    """The reference loop of :func:`vocoder.nn.phase_retrieval._pghi_heap`, written for numba's nopython mode."""
    F, T = s.shape
    phase = np.zeros((F, T))
    done = s < floor
    order = np.argsort(-s.ravel(), kind="mergesort")
    next_seed = 0
    heap = [(0.0, 0, 0)]
    heap.pop()
    while True:
        if len(heap) == 0:
            while next_seed < order.size and done.ravel()[order[next_seed]]:
                next_seed += 1
            if next_seed == order.size:
                break
            m, n = order[next_seed] // T, order[next_seed] % T
            done[m, n] = True
            heap.append((-s[m, n], m, n))
        a, m, n = heapq.heappop(heap)
        for k, j in ((m, n + 1), (m, n - 1), (m + 1, n), (m - 1, n)):
            if 0 <= k < F and 0 <= j < T and not done[k, j]:
                if j != n:
                    phase[k, j] = phase[m, n] + (j - n) * 0.5 * (time_step[m, n] + time_step[k, j])
                else:
                    phase[k, j] = phase[m, n] + (k - m) * 0.5 * (freq_step[m, n] + freq_step[k, j])
                done[k, j] = True
                heapq.heappush(heap, (-s[k, j], k, j))
    return phase

def _best(f, repeats: int = 5):
    """(seconds, result) of the fastest of ``repeats`` calls."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> int:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    s = np.exp(rng.normal(size=(513, 861)) * 2)  # 10 s at hop 256, 22.05 kHz
    floor = 1e-5 * s.max()
    ts, fs = pr.phase_steps(np.log(np.maximum(s, floor)), 256, 1024)
    ext = load_phase_heap()
    if ext is None:
        raise SystemExit("the compiled heap did not build: python scripts/build_kernels.py says why")
    tc, pc = _best(lambda: ext.pghi_integrate(*pr._f64(s, ts, fs), float(floor)).numpy())
    t = time.perf_counter()
    pp = pr._pghi_heap(s, ts, fs, floor)
    tp = time.perf_counter() - t
    print(f"PGHI heap, 513 x 861 bins (10 s), 1 thread: C++ {tc * 1e3:.0f} ms, Python {tp * 1e3:.0f} ms; "
          f"equal: {np.array_equal(pc, pp)}")
    if numba is None:
        print("numba: not installed (pip install numba to time it)")
        return 0
    jitted = numba.njit(pghi_heap_loop)
    t = time.perf_counter()
    jitted(s, ts, fs, floor)
    first = time.perf_counter() - t
    tn, pn = _best(lambda: jitted(s, ts, fs, floor))
    print(f"numba {numba.__version__}: {tn * 1e3:.0f} ms (+{first:.1f} s JIT on the first call of a process); "
          f"equal to C++: {np.array_equal(pn, pc)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
