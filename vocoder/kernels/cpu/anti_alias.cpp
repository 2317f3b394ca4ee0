// Fused anti-aliased activation for CPU: UpSample1d(x2, 12 taps) -> Snake/SnakeBeta -> DownSample1d(x2, 12 taps).
//
// Reference (BigVGAN alias_free_activation/torch), for one row x[0..T) of a [B, C, T] tensor:
//   up:   u = 2 * conv_transpose1d(replicate_pad(x, 5), f_up, stride 2)[15 : 15 + 2T]          -> [2T]
//   act:  v = u + inv * sin(a * u)^2      (a = alpha or exp(alpha); inv = 1 / (alpha|beta + eps))
//   down: y = conv1d(replicate_pad(v, (5, 6)), f_dn, stride 2)                                 -> [T]
//
// Polyphase form used here (s indexes the low rate; ve[s] = v[2s], vo[s] = v[2s+1]):
//   ue[s] = sum_i UE[i] * x[clamp(s + 2 - i)],   UE[i] = 2 f_up[2i + 1]
//   uo[s] = sum_i UO[i] * x[clamp(s + 3 - i)],   UO[i] = 2 f_up[2i]
//   y[t]  = sum_i DE[i] * ve[t + i - 2] + DO[i] * vo[t + i - 3],  DE[i] = f_dn[2i + 1], DO[i] = f_dn[2i]
// where the replicate padding of v means: ve[s] = vo[s] = v[0] = ve[0] for s < 0, and
// ve[s] = vo[s] = v[2T - 1] = vo[T - 1] for s >= T.  No multiply is spent on the zeros that a
// transposed convolution inserts, and only the kept samples of the downsampler are computed.
//
// Each row is cut into tiles of kTile outputs; a tile's upsampled/activated intermediate (2 * (kTile + 6)
// values) lives in small per-thread buffers that stay in L1, so it never goes to memory. Work items are
// (row, tile) pairs spread over threads with at::parallel_for (OpenMP in PyTorch builds).
//
// The float path evaluates sin/cos with a branch-free polynomial (Cody-Waite reduction + Cephes minimax
// polynomials, ~1 ulp for |a*u| <= kPolyLimit) so the loops auto-vectorise without -ffast-math; a tile
// holding a larger (or non-finite) argument is recomputed with std::sin/std::cos. The double path always
// uses std::sin/std::cos (it exists for gradcheck).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__GNUC__)
#define AA_INLINE inline __attribute__((always_inline))
#else
#define AA_INLINE inline
#endif

// float <-> bits. Not std::bit_cast: that is C++20, and torch < 2.14 builds extensions with -std=c++17.
// A 4-byte memcpy folds to a register move, also inside vectorised loops.
AA_INLINE uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
AA_INLINE float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

namespace {

constexpr int64_t kTile = 1024;   // outputs per tile: buffers of ~4 KiB each, L1 resident
constexpr float kPolyLimit = 8192.0f;

template <typename T>
struct Taps {
  T ue[6];
  T uo[6];
  T de[6];
  T dd[6];
};

template <typename T>
Taps<T> make_taps(const at::Tensor& f_up, const at::Tensor& f_dn) {
  auto up = f_up.to(at::kDouble).contiguous();
  auto dn = f_dn.to(at::kDouble).contiguous();
  const double* pu = up.data_ptr<double>();
  const double* pd = dn.data_ptr<double>();
  Taps<T> k;
  #pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    // Multiplying by the ratio 2 is exact, so folding it into the taps changes no rounding.
    k.ue[i] = static_cast<T>(static_cast<T>(pu[2 * i + 1]) * T(2));
    k.uo[i] = static_cast<T>(static_cast<T>(pu[2 * i]) * T(2));
    k.de[i] = static_cast<T>(pd[2 * i + 1]);
    k.dd[i] = static_cast<T>(pd[2 * i]);
  }
  return k;
}

AA_INLINE int64_t clampi(int64_t i, int64_t lo, int64_t hi) { return i < lo ? lo : (i > hi ? hi : i); }

// ---- trigonometry -------------------------------------------------------------------------------

// x = q pi/2 + r with integer q and |r| <= pi/4: returns r, sets q.
AA_INLINE float reduce_quadrant(float x, int& qi) {
  const float q = x * 0.636619772367581343f;            // x / (pi/2)
  const float magic = 12582912.0f;                        // 1.5 * 2^23: round-to-nearest by addition
  const float qr = (q + magic) - magic;
  qi = static_cast<int>(qr);
  float r = x - qr * 1.5703125f;                          // pi/2 split in three parts (Cody-Waite)
  r = r - qr * 4.837512969970703125e-4f;
  return r - qr * 7.54978995489188216e-8f;
}

// Minimax sin on |r| <= pi/4 (Cephes).
AA_INLINE float sin_kernel(float r, float r2) {
  return r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
}

// sin(x) and cos(x), float, branch-free; accurate to ~1 ulp for |x| <= kPolyLimit.
AA_INLINE void sincos_poly(float x, float& s, float& c) {
  int qi;
  const float r = reduce_quadrant(x, qi);
  const float r2 = r * r;
  const float sp = sin_kernel(r, r2);
  const float cp = 1.0f - 0.5f * r2 +
                   r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
  // Quadrant fix-up with bit operations rather than branches or selects: GCC would otherwise sink the
  // unused polynomial into a branch and give up vectorising the caller's loop.
  const uint32_t swap = 0u - static_cast<uint32_t>(qi & 1);
  const uint32_t bs = bits_of(sp), bc = bits_of(cp);
  const uint32_t ss = (bc & swap) | (bs & ~swap);
  const uint32_t cc = (bs & swap) | (bc & ~swap);
  s = float_of(ss ^ (static_cast<uint32_t>(qi & 2) << 30));
  c = float_of(cc ^ (static_cast<uint32_t>((qi + 1) & 2) << 30));
}

// sin(x)^2, float, branch-free, with one polynomial instead of two: sin^2 has period pi, so with
// x = q pi/2 + r (|r| <= pi/4) it is sin(r)^2 for even q and cos(r)^2 = 1 - sin(r)^2 for odd q
// (no cancellation: sin(r)^2 <= 1/2 there). Same range and accuracy as sincos_poly.
AA_INLINE float sin2_poly(float x) {
  int qi;
  const float r = reduce_quadrant(x, qi);
  const float sp = sin_kernel(r, r * r);
  const float s2 = sp * sp, c2 = 1.0f - s2;
  const uint32_t odd = 0u - static_cast<uint32_t>(qi & 1);  // bit select, as in sincos_poly
  return float_of((bits_of(c2) & odd) | (bits_of(s2) & ~odd));
}

// ---- forward ------------------------------------------------------------------------------------

// Activated polyphase intermediate over local indices j in [0, m): ve[j], vo[j] at s = S0 + j.
// xt[j'] = x[clamp(S0 - 3 + j')], length m + 6. Returns false when a fast-path argument was out of range.
template <typename T, bool kPoly>
AA_INLINE bool up_act(const T* __restrict xt, int64_t m, const Taps<T>& kin, T a, T inv, T* __restrict ve,
            T* __restrict vo) {
  const Taps<T> k = kin;  // a local copy: the taps cannot alias the outputs, so they stay in registers
  int bad = 0;
  for (int64_t j = 0; j < m; ++j) {
    T e = 0, o = 0;
    #pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      e += k.ue[i] * xt[j + 5 - i];
      o += k.uo[i] * xt[j + 6 - i];
    }
    const T ze = a * e, zo = a * o;
    T se2, so2;  // sin(a u)^2
    if constexpr (kPoly) {
      se2 = sin2_poly(ze);
      so2 = sin2_poly(zo);
      bad |= static_cast<int>(!(std::fabs(ze) <= kPolyLimit)) | static_cast<int>(!(std::fabs(zo) <= kPolyLimit));
    } else {
      const T se = std::sin(ze), so = std::sin(zo);
      se2 = se * se;
      so2 = so * so;
    }
    ve[j] = e + inv * se2;
    vo[j] = o + inv * so2;
  }
  return bad == 0;
}

template <typename T>
AA_INLINE void forward_tile(const T* __restrict xr, int64_t T_len, int64_t t0, int64_t t1, const Taps<T>& kin, T a, T inv,
                  T* __restrict yr, T* xt, T* ve, T* vo) {
  const Taps<T> k = kin;
  const int64_t n = t1 - t0;
  const int64_t S0 = t0 - 3, m = n + 6;
  for (int64_t j = 0; j < m + 6; ++j) xt[j] = xr[clampi(S0 - 3 + j, 0, T_len - 1)];
  if constexpr (std::is_same_v<T, float>) {
    if (!up_act<T, true>(xt, m, k, a, inv, ve, vo)) up_act<T, false>(xt, m, k, a, inv, ve, vo);
  } else {
    up_act<T, false>(xt, m, k, a, inv, ve, vo);
  }
  // Replicate padding of v: v[m < 0] = v[0] = ve(s=0), v[m >= 2T] = v[2T-1] = vo(s=T-1).
  if (S0 < 0) {
    const T v0 = ve[-S0];
    for (int64_t j = 0; j < -S0; ++j) ve[j] = vo[j] = v0;
  }
  if (S0 + m > T_len) {
    const T vl = vo[T_len - 1 - S0];
    for (int64_t j = T_len - S0; j < m; ++j) ve[j] = vo[j] = vl;
  }
  for (int64_t q = 0; q < n; ++q) {
    T y = 0;
    #pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) y += k.de[i] * ve[q + i + 1] + k.dd[i] * vo[q + i];
    yr[t0 + q] = y;
  }
}

struct RowParam {
  double a;    // effective alpha (exp'ed when log-scale)
  double inv;  // 1 / (effective alpha or beta + eps)
  double b;    // effective beta (SnakeBeta) or alpha (Snake)
};

template <typename T>
std::vector<RowParam> channel_params(const at::Tensor& alpha, const at::Tensor& beta, bool is_beta, bool logscale,
                                     double eps) {
  // Same operations, in the same precision T, as the reference module.
  auto al = alpha.contiguous();
  auto be = beta.contiguous();
  const T* pa = al.data_ptr<T>();
  const T* pb = be.data_ptr<T>();
  std::vector<RowParam> out(al.numel());
  for (int64_t c = 0; c < al.numel(); ++c) {
    T a = pa[c], b = is_beta ? pb[c] : pa[c];
    if (logscale) {
      a = std::exp(a);
      b = std::exp(b);
    }
    const T inv = T(1) / (b + static_cast<T>(eps));
    out[c] = RowParam{static_cast<double>(a), static_cast<double>(inv), static_cast<double>(b)};
  }
  return out;
}

void check_inputs(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& beta, const at::Tensor& f_up,
                  const at::Tensor& f_dn) {
  TORCH_CHECK(x.device().is_cpu(), "anti_alias CPU kernel: expected a CPU tensor, got ", x.device());
  TORCH_CHECK(x.dim() == 3, "anti_alias: expected x of shape [B, C, T], got ", x.sizes());
  TORCH_CHECK(x.size(2) >= 1, "anti_alias: expected T >= 1, got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "anti_alias CPU kernel: expected float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(alpha.numel() == x.size(1) && beta.numel() == x.size(1),
              "anti_alias: expected alpha and beta with C=", x.size(1), " values, got ", alpha.numel(), " and ",
              beta.numel());
  TORCH_CHECK(alpha.scalar_type() == x.scalar_type() && beta.scalar_type() == x.scalar_type(),
              "anti_alias: alpha/beta dtype must equal x dtype");
  TORCH_CHECK(f_up.numel() == 12 && f_dn.numel() == 12, "anti_alias: expected 12-tap filters, got ", f_up.numel(),
              " and ", f_dn.numel());
}

// ---- backward -----------------------------------------------------------------------------------

// Gradient reaching the replicated v[0] (resp. v[2T-1]) from the padded positions s < 0 (resp. s >= T):
// sum over those s of sum_i DE[i] g[s + 2 - i] + DO[i] g[s + 3 - i], with g zero outside [0, T).
template <typename T>
T pad_grad(const T* g, int64_t T_len, const Taps<T>& k, int64_t s_begin, int64_t s_end) {
  T acc = 0;
  for (int64_t s = s_begin; s < s_end; ++s) {
    #pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      const int64_t te = s + 2 - i, to = s + 3 - i;
      if (te >= 0 && te < T_len) acc += k.de[i] * g[te];
      if (to >= 0 && to < T_len) acc += k.dd[i] * g[to];
    }
  }
  return acc;
}

// For local j in [j0, j1) (all with 0 <= S0 + j < T): recompute u, turn grad v into grad u in place, and
// when kAccumulate add sum gv * u * sin(2au) and sum gv * sin(au)^2 (for the alpha/beta gradients).
template <typename T, bool kPoly, bool kAccumulate>
AA_INLINE bool act_backward(const T* __restrict xt, int64_t j0, int64_t j1, const Taps<T>& kin, T a, T inv,
                  T* __restrict ge, T* __restrict go, T& acc_usin2, T& acc_sin2) {
  const Taps<T> k = kin;
  int bad = 0;
  T s1 = 0, s2 = 0;
  const T two_a_inv = T(2) * a * inv;
  for (int64_t j = j0; j < j1; ++j) {
    T e = 0, o = 0;
    #pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      e += k.ue[i] * xt[j + 5 - i];
      o += k.uo[i] * xt[j + 6 - i];
    }
    const T ze = a * e, zo = a * o;
    T se, ce, so, co;
    if constexpr (kPoly) {
      sincos_poly(ze, se, ce);
      sincos_poly(zo, so, co);
      bad |= static_cast<int>(!(std::fabs(ze) <= kPolyLimit)) | static_cast<int>(!(std::fabs(zo) <= kPolyLimit));
    } else {
      se = std::sin(ze);
      ce = std::cos(ze);
      so = std::sin(zo);
      co = std::cos(zo);
    }
    const T gve = ge[j], gvo = go[j];
    const T sce = se * ce, sco = so * co;
    ge[j] = gve * (T(1) + two_a_inv * sce);
    go[j] = gvo * (T(1) + two_a_inv * sco);
    if constexpr (kAccumulate) {
      s1 += gve * (T(2) * sce * e) + gvo * (T(2) * sco * o);
      s2 += gve * (se * se) + gvo * (so * so);
    }
  }
  if constexpr (kAccumulate) {
    acc_usin2 = s1;
    acc_sin2 = s2;
  }
  return bad == 0;
}

template <typename T, bool kPoly>
AA_INLINE bool act_backward_tile(const T* xt, int64_t m, int64_t jlo, int64_t jhi, int64_t own0, int64_t own1, const Taps<T>& k,
                       T a, T inv, T* ge, T* go, T& acc1, T& acc2) {
  T d1, d2;
  bool ok = act_backward<T, kPoly, false>(xt, jlo, own0, k, a, inv, ge, go, d1, d2);
  ok &= act_backward<T, kPoly, true>(xt, own0, own1, k, a, inv, ge, go, acc1, acc2);
  ok &= act_backward<T, kPoly, false>(xt, own1, jhi, k, a, inv, ge, go, d1, d2);
  return ok;
}

// One tile of the backward pass. Writes gx[t0..t1) and returns the tile's partial sums for alpha/beta.
template <typename T>
AA_INLINE void backward_tile(const T* __restrict xr, const T* __restrict gr, int64_t T_len, int64_t t0, int64_t t1,
                   const Taps<T>& kin, T a, T inv, T pad0, T padT, T* __restrict gxr, T* xt, T* gt, T* ge, T* go,
                   T* ge_save, T* go_save, double& acc1, double& acc2) {
  const Taps<T> k = kin;
  const int64_t n = t1 - t0;
  const int64_t S0 = t0 - 3, m = n + 6;
  for (int64_t j = 0; j < m + 6; ++j) {
    const int64_t t = S0 - 3 + j;
    xt[j] = xr[clampi(t, 0, T_len - 1)];
    gt[j] = (t >= 0 && t < T_len) ? gr[t] : T(0);
  }
  // Adjoint of the downsampler: grad v, polyphase.
  for (int64_t j = 0; j < m; ++j) {
    T e = 0, o = 0;
    #pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      e += k.de[i] * gt[j + 5 - i];
      o += k.dd[i] * gt[j + 6 - i];
    }
    ge[j] = e;
    go[j] = o;
  }
  // Padded positions carry no u of their own: their gradient goes to v[0] / v[2T-1].
  const int64_t jlo = std::max<int64_t>(0, -S0), jhi = std::min<int64_t>(m, T_len - S0);
  for (int64_t j = 0; j < jlo; ++j) ge[j] = go[j] = 0;
  for (int64_t j = jhi; j < m; ++j) ge[j] = go[j] = 0;
  if (jlo > 0) ge[jlo] += pad0;            // s = 0 is in this tile's range
  if (S0 + m > T_len) go[T_len - 1 - S0] += padT;  // s = T - 1 is in this tile's range
  // Activation: grad u, plus the alpha/beta sums over the samples this tile owns (s in [t0, t1)).
  const int64_t own0 = 3, own1 = 3 + n;
  T p1 = 0, p2 = 0;
  if constexpr (std::is_same_v<T, float>) {
    std::copy(ge, ge + m, ge_save);
    std::copy(go, go + m, go_save);
    if (!act_backward_tile<T, true>(xt, m, jlo, jhi, own0, own1, k, a, inv, ge, go, p1, p2)) {
      std::copy(ge_save, ge_save + m, ge);
      std::copy(go_save, go_save + m, go);
      act_backward_tile<T, false>(xt, m, jlo, jhi, own0, own1, k, a, inv, ge, go, p1, p2);
    }
  } else {
    act_backward_tile<T, false>(xt, m, jlo, jhi, own0, own1, k, a, inv, ge, go, p1, p2);
  }
  acc1 += static_cast<double>(p1);
  acc2 += static_cast<double>(p2);
  // Adjoint of the upsampler: gx[r] = sum_i UE[i] gue[r - 2 + i] + UO[i] guo[r - 3 + i].
  for (int64_t q = 0; q < n; ++q) {
    T g = 0;
    #pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) g += k.ue[i] * ge[q + i + 1] + k.uo[i] * go[q + i];
    gxr[t0 + q] = g;
  }
  // Replicate padding of x: the gradients of x[r < 0] and x[r >= T] belong to x[0] and x[T-1].
  auto ext = [&](int64_t r) {
    T g = 0;
    #pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      const int64_t je = r - 2 + i - S0, jo = r - 3 + i - S0;
      if (je >= 0 && je < m) g += k.ue[i] * ge[je];
      if (jo >= 0 && jo < m) g += k.uo[i] * go[jo];
    }
    return g;
  };
  if (t0 == 0) {
    T extra = 0;
    for (int64_t r = -3; r < 0; ++r) extra += ext(r);
    gxr[0] += extra;
  }
  if (t1 == T_len) {
    T extra = 0;
    for (int64_t r = T_len; r < T_len + 3; ++r) extra += ext(r);
    gxr[T_len - 1] += extra;
  }
}

// ---- instruction-set dispatch -------------------------------------------------------------------
//
// The float tile functions are compiled three times: for the baseline ISA of the build (SSE2 on x86-64),
// for AVX2 and for AVX-512, each a plain wrapper with a GCC/Clang `target` attribute into which the
// always-inline templates above are inlined. The widest one the CPU supports is picked once at run time,
// so the binary stays portable (no -march=native). The code has no floating-point contraction (ISO C++
// mode: -ffp-contract=off) and the same operation order in every variant, so all variants give
// bit-identical results; tests check that.

enum Isa : int { kIsaDefault = 0, kIsaAvx2 = 1, kIsaAvx512 = 2 };

template <typename T>
using ForwardTileFn = void (*)(const T*, int64_t, int64_t, int64_t, const Taps<T>&, T, T, T*, T*, T*, T*);
template <typename T>
using BackwardTileFn = void (*)(const T*, const T*, int64_t, int64_t, int64_t, const Taps<T>&, T, T, T, T, T*, T*,
                                T*, T*, T*, T*, T*, double&, double&);

template <typename T>
struct TileKernels {
  ForwardTileFn<T> forward;
  BackwardTileFn<T> backward;
};

#define AA_DEFINE_TILE_WRAPPERS(SUFFIX, ATTR)                                                                       \
  ATTR void forward_tile_##SUFFIX(const float* xr, int64_t T_len, int64_t t0, int64_t t1, const Taps<float>& k,      \
                                  float a, float inv, float* yr, float* xt, float* ve, float* vo) {                 \
    forward_tile<float>(xr, T_len, t0, t1, k, a, inv, yr, xt, ve, vo);                                               \
  }                                                                                                                  \
  ATTR void backward_tile_##SUFFIX(const float* xr, const float* gr, int64_t T_len, int64_t t0, int64_t t1,         \
                                   const Taps<float>& k, float a, float inv, float pad0, float padT, float* gxr,     \
                                   float* xt, float* gt, float* ge, float* go, float* ges, float* gos, double& a1,  \
                                   double& a2) {                                                                     \
    backward_tile<float>(xr, gr, T_len, t0, t1, k, a, inv, pad0, padT, gxr, xt, gt, ge, go, ges, gos, a1, a2);       \
  }

AA_DEFINE_TILE_WRAPPERS(default, )

#if defined(__GNUC__) && defined(__x86_64__)
#define AA_HAVE_X86_VARIANTS 1
AA_DEFINE_TILE_WRAPPERS(avx2, __attribute__((target("avx2,fma"))))
AA_DEFINE_TILE_WRAPPERS(avx512, __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"))))
#endif

int best_isa() {
#ifdef AA_HAVE_X86_VARIANTS
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
    return kIsaAvx512;
  if (avx2) return kIsaAvx2;
#endif
  return kIsaDefault;
}

std::atomic<int>& current_isa() {
  static std::atomic<int> isa{best_isa()};
  return isa;
}

const char* isa_name(int isa) {
  return isa == kIsaAvx512 ? "avx512" : (isa == kIsaAvx2 ? "avx2" : "default");
}

template <typename T>
TileKernels<T> tile_kernels() {
  if constexpr (std::is_same_v<T, float>) {
#ifdef AA_HAVE_X86_VARIANTS
    switch (current_isa().load()) {
      case kIsaAvx512:
        return {&forward_tile_avx512, &backward_tile_avx512};
      case kIsaAvx2:
        return {&forward_tile_avx2, &backward_tile_avx2};
      default:
        break;
    }
#endif
    return {&forward_tile_default, &backward_tile_default};
  } else {
    return {&forward_tile<T>, &backward_tile<T>};
  }
}

template <typename T>
void forward_impl(const at::Tensor& x, const std::vector<RowParam>& rp, const Taps<T>& k, at::Tensor& y) {
  const int64_t B = x.size(0), C = x.size(1), T_len = x.size(2);
  const int64_t rows = B * C, ntiles = (T_len + kTile - 1) / kTile;
  const T* px = x.data_ptr<T>();
  T* py = y.data_ptr<T>();
  const auto tile_fn = tile_kernels<T>().forward;
  at::parallel_for(0, rows * ntiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> buf(3 * (kTile + 12));
    T* xt = buf.data();
    T* ve = xt + kTile + 12;
    T* vo = ve + kTile + 12;
    for (int64_t w = begin; w < end; ++w) {
      const int64_t row = w / ntiles, tile = w % ntiles;
      const int64_t t0 = tile * kTile, t1 = std::min(T_len, t0 + kTile);
      const RowParam& p = rp[row % C];
      tile_fn(px + row * T_len, T_len, t0, t1, k, static_cast<T>(p.a), static_cast<T>(p.inv),
                      py + row * T_len, xt, ve, vo);
    }
  });
}

template <typename T>
std::vector<at::Tensor> backward_impl(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& alpha,
                                      const at::Tensor& beta, const std::vector<RowParam>& rp, const Taps<T>& k,
                                      bool is_beta, bool logscale) {
  const int64_t B = x.size(0), C = x.size(1), T_len = x.size(2);
  const int64_t rows = B * C, ntiles = (T_len + kTile - 1) / kTile;
  auto gx = at::empty_like(x);
  std::vector<double> partial(rows * ntiles * 2, 0.0);
  const T* px = x.data_ptr<T>();
  const T* pg = grad_out.data_ptr<T>();
  T* pgx = gx.data_ptr<T>();
  const auto tile_fn = tile_kernels<T>().backward;
  at::parallel_for(0, rows * ntiles, 1, [&](int64_t begin, int64_t end) {
    const int64_t L = kTile + 12;
    std::vector<T> buf(6 * L);
    T *xt = buf.data(), *gt = xt + L, *ge = gt + L, *go = ge + L, *ges = go + L, *gos = ges + L;
    for (int64_t w = begin; w < end; ++w) {
      const int64_t row = w / ntiles, tile = w % ntiles;
      const int64_t t0 = tile * kTile, t1 = std::min(T_len, t0 + kTile);
      const RowParam& p = rp[row % C];
      const T* gr = pg + row * T_len;
      const T pad0 = t0 < 3 ? pad_grad<T>(gr, T_len, k, -3, 0) : T(0);
      const T padT = t1 + 3 > T_len ? pad_grad<T>(gr, T_len, k, T_len, T_len + 3) : T(0);
      double a1 = 0, a2 = 0;
      tile_fn(px + row * T_len, gr, T_len, t0, t1, k, static_cast<T>(p.a), static_cast<T>(p.inv), pad0,
                       padT, pgx + row * T_len, xt, gt, ge, go, ges, gos, a1, a2);
      partial[2 * w] = a1;
      partial[2 * w + 1] = a2;
    }
  });
  // d v / d a_eff = inv * u * sin(2 a u)  (- inv^2 sin^2 for Snake, where inv depends on alpha);
  // d v / d b_eff = -inv^2 sin^2 (SnakeBeta). Log-scale parameters pick up the factor exp(p) = a_eff.
  auto ga = at::zeros({C}, x.options());
  auto gb = at::zeros({C}, x.options());
  T* pga = ga.data_ptr<T>();
  T* pgb = gb.data_ptr<T>();
  for (int64_t c = 0; c < C; ++c) {
    double sa = 0, sb = 0;
    const RowParam& p = rp[c];
    for (int64_t b = 0; b < B; ++b) {
      double s1 = 0, s2 = 0;
      const int64_t row = b * C + c;
      for (int64_t t = 0; t < ntiles; ++t) {
        s1 += partial[2 * (row * ntiles + t)];
        s2 += partial[2 * (row * ntiles + t) + 1];
      }
      if (is_beta) {
        sa += p.inv * s1;
        sb += -p.inv * p.inv * s2;
      } else {
        sa += p.inv * s1 - p.inv * p.inv * s2;
      }
    }
    if (logscale) {
      sa *= p.a;
      sb *= p.b;
    }
    pga[c] = static_cast<T>(sa);
    pgb[c] = static_cast<T>(sb);
  }
  return {gx, ga, gb};
}

}  // namespace

// x [B, C, T] -> y [B, C, T]. alpha, beta: [C] raw parameters (beta ignored unless is_beta).
at::Tensor anti_alias_forward(const at::Tensor& x_in, const at::Tensor& alpha, const at::Tensor& beta,
                              const at::Tensor& f_up, const at::Tensor& f_dn, bool is_beta, bool logscale, double eps) {
  check_inputs(x_in, alpha, beta, f_up, f_dn);
  auto x = x_in.contiguous();
  auto y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "anti_alias_forward_cpu", [&] {
    auto rp = channel_params<scalar_t>(alpha, beta, is_beta, logscale, eps);
    forward_impl<scalar_t>(x, rp, make_taps<scalar_t>(f_up, f_dn), y);
  });
  return y;
}

// Returns {grad_x [B, C, T], grad_alpha [C], grad_beta [C] (zeros unless is_beta)}.
std::vector<at::Tensor> anti_alias_backward(const at::Tensor& grad_out_in, const at::Tensor& x_in,
                                            const at::Tensor& alpha, const at::Tensor& beta, const at::Tensor& f_up,
                                            const at::Tensor& f_dn, bool is_beta, bool logscale, double eps) {
  check_inputs(x_in, alpha, beta, f_up, f_dn);
  TORCH_CHECK(grad_out_in.sizes() == x_in.sizes(), "anti_alias: grad_out shape ", grad_out_in.sizes(),
              " differs from x shape ", x_in.sizes());
  auto x = x_in.contiguous();
  auto g = grad_out_in.to(x.scalar_type()).contiguous();
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "anti_alias_backward_cpu", [&] {
    auto rp = channel_params<scalar_t>(alpha, beta, is_beta, logscale, eps);
    out = backward_impl<scalar_t>(g, x, alpha, beta, rp, make_taps<scalar_t>(f_up, f_dn), is_beta, logscale);
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused anti-aliased Snake/SnakeBeta activation (BigVGAN Activation1d), CPU";
  m.def("forward", &anti_alias_forward, "y = down(act(up(x)))");
  m.def("backward", &anti_alias_backward, "grad_x, grad_alpha, grad_beta");
  m.attr("tile") = kTile;
  m.def("isa", [] { return std::string(isa_name(current_isa().load())); },
        "instruction set of the float32 tile code in use: default, avx2 or avx512");
  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (int i = 0; i <= best_isa(); ++i) out.emplace_back(isa_name(i));
    return out;
  }, "instruction sets this CPU can run, narrowest first");
  m.def("set_isa", [](const std::string& name) {
    int want = -1;
    for (int i = 0; i <= best_isa(); ++i)
      if (name == isa_name(i)) want = i;
    TORCH_CHECK(want >= 0, "anti_alias: instruction set '", name, "' is not available on this CPU");
    return std::string(isa_name(current_isa().exchange(want)));
  }, "select the float32 code variant (for tests and benchmarks); returns the previous one");
}
