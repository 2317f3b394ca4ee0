import math
import os

import numpy as np
import pytest
import torch


def speech_like(seconds: float = 1.0, sample_rate: int = 22050, seed: int = 0) -> torch.Tensor:
    """A harmonic signal with vibrato, syllable-like envelope and a little noise: ``[T]`` float32."""
    g = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 150 + 40 * np.sin(2 * math.pi * 3 * t) + 10 * g.standard_normal()
    phase = 2 * math.pi * np.cumsum(f0) / sample_rate
    wav = sum(np.sin(k * phase) / k for k in range(1, 20) if k * 150 < sample_rate / 2)
    env = 0.5 * (1 - np.cos(2 * math.pi * 4 * t)) * 0.3
    wav = env * wav / 3 + 0.003 * g.standard_normal(t.shape)
    return torch.from_numpy(wav.astype(np.float32))


@pytest.fixture
def speech():
    return speech_like


# Tiny tensors: one intra-op thread is as fast and never fights the other processes on a shared machine.
torch.set_num_threads(int(os.environ.get("VOCODER_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread_per_module():
    """One intra-op thread for a whole test module (use with ``pytest.mark.usefixtures``): tiny models on a shared,
    loaded machine run up to 50x slower when OpenMP threads fight over 2 cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
