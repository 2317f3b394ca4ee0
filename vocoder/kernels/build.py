"""Just-in-time build and caching of the fused-kernel extensions.

Three extensions are built with :func:`torch.utils.cpp_extension.load` from the sources shipped in this
package: ``vocoder_aa_cpu`` (``cpu/anti_alias.cpp``, C++/OpenMP), ``vocoder_aa_cuda``
(``cuda/anti_alias.cpp`` + ``cuda/anti_alias_kernel.cu``) and ``vocoder_phase_heap_cpu`` (``cpu/phase_heap.cpp``,
the heap integration of PGHI / RTPGHI). Compiled objects go to a per-user cache:

* ``$TORCH_EXTENSIONS_DIR/<name>`` when that variable is set (PyTorch's own convention), else
* ``~/.cache/vocoder/kernels/torch-<torch version>-py<major><minor>/<name>``,

never inside site-packages, so an installed (read-only) package works and a torch upgrade rebuilds.
PyTorch's loader re-compiles when a source file changes and serialises concurrent builds of the same
extension with a lock file, so parallel test processes are safe.

Global state: nothing in ``os.environ`` is changed. ``cpp_extension`` guesses the CUDA toolkit once, at its
import, from ``CUDA_HOME``/``CUDA_PATH``, else the directory above the first ``nvcc`` on ``PATH``, else
``/usr/local/cuda``; a wrapper script such as ``/usr/local/bin/nvcc`` makes that guess wrong
(``/usr/local``). :func:`cuda_home` therefore resolves the toolkit itself (the same variables first, then
a directory that really has ``bin/nvcc`` and ``include/cuda_runtime.h``), and the CUDA build runs with
``cpp_extension.CUDA_HOME`` set to it for the duration of the call only (restored afterwards, under a lock).
The CUDA architecture is passed as an explicit ``-gencode`` flag (the visible GPU's, else ``sm_90``), which
makes ``cpp_extension`` ignore ``TORCH_CUDA_ARCH_LIST``; callers may pass their own ``arch``.

A failed build logs one warning and returns ``None``; the loaded (or failed) result is cached per process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
CPU_NAME = "vocoder_aa_cpu"
CUDA_NAME = "vocoder_aa_cuda"
CPU_SOURCES = [_HERE / "cpu" / "anti_alias.cpp"]
#: the heap integration of PGHI / RTPGHI (vocoder.nn.phase_retrieval), plain C++
PHASE_HEAP_NAME = "vocoder_phase_heap_cpu"
PHASE_HEAP_SOURCES = [_HERE / "cpu" / "phase_heap.cpp"]
CUDA_SOURCES = [_HERE / "cuda" / "anti_alias.cpp", _HERE / "cuda" / "anti_alias_kernel.cu"]
# Portable flags: no -march=native (the cache may be shared by machines, CI builds for others) and no
# -ffast-math (the kernels must match the reference); -O3 lets GCC vectorise the inner loops.
CPU_CFLAGS = ["-O3", "-fopenmp"]
CPU_LDFLAGS = ["-fopenmp"]
CUDA_CFLAGS = ["-O3", "-lineinfo"]
DEFAULT_CUDA_ARCH = "90"

_lock = threading.RLock()
_cache: dict[str, ModuleType | None] = {}
_errors: dict[str, str] = {}


def cache_root() -> Path:
    """Directory that holds one build folder per extension (created on demand)."""
    env = os.environ.get("TORCH_EXTENSIONS_DIR")
    if env:
        return Path(env).expanduser()
    tag = f"torch-{torch.__version__}-py{sys.version_info.major}{sys.version_info.minor}".replace("+", "_")
    return Path.home() / ".cache" / "vocoder" / "kernels" / tag


def build_dir(name: str) -> Path:
    """Build folder of extension ``name`` (created)."""
    path = cache_root() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _is_toolkit(path: str | os.PathLike | None) -> bool:
    if not path:
        return False
    p = Path(path)
    return (p / "bin" / "nvcc").exists() and (p / "include" / "cuda_runtime.h").exists()


def cuda_home() -> str | None:
    """The CUDA toolkit to compile with, or ``None`` when there is none (see the module docstring)."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        value = os.environ.get(var)
        if value and _is_toolkit(value):
            return value
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(Path(os.path.realpath(nvcc)).parent.parent)
    candidates.append(Path("/usr/local/cuda"))
    for c in candidates:
        if _is_toolkit(c):
            return str(c)
    return None


def default_cuda_arch() -> str:
    """Compute capability to build for, as digits (``"90"``): the current GPU's, else ``sm_90``."""
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        return f"{major}{minor}"
    return DEFAULT_CUDA_ARCH


@contextlib.contextmanager
def _cpp_extension_cuda_home(path: str):
    """Temporarily point ``torch.utils.cpp_extension.CUDA_HOME`` at ``path`` (restored on exit)."""
    from torch.utils import cpp_extension  # deferred (here and below): the build machinery loads only to build

    with _lock:
        saved = cpp_extension.CUDA_HOME
        cpp_extension.CUDA_HOME = path
        try:
            yield
        finally:
            cpp_extension.CUDA_HOME = saved


def _load(name: str, builder, force: bool = False) -> ModuleType | None:
    with _lock:
        if name in _cache and not force:
            return _cache[name]
        try:
            module = builder()
        except Exception as exc:  # a compiler error, a missing toolkit, an unloadable library...
            first = str(exc).strip().splitlines()
            msg = f"{type(exc).__name__}: {first[0] if first else ''}"
            _errors[name] = str(exc)
            log.warning("vocoder: could not build the %s kernel extension (%s); using the PyTorch reference.", name, msg)
            module = None
        _cache[name] = module
        return module


def load_cpu(verbose: bool = False, force: bool = False) -> ModuleType | None:
    """Build (if needed) and import the CPU extension; ``None`` (with one warning) when that fails."""

    def build():
        from torch.utils.cpp_extension import load

        return load(
            name=CPU_NAME,
            sources=[str(s) for s in CPU_SOURCES],
            extra_cflags=CPU_CFLAGS,
            extra_ldflags=CPU_LDFLAGS,
            build_directory=str(build_dir(CPU_NAME)),
            with_cuda=False,
            verbose=verbose,
        )

    return _load(CPU_NAME, build, force)


def load_phase_heap(verbose: bool = False, force: bool = False) -> ModuleType | None:
    """Build (if needed) and import the PGHI / RTPGHI heap-integration extension; ``None`` (with one warning)
    when that fails (the NumPy reference in :mod:`vocoder.nn.phase_retrieval` is used then)."""

    def build():
        from torch.utils.cpp_extension import load

        return load(
            name=PHASE_HEAP_NAME,
            sources=[str(s) for s in PHASE_HEAP_SOURCES],
            extra_cflags=["-O3"],
            build_directory=str(build_dir(PHASE_HEAP_NAME)),
            with_cuda=False,
            verbose=verbose,
        )

    return _load(PHASE_HEAP_NAME, build, force)


def load_cuda(arch: str | None = None, verbose: bool = False, force: bool = False) -> ModuleType | None:
    """Build (if needed) and import the CUDA extension for compute capability ``arch`` (e.g. ``"90"``).

    Works without a GPU (it only needs the toolkit), so CI can check that the kernels compile and link.
    Returns ``None`` (with one warning) when there is no toolkit or the build fails.
    """
    arch = arch or default_cuda_arch()

    def build():
        home = cuda_home()
        if home is None:
            raise RuntimeError("no CUDA toolkit found (set CUDA_HOME, or put nvcc on PATH)")
        from torch.utils.cpp_extension import load

        with _cpp_extension_cuda_home(home):
            return load(
                name=CUDA_NAME,
                sources=[str(s) for s in CUDA_SOURCES],
                extra_cflags=["-O3"],
                extra_cuda_cflags=CUDA_CFLAGS + [f"-gencode=arch=compute_{arch},code=sm_{arch}"],
                build_directory=str(build_dir(CUDA_NAME)),
                with_cuda=True,
                verbose=verbose,
            )

    return _load(CUDA_NAME, build, force)


def last_error(name: str) -> str | None:
    """Full text of the last build failure of extension ``name`` in this process, if any."""
    return _errors.get(name)
