#!/usr/bin/env python
"""Anti-aliased activation alone: PyTorch reference vs fused kernel, forward and forward+backward.

    python scripts/bench_kernels.py [--seconds 10] [--device cpu|cuda] [--threads 2] [--repeat 5]

Shapes are those BigVGAN's activations see for ``--seconds`` of 22.05 kHz audio (hop 256): the base model
(channels 256..32 after upsampling by 8, 8, 2, 2) and the v2 256x model's first and last stages. Each pair is
timed in the same run, interleaved, best of ``--repeat``; the ratio is reference time / fused time.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from vocoder.kernels import build, dispatch
from vocoder.nn.activations import SnakeBeta
from vocoder.nn.filters import Activation1d


def shapes(seconds: float, sample_rate: int = 22050, hop: int = 256):
    frames = max(1, round(seconds * sample_rate / hop))
    out = [(512, math.ceil(frames * 3.2))]  # ~[1, 512, 2756] for 10 s: a wide early layer
    t = frames
    for rate, ch in ((8, 256), (8, 128), (2, 64), (2, 32)):  # BigVGAN base
        t *= rate
        out.append((ch, t))
    out.insert(1, (768, frames * 4))  # v2 256x first stage (1536 -> 768 channels, x4)
    return out


def timed(fn, repeat: int, sync) -> float:
    best = math.inf
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="audio length the shapes correspond to")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-backward", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    ext = build.load_cuda() if args.device == "cuda" else build.load_cpu()
    if ext is None:
        print("kernel build failed", file=sys.stderr)
        return 1
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    isa = f", float32 code {ext.isa()}" if hasattr(ext, "isa") else ""
    print(f"device {args.device}, threads {torch.get_num_threads()}{isa}, {args.seconds:g} s of 22.05 kHz audio")
    print(f"{'shape':>18} | {'fwd ref ms':>10} {'fused ms':>9} {'ratio':>6} | {'f+b ref ms':>10} {'fused ms':>9} {'ratio':>6}")
    ratios_f, ratios_b = [], []
    for ch, length in shapes(args.seconds):
        m = Activation1d(SnakeBeta(ch, alpha_logscale=True)).to(args.device)
        x = torch.randn(1, ch, length, device=args.device)
        assert dispatch.unsupported_reason(m) is None
        with torch.no_grad():
            ref_f = lambda: m.reference_forward(x)  # noqa: E731
            fus_f = lambda: dispatch.anti_aliased_activation(x, m)  # noqa: E731
            ref_f(), fus_f()
            err = (ref_f() - fus_f()).abs().max().item()
            tr = tf = math.inf
            for _ in range(args.repeat):  # interleave so load changes hit both alike
                tr = min(tr, timed(ref_f, 1, sync))
                tf = min(tf, timed(fus_f, 1, sync))
        line = f"{str([1, ch, length]):>18} | {tr * 1e3:10.2f} {tf * 1e3:9.2f} {tr / tf:6.2f}"
        ratios_f.append(tr / tf)
        if not args.no_backward:
            xg = x.clone().requires_grad_(True)
            gy = torch.randn_like(x)

            def ref_b():
                torch.autograd.grad(m.reference_forward(xg), [xg] + list(m.act.parameters()), gy)

            def fus_b():
                torch.autograd.grad(dispatch.anti_aliased_activation(xg, m), [xg] + list(m.act.parameters()), gy)

            ref_b(), fus_b()
            br = bf = math.inf
            for _ in range(args.repeat):
                br = min(br, timed(ref_b, 1, sync))
                bf = min(bf, timed(fus_b, 1, sync))
            line += f" | {br * 1e3:10.2f} {bf * 1e3:9.2f} {br / bf:6.2f}"
            ratios_b.append(br / bf)
        print(line + f"   max|diff| {err:.1e}")
    gm = lambda r: math.exp(sum(map(math.log, r)) / len(r))  # noqa: E731
    print(f"geometric mean speed-up: forward {gm(ratios_f):.2f}x" +
          (f", forward+backward {gm(ratios_b):.2f}x" if ratios_b else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
