// Fused anti-aliased activation for CUDA: UpSample1d(x2, 12 taps) -> Snake/SnakeBeta -> DownSample1d(x2, 12 taps).
//
// Same polyphase formulation as the CPU kernel (see vocoder/kernels/cpu/anti_alias.cpp for the derivation):
//   ue[s] = sum_i UE[i] x[clamp(s + 2 - i)],  uo[s] = sum_i UO[i] x[clamp(s + 3 - i)]   (UE/UO = 2 * f_up odd/even)
//   ve/vo = u + inv * sin(a u)^2                 (v[2s] = ve[s], v[2s+1] = vo[s])
//   y[t]  = sum_i DE[i] ve[t + i - 2] + DO[i] vo[t + i - 3]   with ve = vo = v[0] for s < 0, = v[2T-1] for s >= T.
//
// One thread block handles one tile of kTile outputs of one row (b, c); the tile's input (with a halo of 6
// samples each side), its upsampled/activated intermediate and, in the backward pass, the incoming gradient
// live in shared memory, so the 2x intermediate never touches global memory. Inputs and outputs may be
// float32, float16, bfloat16 (arithmetic in float32) or float64 (arithmetic in float64). sinf/sincosf are
// the accurate versions (no --use_fast_math), so results match the PyTorch reference to float rounding.
// The backward pass writes one pair of partial sums per block for the alpha/beta gradients; the host side
// reduces them deterministically with ATen.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <vector>

namespace {

constexpr int kTile = 1024;
constexpr int kThreads = 256;

template <typename acc_t>
struct Taps {
  acc_t ue[6], uo[6], de[6], dd[6];
};

template <typename acc_t>
__device__ __forceinline__ Taps<acc_t> load_taps(const acc_t* __restrict__ f_up, const acc_t* __restrict__ f_dn) {
  Taps<acc_t> k;
#pragma unroll
  for (int i = 0; i < 6; ++i) {
    k.ue[i] = f_up[2 * i + 1] * acc_t(2);  // the ratio 2 folded in: exact
    k.uo[i] = f_up[2 * i] * acc_t(2);
    k.de[i] = f_dn[2 * i + 1];
    k.dd[i] = f_dn[2 * i];
  }
  return k;
}

__device__ __forceinline__ float dsin(float x) { return sinf(x); }
__device__ __forceinline__ double dsin(double x) { return sin(x); }
__device__ __forceinline__ void dsincos(float x, float* s, float* c) { sincosf(x, s, c); }
__device__ __forceinline__ void dsincos(double x, double* s, double* c) { sincos(x, s, c); }

__device__ __forceinline__ int64_t clampi(int64_t i, int64_t lo, int64_t hi) { return i < lo ? lo : (i > hi ? hi : i); }

// Upsampled sample of phase even (u[2s]) / odd (u[2s+1]) at local index j; xt[j'] = x[clamp(S0 - 3 + j')].
template <typename acc_t>
__device__ __forceinline__ acc_t up_even(const acc_t* xt, int j, const Taps<acc_t>& k) {
  acc_t e = 0;
#pragma unroll
  for (int i = 0; i < 6; ++i) e += k.ue[i] * xt[j + 5 - i];
  return e;
}

template <typename acc_t>
__device__ __forceinline__ acc_t up_odd(const acc_t* xt, int j, const Taps<acc_t>& k) {
  acc_t o = 0;
#pragma unroll
  for (int i = 0; i < 6; ++i) o += k.uo[i] * xt[j + 6 - i];
  return o;
}

template <typename acc_t>
__device__ __forceinline__ acc_t snake(acc_t u, acc_t a, acc_t inv) {
  const acc_t s = dsin(a * u);
  return u + inv * (s * s);
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) aa_forward_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                                                              const acc_t* __restrict__ a_eff,
                                                              const acc_t* __restrict__ inv_eff,
                                                              const acc_t* __restrict__ f_up,
                                                              const acc_t* __restrict__ f_dn, int64_t C, int64_t T,
                                                              int64_t ntiles) {
  extern __shared__ unsigned char smem_raw[];
  acc_t* xt = reinterpret_cast<acc_t*>(smem_raw);
  acc_t* ve = xt + kTile + 12;
  acc_t* vo = ve + kTile + 6;

  const int64_t row = blockIdx.x / ntiles;
  const int64_t t0 = (blockIdx.x % ntiles) * kTile;
  const int n = static_cast<int>(T - t0 < kTile ? T - t0 : int64_t(kTile));
  const int64_t S0 = t0 - 3;
  const int m = n + 6;
  const scalar_t* xr = x + row * T;

  for (int j = threadIdx.x; j < m + 6; j += blockDim.x) xt[j] = static_cast<acc_t>(xr[clampi(S0 - 3 + j, 0, T - 1)]);
  const Taps<acc_t> k = load_taps(f_up, f_dn);
  const acc_t a = a_eff[row % C], inv = inv_eff[row % C];
  __syncthreads();

  for (int j = threadIdx.x; j < m; j += blockDim.x) {
    const int64_t s = S0 + j;
    if (s < 0) {  // replicate padding of v: v[0] = ve(s = 0)
      ve[j] = vo[j] = snake(up_even(xt, static_cast<int>(-S0), k), a, inv);
    } else if (s >= T) {  // v[2T - 1] = vo(s = T - 1)
      ve[j] = vo[j] = snake(up_odd(xt, static_cast<int>(T - 1 - S0), k), a, inv);
    } else {
      ve[j] = snake(up_even(xt, j, k), a, inv);
      vo[j] = snake(up_odd(xt, j, k), a, inv);
    }
  }
  __syncthreads();

  scalar_t* yr = y + row * T;
  for (int q = threadIdx.x; q < n; q += blockDim.x) {
    acc_t acc = 0;
#pragma unroll
    for (int i = 0; i < 6; ++i) acc += k.de[i] * ve[q + i + 1] + k.dd[i] * vo[q + i];
    yr[t0 + q] = static_cast<scalar_t>(acc);
  }
}

// Gradient reaching v[0] (or v[2T-1]) from the padded positions s in [s_begin, s_end); gt[j'] = g[S0 - 3 + j'].
template <typename acc_t>
__device__ acc_t pad_grad(const acc_t* gt, int64_t S0, int len, const Taps<acc_t>& k, int64_t s_begin,
                          int64_t s_end) {
  acc_t acc = 0;
  for (int64_t s = s_begin; s < s_end; ++s) {
#pragma unroll
    for (int i = 0; i < 6; ++i) {
      const int64_t je = s + 2 - i - (S0 - 3), jo = s + 3 - i - (S0 - 3);
      if (je >= 0 && je < len) acc += k.de[i] * gt[je];
      if (jo >= 0 && jo < len) acc += k.dd[i] * gt[jo];
    }
  }
  return acc;
}

template <typename acc_t>
__device__ __forceinline__ acc_t block_sum(acc_t v, acc_t* scratch) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  acc_t total = 0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < (blockDim.x + 31) / 32; ++w) total += scratch[w];
  }
  __syncthreads();
  return total;  // meaningful in thread 0 only
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    aa_backward_kernel(const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ x,
                       scalar_t* __restrict__ grad_x, acc_t* __restrict__ partial, const acc_t* __restrict__ a_eff,
                       const acc_t* __restrict__ inv_eff, const acc_t* __restrict__ f_up,
                       const acc_t* __restrict__ f_dn, int64_t C, int64_t T, int64_t ntiles) {
  extern __shared__ unsigned char smem_raw[];
  acc_t* xt = reinterpret_cast<acc_t*>(smem_raw);
  acc_t* gt = xt + kTile + 12;
  acc_t* ge = gt + kTile + 12;
  acc_t* go = ge + kTile + 6;
  acc_t* scratch = go + kTile + 6;  // 2 * (kThreads / 32) values

  const int64_t row = blockIdx.x / ntiles;
  const int64_t t0 = (blockIdx.x % ntiles) * kTile;
  const int n = static_cast<int>(T - t0 < kTile ? T - t0 : int64_t(kTile));
  const int64_t S0 = t0 - 3;
  const int m = n + 6;
  const scalar_t* xr = x + row * T;
  const scalar_t* gr = grad_y + row * T;

  for (int j = threadIdx.x; j < m + 6; j += blockDim.x) {
    const int64_t t = S0 - 3 + j;
    xt[j] = static_cast<acc_t>(xr[clampi(t, 0, T - 1)]);
    gt[j] = (t >= 0 && t < T) ? static_cast<acc_t>(gr[t]) : acc_t(0);
  }
  const Taps<acc_t> k = load_taps(f_up, f_dn);
  const acc_t a = a_eff[row % C], inv = inv_eff[row % C];
  const acc_t two_a_inv = acc_t(2) * a * inv;
  __syncthreads();

  acc_t acc1 = 0, acc2 = 0;  // sum gv * u * sin(2au), sum gv * sin(au)^2 over the samples this tile owns
  for (int j = threadIdx.x; j < m; j += blockDim.x) {
    const int64_t s = S0 + j;
    if (s < 0 || s >= T) {  // padded positions: their gradient is folded into v[0] / v[2T-1] below
      ge[j] = go[j] = acc_t(0);
      continue;
    }
    acc_t gve = 0, gvo = 0;
#pragma unroll
    for (int i = 0; i < 6; ++i) {
      gve += k.de[i] * gt[j + 5 - i];
      gvo += k.dd[i] * gt[j + 6 - i];
    }
    if (s == 0) gve += pad_grad(gt, S0, m + 6, k, -3, 0);
    if (s == T - 1) gvo += pad_grad(gt, S0, m + 6, k, T, T + 3);
    const acc_t e = up_even(xt, j, k), o = up_odd(xt, j, k);
    acc_t se, ce, so, co;
    dsincos(a * e, &se, &ce);
    dsincos(a * o, &so, &co);
    const acc_t sce = se * ce, sco = so * co;
    ge[j] = gve * (acc_t(1) + two_a_inv * sce);
    go[j] = gvo * (acc_t(1) + two_a_inv * sco);
    if (j >= 3 && j < 3 + n) {
      acc1 += gve * (acc_t(2) * sce * e) + gvo * (acc_t(2) * sco * o);
      acc2 += gve * (se * se) + gvo * (so * so);
    }
  }
  __syncthreads();

  const acc_t tot1 = block_sum(acc1, scratch);
  const acc_t tot2 = block_sum(acc2, scratch + kThreads / 32);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = tot1;
    partial[2 * blockIdx.x + 1] = tot2;
  }

  scalar_t* gxr = grad_x + row * T;
  for (int q = threadIdx.x; q < n; q += blockDim.x) {
    acc_t g = 0;
#pragma unroll
    for (int i = 0; i < 6; ++i) g += k.ue[i] * ge[q + i + 1] + k.uo[i] * go[q + i];
    // Replicate padding of x: gradients of x[r < 0] go to x[0], of x[r >= T] to x[T-1].
    const int64_t r = t0 + q;
    if (r == 0 || r == T - 1) {
      auto ext = [&](int64_t rr) {
        acc_t v = 0;
#pragma unroll
        for (int i = 0; i < 6; ++i) {
          const int64_t je = rr - 2 + i - S0, jo = rr - 3 + i - S0;
          if (je >= 0 && je < m) v += k.ue[i] * ge[je];
          if (jo >= 0 && jo < m) v += k.uo[i] * go[jo];
        }
        return v;
      };
      if (r == 0) {
        for (int64_t rr = -3; rr < 0; ++rr) g += ext(rr);
      }
      if (r == T - 1) {
        for (int64_t rr = T; rr < T + 3; ++rr) g += ext(rr);
      }
    }
    gxr[r] = static_cast<scalar_t>(g);
  }
}

void check(const at::Tensor& x, const at::Tensor& a_eff, const at::Tensor& inv_eff, const at::Tensor& f_up,
           const at::Tensor& f_dn) {
  TORCH_CHECK(x.is_cuda(), "anti_alias CUDA kernel: expected a CUDA tensor, got ", x.device());
  TORCH_CHECK(x.dim() == 3 && x.size(2) >= 1, "anti_alias: expected x of shape [B, C, T] with T >= 1, got ",
              x.sizes());
  TORCH_CHECK(a_eff.numel() == x.size(1) && inv_eff.numel() == x.size(1), "anti_alias: expected ", x.size(1),
              " channel parameters, got ", a_eff.numel());
  TORCH_CHECK(f_up.numel() == 12 && f_dn.numel() == 12, "anti_alias: expected 12-tap filters");
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  for (const auto* t : {&a_eff, &inv_eff, &f_up, &f_dn}) {
    TORCH_CHECK(t->is_cuda() && t->device() == x.device(), "anti_alias: parameters must be on ", x.device());
    TORCH_CHECK(t->scalar_type() == acc && t->is_contiguous(), "anti_alias: parameters must be contiguous ",
                c10::toString(acc));
  }
}

}  // namespace

at::Tensor aa_forward_cuda(const at::Tensor& x_in, const at::Tensor& a_eff, const at::Tensor& inv_eff,
                           const at::Tensor& f_up, const at::Tensor& f_dn) {
  check(x_in, a_eff, inv_eff, f_up, f_dn);
  const c10::cuda::CUDAGuard guard(x_in.device());
  auto x = x_in.contiguous();
  auto y = at::empty_like(x);
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2);
  const int64_t ntiles = (T + kTile - 1) / kTile;
  const int64_t blocks = B * C * ntiles;
  if (blocks == 0) return y;
  TORCH_CHECK(blocks < (int64_t(1) << 31), "anti_alias: tensor too large for one launch");
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "aa_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const size_t smem = sizeof(acc_t) * ((kTile + 12) + 2 * (kTile + 6));
    aa_forward_kernel<scalar_t, acc_t><<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(
        x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), a_eff.data_ptr<acc_t>(), inv_eff.data_ptr<acc_t>(),
        f_up.data_ptr<acc_t>(), f_dn.data_ptr<acc_t>(), C, T, ntiles);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

// Returns {grad_x [B, C, T], sums [B, C, 2]}: per row, sum gv * u * sin(2au) and sum gv * sin(au)^2.
std::vector<at::Tensor> aa_backward_cuda(const at::Tensor& grad_y_in, const at::Tensor& x_in, const at::Tensor& a_eff,
                                         const at::Tensor& inv_eff, const at::Tensor& f_up, const at::Tensor& f_dn) {
  check(x_in, a_eff, inv_eff, f_up, f_dn);
  TORCH_CHECK(grad_y_in.sizes() == x_in.sizes(), "anti_alias: grad shape ", grad_y_in.sizes(), " differs from ",
              x_in.sizes());
  const c10::cuda::CUDAGuard guard(x_in.device());
  auto x = x_in.contiguous();
  auto g = grad_y_in.to(x.scalar_type()).contiguous();
  auto gx = at::empty_like(x);
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2);
  const int64_t ntiles = (T + kTile - 1) / kTile;
  const int64_t blocks = B * C * ntiles;
  const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto partial = at::zeros({B, C, ntiles, 2}, x.options().dtype(acc_type));
  if (blocks == 0) return {gx, partial.sum(2)};
  TORCH_CHECK(blocks < (int64_t(1) << 31), "anti_alias: tensor too large for one launch");
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "aa_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const size_t smem = sizeof(acc_t) * (2 * (kTile + 12) + 2 * (kTile + 6) + 2 * (kThreads / 32));
    aa_backward_kernel<scalar_t, acc_t><<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(
        g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), partial.data_ptr<acc_t>(),
        a_eff.data_ptr<acc_t>(), inv_eff.data_ptr<acc_t>(), f_up.data_ptr<acc_t>(), f_dn.data_ptr<acc_t>(), C, T,
        ntiles);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {gx, partial.sum(2)};
}
