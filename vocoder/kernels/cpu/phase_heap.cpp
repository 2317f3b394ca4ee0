// Heap integration of PGHI and RTPGHI (vocoder/nn/phase_retrieval.py): the sequential part, compiled.
//
// The phase gradients come from Python (NumPy, vectorised); these functions only walk the heap. They mirror the
// Python reference step for step (the same heap order, ties broken the same way, the same trapezoid expression),
// so the phases agree bit for bit; tests/test_phase_retrieval.py checks that.
//
// All tensors are float64, contiguous, [F, T] (bins x frames); the phase returned is window-centred (the Python
// side converts it to torch.stft's frame-start convention).
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <queue>
#include <tuple>
#include <vector>

namespace {

// A heap entry ordered as Python's heapq orders (-amplitude, a, b): the largest amplitude first, then the
// smallest a, then the smallest b.
struct Entry {
  double amp;
  int64_t a, b;
};
struct Later {  // std::priority_queue pops the "largest": make that the entry heapq pops first
  bool operator()(const Entry& x, const Entry& y) const {
    if (x.amp != y.amp) return x.amp < y.amp;
    if (x.a != y.a) return x.a > y.a;
    return x.b > y.b;
  }
};
using Heap = std::priority_queue<Entry, std::vector<Entry>, Later>;

void check(const torch::Tensor& t, const char* name, int64_t F, int64_t T) {
  TORCH_CHECK(t.dtype() == torch::kFloat64 && t.is_contiguous() && t.dim() == 2 && t.size(0) == F &&
                  t.size(1) == T,
              name, ": expected a contiguous float64 [F, T] tensor");
}

}  // namespace

// PGHI over the whole [F, T] amplitude s: bins below `floor` keep phase 0; each island of the rest is seeded at
// its loudest bin (phase 0) and integrated outwards.
torch::Tensor pghi_integrate(torch::Tensor s, torch::Tensor time_step, torch::Tensor freq_step, double floor) {
  const int64_t F = s.size(0), T = s.size(1);
  check(s, "amplitude", F, T);
  check(time_step, "time_step", F, T);
  check(freq_step, "freq_step", F, T);
  auto phase_t = torch::zeros({F, T}, s.options());
  const double* S = s.data_ptr<double>();
  const double* TS = time_step.data_ptr<double>();
  const double* FS = freq_step.data_ptr<double>();
  double* P = phase_t.data_ptr<double>();
  const int64_t N = F * T;
  std::vector<uint8_t> done(N);
  for (int64_t i = 0; i < N; ++i) done[i] = S[i] < floor;
  // seeds in NumPy's argsort(-s, kind="stable") order: amplitude descending, ties by flat index
  std::vector<int64_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return S[x] > S[y]; });
  int64_t next_seed = 0;
  Heap heap;
  const int64_t dk[4] = {0, 0, 1, -1}, dj[4] = {1, -1, 0, 0};  // (m, n+1), (m, n-1), (m+1, n), (m-1, n)
  while (true) {
    if (heap.empty()) {
      while (next_seed < N && done[order[next_seed]]) ++next_seed;
      if (next_seed == N) break;
      const int64_t i = order[next_seed];
      done[i] = 1;
      heap.push({S[i], i / T, i % T});
    }
    const Entry e = heap.top();
    heap.pop();
    const int64_t m = e.a, n = e.b, here = m * T + n;
    for (int d = 0; d < 4; ++d) {
      const int64_t k = m + dk[d], j = n + dj[d];
      if (k < 0 || k >= F || j < 0 || j >= T) continue;
      const int64_t there = k * T + j;
      if (done[there]) continue;
      if (j != n)
        P[there] = P[here] + static_cast<double>(j - n) * 0.5 * (TS[here] + TS[there]);
      else
        P[there] = P[here] + static_cast<double>(k - m) * 0.5 * (FS[here] + FS[there]);
      done[there] = 1;
      heap.push({S[there], k, j});
    }
  }
  return phase_t;
}

// RTPGHI frame by frame: frame n's significant bins (s >= floors[n]; none when reach[n] <= 0) are reached from the
// previous frame's phases along time or from this frame's bins along frequency, loudest first.
// `previous` (optional, for a stream): [3, F] rows amplitude, phase, time step of the frame before frame 0, whose
// phase is known; empty: frame 0 is the utterance's first.
torch::Tensor rtpghi_integrate(torch::Tensor s, torch::Tensor time_step, torch::Tensor freq_step,
                               torch::Tensor floors, torch::Tensor reach, torch::Tensor previous) {
  const int64_t F = s.size(0), T = s.size(1);
  check(s, "amplitude", F, T);
  check(time_step, "time_step", F, T);
  check(freq_step, "freq_step", F, T);
  TORCH_CHECK(floors.dtype() == torch::kFloat64 && floors.is_contiguous() && floors.numel() == T, "floors: [T]");
  TORCH_CHECK(reach.dtype() == torch::kFloat64 && reach.is_contiguous() && reach.numel() == T, "reach: [T]");
  const bool has_previous = previous.numel() > 0;
  if (has_previous) check(previous, "previous", 3, F);
  auto phase_t = torch::zeros({F, T}, s.options());
  const double* S = s.data_ptr<double>();
  const double* TS = time_step.data_ptr<double>();
  const double* FS = freq_step.data_ptr<double>();
  const double* FL = floors.data_ptr<double>();
  const double* R = reach.data_ptr<double>();
  const double* PV = has_previous ? previous.data_ptr<double>() : nullptr;
  double* P = phase_t.data_ptr<double>();
  // the frame before frame n: its amplitude, phase and time step
  auto prev_s = [&](int64_t m, int64_t n) { return n > 0 ? S[m * T + n - 1] : PV[m]; };
  auto prev_p = [&](int64_t m, int64_t n) { return n > 0 ? P[m * T + n - 1] : PV[F + m]; };
  auto prev_ts = [&](int64_t m, int64_t n) { return n > 0 ? TS[m * T + n - 1] : PV[2 * F + m]; };
  std::vector<uint8_t> done(F);
  for (int64_t n = 0; n < T; ++n) {
    Heap heap;
    for (int64_t m = 0; m < F; ++m) {
      done[m] = R[n] > 0 ? S[m * T + n] < FL[n] : 1;
      if (!done[m] && (n > 0 || has_previous)) heap.push({prev_s(m, n), m, 0});  // seeds: the previous frame's bins
    }
    while (true) {
      if (heap.empty()) {
        // no path from the past: phase 0 for the loudest remaining bin (the first of equal ones, as argmax)
        int64_t best = -1;
        for (int64_t m = 0; m < F; ++m)
          if (!done[m] && (best < 0 || S[m * T + n] > S[best * T + n])) best = m;
        if (best < 0) break;
        done[best] = 1;
        heap.push({S[best * T + n], best, 1});
        continue;
      }
      const Entry e = heap.top();
      heap.pop();
      const int64_t m = e.a;
      if (e.b == 0) {  // a previous-frame bin: along time into this frame
        if (!done[m]) {
          P[m * T + n] = prev_p(m, n) + 0.5 * (prev_ts(m, n) + TS[m * T + n]);
          done[m] = 1;
          heap.push({S[m * T + n], m, 1});
        }
        continue;
      }
      for (int64_t k = m - 1; k <= m + 1; k += 2) {
        if (k < 0 || k >= F || done[k]) continue;
        P[k * T + n] = P[m * T + n] + static_cast<double>(k - m) * 0.5 * (FS[m * T + n] + FS[k * T + n]);
        done[k] = 1;
        heap.push({S[k * T + n], k, 1});
      }
    }
  }
  return phase_t;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pghi_integrate", &pghi_integrate, "PGHI heap integration (float64 [F, T], window-centred phase)");
  m.def("rtpghi_integrate", &rtpghi_integrate, "RTPGHI heap integration, frame by frame");
}
