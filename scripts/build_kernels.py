#!/usr/bin/env python
"""Build the fused-kernel extensions ahead of time (CI, or before a benchmark) into the kernel cache.

    python scripts/build_kernels.py [--arch 90] [--no-cuda] [--verbose]

Builds the CPU extension, then the CUDA extension when a CUDA toolkit (nvcc) is found (a GPU is not
needed: it only compiles and links, for ``sm_<arch>``: the visible GPU's, else 90). Exits 1 when a build fails.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from vocoder.kernels import build


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=None, help="CUDA compute capability as digits, e.g. 90 (default: GPU's, else 90)")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA extension")
    p.add_argument("--verbose", action="store_true", help="show compiler commands")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    print(f"cache: {build.cache_root()}")
    failed = []
    t = time.perf_counter()
    cpu = build.load_cpu(verbose=args.verbose)
    if cpu is None:
        failed.append(build.CPU_NAME)
        print(build.last_error(build.CPU_NAME), file=sys.stderr)
    else:
        print(f"{build.CPU_NAME}: ok ({time.perf_counter() - t:.1f} s, float32 code: {cpu.isa()}, "
              f"available: {', '.join(cpu.supported_isas())})")

    t = time.perf_counter()
    if build.load_phase_heap(verbose=args.verbose) is None:
        failed.append(build.PHASE_HEAP_NAME)
        print(build.last_error(build.PHASE_HEAP_NAME), file=sys.stderr)
    else:
        print(f"{build.PHASE_HEAP_NAME}: ok ({time.perf_counter() - t:.1f} s)")

    if args.no_cuda:
        print("CUDA: skipped (--no-cuda)")
    elif build.cuda_home() is None:
        print("CUDA: skipped (no toolkit found)")
    else:
        t = time.perf_counter()
        arch = args.arch or build.default_cuda_arch()
        if build.load_cuda(arch=arch, verbose=args.verbose) is None:
            failed.append(build.CUDA_NAME)
            print(build.last_error(build.CUDA_NAME), file=sys.stderr)
        else:
            print(f"{build.CUDA_NAME}: ok ({time.perf_counter() - t:.1f} s, sm_{arch}, toolkit {build.cuda_home()})")

    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
