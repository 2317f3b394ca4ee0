"""Autograd wrapper around the fused anti-aliased activation extensions (CPU and CUDA share one API).

``AntiAliasedActivation.apply(x, alpha, beta, f_up, f_dn, ext, is_beta, logscale, eps) -> y``

* ``x``: ``[B, C, T]``; ``y``: ``[B, C, T]``, same dtype.
* ``alpha``, ``beta``: ``[C]`` raw parameters of Snake/SnakeBeta (``beta`` is ignored for Snake; pass ``alpha``).
* ``f_up``, ``f_dn``: the 12-tap Kaiser-sinc filters of UpSample1d / DownSample1d (any shape with 12 values).
* ``ext``: the loaded extension module (``forward`` / ``backward`` functions).

Gradients flow to ``x``, ``alpha`` and ``beta`` (first order only: the backward is not itself differentiable).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class AntiAliasedActivation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, beta, f_up, f_dn, ext, is_beta: bool, logscale: bool, eps: float):
        param_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        if x.device.type == "cpu":
            param_dtype = x.dtype  # the CPU kernel runs float32 or float64 end to end
        a = alpha.detach().to(param_dtype).contiguous()
        b = beta.detach().to(param_dtype).contiguous()
        fu = f_up.detach().reshape(-1).to(param_dtype).contiguous()
        fd = f_dn.detach().reshape(-1).to(param_dtype).contiguous()
        xc = x.contiguous()
        y = ext.forward(xc, a, b, fu, fd, bool(is_beta), bool(logscale), float(eps))
        ctx.save_for_backward(xc, a, b, fu, fd)
        ctx.ext = ext
        ctx.flags = (bool(is_beta), bool(logscale), float(eps))
        ctx.param_dtypes = (alpha.dtype, beta.dtype)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        xc, a, b, fu, fd = ctx.saved_tensors
        is_beta, logscale, eps = ctx.flags
        gx, ga, gb = ctx.ext.backward(grad_y.to(xc.dtype).contiguous(), xc, a, b, fu, fd, is_beta, logscale, eps)
        need_x, need_a, need_b = ctx.needs_input_grad[:3]
        ga = ga.to(ctx.param_dtypes[0]) if need_a else None
        gb = gb.to(ctx.param_dtypes[1]) if (need_b and is_beta) else None
        return (gx if need_x else None), ga, gb, None, None, None, None, None, None
