// Python binding of the CUDA anti-aliased activation (kernels in anti_alias_kernel.cu).
//
// Same API as the CPU extension:
//   forward(x [B, C, T], alpha [C], beta [C], f_up [12], f_dn [12], is_beta, logscale, eps) -> y [B, C, T]
//   backward(grad_y, x, alpha, beta, f_up, f_dn, is_beta, logscale, eps) -> {grad_x, grad_alpha [C], grad_beta [C]}
// alpha/beta/filters are float32 (float64 when x is float64); x may be float32/float16/bfloat16/float64.
// The per-channel constants are computed here with ATen exactly as the reference module does
// (a = alpha or exp(alpha); inv = 1 / (alpha|beta + eps)), so the kernels see the same numbers.

#include <torch/extension.h>

#include <vector>

at::Tensor aa_forward_cuda(const at::Tensor& x, const at::Tensor& a_eff, const at::Tensor& inv_eff,
                           const at::Tensor& f_up, const at::Tensor& f_dn);
std::vector<at::Tensor> aa_backward_cuda(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& a_eff,
                                         const at::Tensor& inv_eff, const at::Tensor& f_up, const at::Tensor& f_dn);

namespace {

struct Effective {
  at::Tensor a, b, inv;
};

Effective effective(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& beta, bool is_beta,
                    bool logscale, double eps) {
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto al = alpha.to(x.device(), acc).contiguous();
  auto be = is_beta ? beta.to(x.device(), acc).contiguous() : al;
  Effective e;
  e.a = logscale ? al.exp() : al;
  e.b = is_beta ? (logscale ? be.exp() : be) : e.a;
  e.inv = (e.b + eps).reciprocal().contiguous();
  e.a = e.a.contiguous();
  return e;
}

at::Tensor filt(const at::Tensor& f, const at::Tensor& x) {
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return f.reshape({-1}).to(x.device(), acc).contiguous();
}

}  // namespace

at::Tensor anti_alias_forward(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& beta,
                              const at::Tensor& f_up, const at::Tensor& f_dn, bool is_beta, bool logscale, double eps) {
  TORCH_CHECK(x.is_cuda(), "anti_alias CUDA extension: expected a CUDA tensor, got ", x.device());
  const auto e = effective(x, alpha, beta, is_beta, logscale, eps);
  return aa_forward_cuda(x, e.a, e.inv, filt(f_up, x), filt(f_dn, x));
}

std::vector<at::Tensor> anti_alias_backward(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& alpha,
                                            const at::Tensor& beta, const at::Tensor& f_up, const at::Tensor& f_dn,
                                            bool is_beta, bool logscale, double eps) {
  TORCH_CHECK(x.is_cuda(), "anti_alias CUDA extension: expected a CUDA tensor, got ", x.device());
  const auto e = effective(x, alpha, beta, is_beta, logscale, eps);
  auto out = aa_backward_cuda(grad_y, x, e.a, e.inv, filt(f_up, x), filt(f_dn, x));
  // sums [B, C, 2] -> per channel (summed over the batch first: a and inv depend on the channel only).
  auto sums = out[1].sum(0);
  auto s1 = sums.select(1, 0), s2 = sums.select(1, 1);
  // d v / d a = inv * u * sin(2au) (- inv^2 sin(au)^2 for Snake); d v / d b = -inv^2 sin(au)^2 (SnakeBeta).
  at::Tensor ga, gb;
  if (is_beta) {
    ga = e.inv * s1;
    gb = -(e.inv * e.inv) * s2;
  } else {
    ga = e.inv * s1 - (e.inv * e.inv) * s2;
    gb = at::zeros_like(ga);
  }
  if (logscale) {  // parameters are log(a), log(b): chain rule factor exp(p) = a, b
    ga = ga * e.a;
    if (is_beta) gb = gb * e.b;
  }
  return {out[0], ga, gb};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused anti-aliased Snake/SnakeBeta activation (BigVGAN Activation1d), CUDA";
  m.def("forward", &anti_alias_forward, "y = down(act(up(x)))");
  m.def("backward", &anti_alias_backward, "grad_x, grad_alpha, grad_beta");
}
