"""Shared by the tests: the tiny mel of the inference-side tests (CLI, Vocoder, plugins), scripts as modules,
`vocoder serve` as a subprocess, and a streamed decode in given chunks."""
import contextlib
import importlib.util
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from vocoder.audio.mel import MelConfig

#: the repository's root (scripts/, recipes/)
REPO = Path(__file__).resolve().parents[1]

# A tiny mel setup: 8 kHz, hop 16, 20 bands; models built for it run in milliseconds on CPU.
TINY_MEL = MelConfig(sample_rate=8000, n_fft=64, hop_length=16, win_length=64, n_mels=20, fmin=0.0, fmax=4000.0)


def load_script(path) -> ModuleType:
    """A script (``scripts/*.py``, ``recipes/data/*.py``) imported as the module named after its file, once: it is
    registered in ``sys.modules`` (dataclasses look their module up there) and reused while it is that file."""
    path = Path(path).resolve()
    mod = sys.modules.get(path.stem)
    if mod is not None and Path(getattr(mod, "__file__", None) or "").resolve() == path:
        return mod
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def cli_server(args, env=None, timeout: float = 180.0):
    """``python -m vocoder serve ARGS --port P`` on a free loopback port, yielding ``(url, process)`` once
    ``/healthz`` answers 200; terminated (SIGTERM) on exit. Fails the test if the server dies first."""
    import httpx

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([sys.executable, "-m", "vocoder", "serve", *args, "--port", str(port)],
                            env=dict(os.environ) if env is None else env, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"vocoder serve did not answer within {timeout} s"
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(30)


def stream_all(sv, mel, chunks):
    """A :class:`~vocoder.streaming.StreamingVocoder` ``sv`` fed ``mel [.., n_mels, T]`` in chunks of the given frame
    counts (the remainder as one more chunk), then flushed: the whole stream's audio ``[.., T * hop]``."""
    import torch

    outs, i = [], 0
    for c in chunks:
        outs.append(sv.push(mel[..., i:i + c]))
        i += c
    if i < mel.shape[-1]:
        outs.append(sv.push(mel[..., i:]))
    outs.append(sv.flush())
    return torch.cat(outs, dim=-1)


def random_chunks(total: int, rng: random.Random, hi: int = 9) -> list:
    """Chunk sizes in ``1 .. hi`` drawn from ``rng`` until they cover ``total`` frames."""
    out, s = [], 0
    while s < total:
        out.append(rng.randint(1, hi))
        s += out[-1]
    return out
