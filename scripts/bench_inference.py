#!/usr/bin/env python
"""Whole-model inference against the official packages: BigVGAN (ours with the fused anti-aliased activation vs
``bigvgan``) and the Fourier-head family (ours vs ``vocos`` on the same architecture and weights).

    python scripts/bench_inference.py [--seconds 2] [--models base,v2_24k,vocos] [--devices cpu,cuda] [--threads 2] \
        [--phase-iterations 4,16] [--phase "rtpghi:0,4 pghi:0"] [--dtypes bfloat16,float16]

``vocos``: the ``vocos_mel_24khz`` network, ours vs ``vocos``' backbone + ``ISTFTHead`` with the same weights
(max|diff| over the official output's length), then the real-time factor of the default model's architecture
(``vocos_22khz_80band``, random weights) alone and the ``--also`` presets (the source-filter family: HiFTNet,
iSTFTNet; their speed against official vocos' per second of audio), with ``--phase-iterations`` of phase refinement
and with the
``--phase`` settings (phase from the amplitude by PGHI / RTPGHI, then K iterations) (their cost
against the plain decode, timed in the same rounds) and cast to ``--dtypes`` (its speed against the float32 decode
in the same rounds, and the largest difference to its audio). The first line says which instruction set the CPU has.

An AVX2-only CPU can be emulated on an AVX-512 one: ``ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
ATEN_CPU_CAPABILITY=avx2 python scripts/bench_inference.py --isa avx2`` (oneDNN's convolutions, MKL's FFTs and
GEMMs, ATen's own kernels, and our activation kernel's code path; not another vendor's core).

Both models get the same weights (ours, randomly initialised, loaded into the official class by state dict:
the key names are the same), weight norm folded. For each device it prints the real-time factor (compute
time / audio time, lower is better) of ours with kernels, ours with ``VOCODER_KERNELS=0`` (plain PyTorch),
and the official model (on CUDA with ``use_cuda_kernel=True``: its kernel, built for the GPU's architecture by
:func:`build_official_kernel`, falling back to its torch path when that fails), the speed-up of ours
over the official one, and the largest absolute difference of the waveforms. Timings: best of ``--repeat``,
interleaved, in one process, plus the median (and range) of the per-round ratios. The waveforms compared are
computed with TF32 off; the timed runs use torch's defaults (on CUDA, cuDNN convolutions in TF32).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time

import torch

from vocoder.generators import build_generator, get_preset
from vocoder.kernels import dispatch
from vocoder.kernels.dispatch import use_kernels

MODELS = {"base": "bigvgan_base_22khz_80band", "v2_24k": "bigvgan_v2_24khz_100band_256x",
          "vocos": "vocos_mel_24khz"}
#: the default model's architecture, timed next to the vocos comparison
DEFAULT_FOURIER = "vocos_22khz_80band"


def cpu_isa() -> str:
    """The widest x86 vector extension the CPU reports, with torch's own dispatch level and the CPU model."""
    flags, model = set(), "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                elif line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2" if flags else "unknown"
    limits = [f"{k}={os.environ[k]}" for k in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")
              if os.environ.get(k)]
    return (f"{isa} ({model}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}"
            f"{'; ' + ', '.join(limits) if limits else ''})")


def build_official_kernel(build_dir=None):
    """Build the official package's CUDA kernel for this GPU's architecture and make its import use it.

    ``bigvgan``'s own build asks nvcc for ``compute_70`` (and ``sm_80``), which CUDA 13 no longer supports, so on a
    current toolkit its kernel never builds. This builds the same sources with the same flags (``-O3
    --use_fast_math`` and its half-precision defines), only for ``sm_<arch>`` instead, into ``build_dir`` (default:
    our kernel cache), and points ``bigvgan.alias_free_activation.cuda.load.load`` at the result. Needs nvcc, not a
    GPU. Returns the extension module."""
    import pathlib

    from bigvgan.alias_free_activation.cuda import load as official_load
    from torch.utils import cpp_extension

    from vocoder.kernels import build

    src = pathlib.Path(official_load.__file__).parent
    arch = build.default_cuda_arch()
    out = pathlib.Path(build_dir) if build_dir else build.cache_root() / f"bigvgan_official_sm{arch}"
    out.mkdir(parents=True, exist_ok=True)
    home = build.cuda_home()
    if home is None:
        raise RuntimeError("no CUDA toolkit (nvcc) found")
    # Its .cu includes ATen/cuda/CUDAContext.h, which wants cuSPARSE/cuBLAS headers; a toolkit without them can
    # use those of the pip-installed CUDA libraries that torch depends on.
    includes = []
    try:
        import nvidia

        includes = [str(d) for root in nvidia.__path__ for d in pathlib.Path(root).glob("*/include") if d.is_dir()]
    except ImportError:
        pass
    with build._cpp_extension_cuda_home(home):
        ext = cpp_extension.load(
            extra_include_paths=includes,
            name="anti_alias_activation_cuda", build_directory=str(out),
            sources=[str(src / "anti_alias_activation.cpp"), str(src / "anti_alias_activation_cuda.cu")],
            extra_cflags=["-O3"],
            extra_cuda_cflags=["-O3", "-gencode", f"arch=compute_{arch},code=sm_{arch}", "--use_fast_math",
                               "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                               "--expt-relaxed-constexpr", "--expt-extended-lambda"],
            verbose=False)
    official_load.load = lambda: ext
    return ext


def official_model(ours, device: str):
    import bigvgan
    from bigvgan.env import AttrDict

    c = ours.config
    h = AttrDict(num_mels=c.n_mels, upsample_rates=list(c.upsample_rates),
                 upsample_kernel_sizes=list(c.upsample_kernel_sizes),
                 upsample_initial_channel=c.upsample_initial_channel, resblock=c.resblock,
                 resblock_kernel_sizes=list(c.resblock_kernel_sizes),
                 resblock_dilation_sizes=[list(d) for d in c.resblock_dilation_sizes], activation=c.activation,
                 snake_logscale=c.snake_logscale, use_tanh_at_final=c.use_tanh_at_final,
                 use_bias_at_final=c.use_bias_at_final)
    note = ""
    model = None
    if device == "cuda":
        try:
            build_official_kernel()
            model = bigvgan.BigVGAN(h, use_cuda_kernel=True)
            note = " (official CUDA kernel)"
        except Exception as exc:  # its JIT build may fail; fall back to its torch path
            note = f" (official CUDA kernel unavailable: {type(exc).__name__})"
            h = AttrDict(h)
    if model is None:
        model = bigvgan.BigVGAN(h, use_cuda_kernel=False)
    model.load_state_dict(ours.state_dict())
    model.remove_weight_norm()
    return model.eval().to(device), note


def timed(fn, sync) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


@contextlib.contextmanager
def exact_fp32():
    """TF32 off. On CUDA, cuDNN convolutions may run in TF32 by default (10-bit mantissa), and the plain-torch
    path runs the anti-aliasing filters as such convolutions while the fused kernel does not; the outputs compared
    for max|diff| are computed in full float32 so that the number measures the kernel, not TF32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def bench(name: str, device: str, seconds: float, repeat: int) -> None:
    preset = get_preset(MODELS[name])
    torch.manual_seed(0)
    ours = build_generator(preset.name)
    with torch.no_grad():  # trained-looking Snake parameters rather than the all-equal initial ones
        for n, p in ours.named_parameters():
            if n.endswith(".alpha") or n.endswith(".beta"):
                p.add_(0.3 * torch.randn_like(p))
    official, note = official_model(ours, device)
    ours.remove_weight_norm()
    ours = ours.eval().to(device)
    sr, hop = preset.mel.sample_rate, preset.mel.hop_length
    frames = max(1, round(seconds * sr / hop))
    mel = (torch.randn(1, preset.mel.n_mels, frames, device=device) - 5.0).clamp(min=-11.5)
    audio_s = frames * hop / sr
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    with torch.inference_mode():
        with exact_fp32():
            with use_kernels(True):
                y_ours = ours(mel)
            with use_kernels(False):
                y_ref = ours(mel)
            y_off = official(mel)
        run_ours = lambda: ours(mel)  # noqa: E731
        with use_kernels(True):  # warm-up at the timing settings
            ours(mel)
        rounds = []  # (ours, reference, official) seconds, one round each, interleaved
        for _ in range(repeat):
            with use_kernels(True):
                a = timed(run_ours, sync)
            with use_kernels(False):
                b = timed(lambda: ours(mel), sync)
            rounds.append((a, b, timed(lambda: official(mel), sync)))
        t_ours, t_ref, t_off = (min(r[i] for r in rounds) for i in range(3))
        # Each round's own ratio: machine-wide slow spells hit both sides of a round alike.
        paired = sorted(r[2] / r[0] for r in rounds)
    diff = (y_ours.float() - y_off.float()).abs().max().item()
    diff_ref = (y_ref.float() - y_off.float()).abs().max().item()
    print(f"{preset.name} on {device}{note}: {audio_s:.2f} s of audio, mel {list(mel.shape)}")
    print(f"  ours (fused)      RTF {t_ours / audio_s:8.4f}  ({t_ours * 1e3:9.1f} ms)")
    print(f"  ours (reference)  RTF {t_ref / audio_s:8.4f}  ({t_ref * 1e3:9.1f} ms)   max|diff| vs official {diff_ref:.1e}")
    print(f"  official bigvgan  RTF {t_off / audio_s:8.4f}  ({t_off * 1e3:9.1f} ms)")
    print(f"  speed-up ours/official {t_off / t_ours:.2f}x (best of each; per round: median "
          f"{statistics.median(paired):.2f}x, range {paired[0]:.2f}-{paired[-1]:.2f}x), "
          f"ours fused/reference {t_ref / t_ours:.2f}x, max|diff| fused vs official {diff:.1e}")


def official_vocos(ours, device: str):
    """``vocos``' own backbone and ISTFT head with our weights (the key names are the same)."""
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone

    c = ours.config
    backbone = VocosBackbone(c.n_mels, c.dim, c.intermediate_dim, c.num_layers, c.layer_scale_init_value)
    head = ISTFTHead(c.dim, c.n_fft, c.hop_length, c.padding)
    backbone.load_state_dict({k[len("backbone."):]: v for k, v in ours.state_dict().items()
                              if k.startswith("backbone.")})
    head.load_state_dict({k[len("head."):]: v for k, v in ours.state_dict().items() if k.startswith("head.")})
    backbone, head = backbone.eval().to(device), head.eval().to(device)
    return lambda mel: head(backbone(mel))


def bench_vocos(device: str, seconds: float, repeat: int, phase_settings=(), dtypes=(), also=()) -> None:
    preset = get_preset(MODELS["vocos"])
    torch.manual_seed(0)
    ours = build_generator(preset.name).eval().to(device)
    with torch.no_grad():  # trained-looking layer scales rather than the all-equal initial ones
        for n, p in ours.named_parameters():
            if n.endswith("gamma"):
                p.mul_(1 + torch.rand_like(p))
    official = official_vocos(ours, device)
    sr, hop = preset.mel.sample_rate, preset.mel.hop_length
    frames = max(2, round(seconds * sr / hop))
    mel = (torch.randn(1, preset.mel.n_mels, frames, device=device) - 5.0).clamp(min=-11.5)
    audio_s = frames * hop / sr
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    default = build_generator(DEFAULT_FOURIER).eval().to(device)
    d_mel = (torch.randn(1, default.n_mels, max(2, round(seconds * 22050 / 256)), device=device) - 5.0)
    d_audio_s = d_mel.shape[-1] * default.hop_length / 22050
    # other 22 kHz 80-band presets (the source-filter family) on the default's mel, weight norm folded outside
    # inference mode (so their weights are ordinary tensors, as a loaded Vocoder's are)
    others = {}
    for name in also:
        others[name] = build_generator(name).eval().to(device)
        if hasattr(others[name], "remove_weight_norm"):
            others[name].remove_weight_norm()
    with torch.inference_mode():
        with exact_fp32():
            y_ours, y_off = ours(mel), official(mel)
        ours(mel), official(mel), default(d_mel)  # warm-up
        # timed after the three models: the default with each phase setting (method, K), then cast to each dtype
        variants = [lambda m=m, k=k: default.refined(d_mel, k, phase=m) for m, k in phase_settings]
        y_def = default(d_mel)
        cast = {}  # the default architecture cast to another dtype (its inverse STFT stays float32)
        for name in dtypes:
            dt = getattr(torch, name)
            try:
                model = copy.deepcopy(default).to(dt)
                cast[name] = (model, d_mel.to(dt), (model(d_mel.to(dt)).float() - y_def).abs().max().item())
            except RuntimeError as e:
                print(f"  {DEFAULT_FOURIER} in {name}: not supported on {device} ({e})")
        variants += [lambda m=m, x=x: m(x) for m, x, _ in cast.values()]
        for model in others.values():
            model(d_mel)  # warm-up
        variants += [lambda m=m: m(d_mel) for m in others.values()]
        rounds = [(timed(lambda: ours(mel), sync), timed(lambda: official(mel), sync),
                   timed(lambda: default(d_mel), sync), *(timed(f, sync) for f in variants)) for _ in range(repeat)]
    t_ours, t_off, t_def = (min(r[i] for r in rounds) for i in range(3))
    paired = sorted(r[1] / r[0] for r in rounds)
    n = y_off.shape[-1]  # "center": the official decode has (T - 1) * hop samples, ours T * hop
    diff = (y_ours.flatten()[:n].float() - y_off.flatten().float()).abs().max().item()
    print(f"{preset.name} on {device}: {audio_s:.2f} s of audio, mel {list(mel.shape)}")
    print(f"  ours              RTF {t_ours / audio_s:8.4f}  ({t_ours * 1e3:9.1f} ms), {audio_s / t_ours:7.1f}x real time")
    print(f"  official vocos    RTF {t_off / audio_s:8.4f}  ({t_off * 1e3:9.1f} ms), {audio_s / t_off:7.1f}x real time")
    print(f"  speed-up ours/official {t_off / t_ours:.2f}x (best of each; per round: median "
          f"{statistics.median(paired):.2f}x, range {paired[0]:.2f}-{paired[-1]:.2f}x), max|diff| {diff:.1e}")
    print(f"  {DEFAULT_FOURIER} (default model's architecture): RTF {t_def / d_audio_s:.4f}, "
          f"{d_audio_s / t_def:.1f}x real time")
    for i, (method, k) in enumerate(phase_settings):
        t_k = min(r[3 + i] for r in rounds)
        label = (f"{method} phase + " if method != "model" else "+ ") + f"{k} phase iterations"
        print(f"    {label}: RTF {t_k / d_audio_s:.4f}, {d_audio_s / t_k:.1f}x real time, "
              f"{t_k / t_def:.2f}x the plain decode's time")
    for i, (name, (_, _, diff_dt)) in enumerate(cast.items()):
        t_k = min(r[3 + len(phase_settings) + i] for r in rounds)
        print(f"    in {name}: RTF {t_k / d_audio_s:.4f}, {d_audio_s / t_k:.1f}x real time, "
              f"{t_def / t_k:.2f}x the float32 decode's speed, max|diff| to it {diff_dt:.1e} "
              f"(peak {y_def.abs().max().item():.2f})")
    for i, name in enumerate(others, start=3 + len(phase_settings) + len(cast)):  # i: its column in a round
        t_k = min(r[i] for r in rounds)
        ratio = sorted(r[1] / audio_s / (r[i] / d_audio_s) for r in rounds)
        print(f"  {name}: RTF {t_k / d_audio_s:.4f}, {d_audio_s / t_k:.1f}x real time, "
              f"{(t_off / audio_s) / (t_k / d_audio_s):.2f}x official vocos' speed (per round: median "
              f"{statistics.median(ratio):.2f}x)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0, help="audio length to generate")
    p.add_argument("--models", default="base,v2_24k", help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--devices", default=None, help="comma list of cpu, cuda (default: cpu, plus cuda if present)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--phase-iterations", default="4,16",
                   help="vocos: also time the default architecture with these phase-refinement iterations")
    p.add_argument("--phase", default="rtpghi:0,4 pghi:0",
                   help="vocos: also time the default architecture with these phase settings, METHOD:K,K ... "
                        "(phase from its amplitude by pghi / rtpghi, then K iterations; '' for none)")
    p.add_argument("--dtypes", default="bfloat16,float16",
                   help="vocos: also time the default architecture cast to these dtypes (comma list; '' for none)")
    p.add_argument("--also", default="hiftnet_frame_22khz,istftnet_c8c8i_22khz,hiftnet_22khz",
                   help="vocos: also time these 22 kHz 80-band presets in the same rounds (comma list; '' for none)")
    p.add_argument("--isa", choices=("default", "avx2", "avx512"), default=None,
                   help="code path of our CPU activation kernel (default: the widest the CPU has)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    names = [n.strip() for n in args.models.split(",")]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        print(f"unknown models {unknown}; known: {sorted(MODELS)}", file=sys.stderr)
        return 2
    for package, needed in (("bigvgan", any(n != "vocos" for n in names)), ("vocos", "vocos" in names)):
        try:
            if needed:
                __import__(package)
        except ImportError:
            print(f"the official `{package}` package is not installed", file=sys.stderr)
            return 1
    print(f"CPU: {cpu_isa()}")
    if args.isa:
        from vocoder.kernels import build

        ext = build.load_cpu()
        if ext is None or args.isa not in ext.supported_isas():
            print(f"--isa {args.isa}: not available here ({ext.supported_isas() if ext else 'no CPU kernel'})",
                  file=sys.stderr)
            return 1
        ext.set_isa(args.isa)
        print(f"our CPU kernel: {ext.isa()} code")
    print(f"threads {torch.get_num_threads()}, kernels {dispatch.kernels_available()}")
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: no device, skipped")
            continue
        for name in names:
            if name == "vocos":
                settings = [("model", int(k)) for k in args.phase_iterations.split(",") if k.strip()]
                for item in args.phase.split():
                    method, _, ks = item.partition(":")
                    settings += [(method, int(k)) for k in ks.split(",") if k.strip()]
                dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
                bad = [d for d in dtypes if not isinstance(getattr(torch, d, None), torch.dtype)]
                if bad:
                    print(f"--dtypes: not torch dtypes: {bad}", file=sys.stderr)
                    return 2
                also = [a.strip() for a in args.also.split(",") if a.strip()]
                for a in also:
                    get_preset(a)  # an unknown preset is refused before anything is timed
                bench_vocos(device, args.seconds, args.repeat, settings, dtypes, also)
            else:
                bench(name, device, args.seconds, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
