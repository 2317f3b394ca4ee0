"""Shared by the tests: the tiny mel of the inference-side tests (CLI, Vocoder, plugins), and scripts as modules."""
import importlib.util
import sys
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
