"""vocoder.nn.harmonic_source: the sine's frequency is F0, no aliased overtones, noise only where unvoiced, the
counter-based noise (SplitMix64 + Box-Muller, checked against a plain-Python SplitMix64), chunked == whole."""
import math
import warnings
from typing import List, Tuple

import numpy as np
import pytest
import torch

from vocoder.nn.counter_noise import counter_gaussian, splitmix64
from vocoder.nn.harmonic_source import HarmonicSource, StreamHarmonicSource
from vocoder.nn.streaming import StateAllocator

pytestmark = pytest.mark.usefixtures("one_thread_per_module")

SR, HOP = 22050, 256
M64 = (1 << 64) - 1


def _splitmix_py(seed: int, n: int) -> int:
    """The n-th (0-based) output of SplitMix64 (Vigna's reference) in Python integers."""
    z = (seed + (n + 1) * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _voiced(b, t, value=True):
    return torch.full((b, t), value, dtype=torch.bool)


def _exclusive_phase(f_frames: np.ndarray) -> np.ndarray:
    """Float64 reference: the phase (radians) before each sample of the nearest-upsampled F0."""
    f = np.repeat(f_frames.astype(np.float64), HOP)
    return 2 * math.pi * (np.cumsum(f) - f) / SR


def _drift(n_samples: int) -> float:
    """Bound on |sine - closed form| after ``n_samples``: each increment is rounded to 2^-33 cycles (F0 is
    quantised to sr * 2^-32 = 5e-6 Hz), amplitude 0.1."""
    return 0.1 * 2 * math.pi * n_samples * 2.0 ** -33 + 1e-12


def _inst_freq(x: np.ndarray) -> np.ndarray:
    """Instantaneous frequency (Hz) at samples 1 .. N-2 of a sine: for ``x = A sin(w n + c)``,
    ``x[n-1] + x[n+1] = 2 cos(w) x[n]`` exactly; NaN where ``|x[n]|`` is under half the peak (ill-conditioned)."""
    mid = x[1:-1]
    ratio = (x[:-2] + x[2:]) / (2 * np.where(np.abs(mid) > 0.5 * np.abs(x).max(), mid, np.nan))
    return np.arccos(np.clip(ratio, -1, 1)) * SR / (2 * math.pi)


def test_splitmix64_matches_reference():
    assert _splitmix_py(0, 0) == 0xE220A8397B1DCDAF  # SplitMix64's published first output for seed 0
    for seed in (0, 1, 12345, (1 << 63) + 17, M64):
        key = torch.tensor(seed - (1 << 64) if seed >= (1 << 63) else seed)
        idx = torch.tensor([0, 1, 2, 1000, 10 ** 9, 10 ** 12])
        got = [int(v) % (1 << 64) for v in splitmix64(key, idx)]
        assert got == [_splitmix_py(seed, int(n)) for n in idx]
    # Box-Muller on those bits, written out in plain Python.
    h = _splitmix_py(7, 3)
    u1, u2 = ((h >> 32) + 0.5) / 2 ** 32, (h & 0xFFFFFFFF) / 2 ** 32
    ref = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
    assert float(counter_gaussian(torch.tensor(7), torch.tensor(3))) == pytest.approx(ref, abs=1e-14)


def test_constant_f0_sine_is_the_closed_form_and_its_frequency():
    src = HarmonicSource(SR, HOP, harmonics=0, noise_std=0.0)
    t = 100
    f0 = torch.full((1, t), 220.0)
    s, _ = src.sines(f0, _voiced(1, t))
    s = s[0, 0].numpy()
    n = np.arange(t * HOP)
    np.testing.assert_allclose(s, 0.1 * np.sin(2 * math.pi * 220.0 * n / SR), rtol=0, atol=_drift(n.size))
    inst = _inst_freq(s)
    assert np.nanmax(np.abs(inst - 220.0)) < 0.01
    # The merged excitation's spectral peak (noise included) sits on F0 too.
    y, _ = HarmonicSource(SR, HOP)(f0, _voiced(1, t))
    spec = np.abs(np.fft.rfft(y[0, 0].detach().numpy() * np.hanning(t * HOP), 8 * t * HOP))
    freqs = np.fft.rfftfreq(8 * t * HOP, 1 / SR)
    band = (freqs > 100) & (freqs < 330)
    assert abs(freqs[band][np.argmax(spec[band])] - 220.0) < 0.5


def test_gliding_f0_instantaneous_frequency_follows_each_frame():
    src = HarmonicSource(SR, HOP, harmonics=0, noise_std=0.0)
    t = 200
    f_frames = np.linspace(100.0, 400.0, t)
    s, _ = src.sines(torch.tensor(f_frames, dtype=torch.float32)[None], _voiced(1, t))
    s = s[0, 0].numpy()
    f32 = f_frames.astype(np.float32)  # what the source was given
    np.testing.assert_allclose(s, 0.1 * np.sin(_exclusive_phase(f32)), rtol=0, atol=_drift(s.size))
    inst = np.concatenate([[np.nan], _inst_freq(s), [np.nan]])
    for i in range(t):
        inside = inst[i * HOP + 1: (i + 1) * HOP - 1]  # F0 steps at the frame's edges
        assert np.nanmax(np.abs(inside - f32[i])) < 0.01, (i, f32[i])


def test_harmonics_at_multiples_of_f0_and_none_above_nyquist():
    src = HarmonicSource(SR, HOP, harmonics=8, noise_std=0.0)
    t = 80
    f0 = torch.full((1, t), 1500.0)
    s, _ = src.sines(f0, _voiced(1, t))
    for k in range(1, 10):
        row = s[0, k - 1].numpy()
        if k * 1500 < SR / 2:
            # k * phase + a fixed start: a pure tone at k * F0 of amplitude sine_amp.
            assert np.nanmax(np.abs(_inst_freq(row) - k * 1500)) < 0.01, k
            assert math.sqrt(2 * np.mean(row ** 2)) == pytest.approx(0.1, rel=2e-3)
        else:
            assert np.all(row == 0), f"harmonic {k} at {k * 1500} Hz is above Nyquist and must be silent"
    # A glide crossing Nyquist/k drops harmonic k exactly on the frames where k * F0 >= sr / 2.
    f_frames = torch.linspace(1000.0, 2000.0, t)[None]
    s, _ = src.sines(f_frames, _voiced(1, t))
    for k in range(1, 10):
        audible = (k * f_frames[0] < SR / 2).repeat_interleave(HOP)
        assert torch.all(s[0, k - 1][~audible] == 0)
        assert torch.all(s[0, k - 1][audible].abs().reshape(-1, HOP).amax(1) > 0.05)
    # In the merge's linear range the excitation has nothing at the folded frequencies 22050 - 12000, 22050 - 13500.
    lin = HarmonicSource(SR, HOP, harmonics=8, sine_amp=1e-3, noise_std=0.0)
    y = lin(f0, _voiced(1, t))[0][0, 0].detach().double().numpy()
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    freqs = np.fft.rfftfreq(y.size, 1 / SR)
    db = 20 * np.log10(spec / spec.max() + 1e-300)
    for alias in (10050.0, 8550.0):
        near = np.abs(freqs - alias) < 60
        assert db[near].max() < -100, (alias, db[near].max())
    assert db[np.abs(freqs - 10500.0) < 60].max() > -10  # the highest harmonic below Nyquist is there


def test_unvoiced_frames_carry_noise_only():
    src = HarmonicSource(SR, HOP, seed=3)
    t = 60
    f0 = torch.full((2, t), 180.0)
    unv, _ = src(f0, _voiced(2, t, False))
    # Whatever F0 says on unvoiced frames, the output is the noise at sine_amp / 3.
    unv2, _ = src(torch.rand(2, t) * 500, _voiced(2, t, False))
    assert torch.equal(unv, unv2)
    state = src.initial_state(2)
    noise = (src.noise(state, t * HOP) * (0.1 / 3)).float()
    assert torch.equal(unv[:, 0], noise)
    # Mixed: unvoiced frames equal the all-unvoiced output sample for sample, voiced ones do not.
    v = _voiced(2, t)
    v[:, 20:35] = False
    mixed, _ = src(f0, v)
    vs = v.repeat_interleave(HOP, 1)
    assert torch.equal(mixed[:, 0][~vs], unv[:, 0][~vs])
    assert (mixed[:, 0][vs] - unv[:, 0][vs]).abs().mean() > 0.01
    # Voiced noise has noise_std: with the sines merged away, only it remains.
    with torch.no_grad():
        src.merge.weight.zero_()
    quiet, _ = src(f0, _voiced(2, t))
    assert torch.allclose(quiet[:, 0], (src.noise(state, t * HOP) * 0.003).float())


def test_noise_statistics():
    src = HarmonicSource(SR, HOP, sine_amp=0.3, seed=11)
    t = 800  # 204,800 samples per item
    y, _ = src(torch.zeros(2, t), _voiced(2, t, False))
    x = y[:, 0].detach().double() / 0.1  # unvoiced std is sine_amp / 3
    n = x.shape[1]
    for row in x:
        assert abs(float(row.mean())) < 4 / math.sqrt(n)
        assert float(row.std()) == pytest.approx(1.0, rel=0.01)
        z = (row - row.mean()) / row.std()
        assert float(z.pow(4).mean()) == pytest.approx(3.0, abs=0.1)  # Gaussian kurtosis
        assert abs(float((z[1:] * z[:-1]).mean())) < 4 / math.sqrt(n)  # white
        assert float((row.abs() > 4).float().mean()) < 1e-3
    a, b = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
    assert abs(float((a * b).mean())) < 4 / math.sqrt(n)  # items draw different noise


def _stream(src, f0, v, sizes, **kw):
    state = src.initial_state(f0.shape[0], **kw)
    outs, pos = [], 0
    for size in sizes:
        y, state = src(f0[:, pos:pos + size], v[:, pos:pos + size], state)
        outs.append(y)
        pos += size
    assert pos == f0.shape[1]
    return torch.cat(outs, -1), state


def test_chunked_equals_whole_bit_exactly():
    src = HarmonicSource(SR, HOP, seed=5)
    g = torch.Generator().manual_seed(0)
    t = 90
    f0 = 80 + 400 * torch.rand(2, t, generator=g)
    v = torch.rand(2, t, generator=g) > 0.3
    whole, end = src(f0, v)
    sizes_list = [[1] * t, [7] * 12 + [6], [t], [0, 3, 0, 40, 1, 46]]
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, t), 9, replace=False))
    sizes_list.append(list(np.diff(np.concatenate([[0], cuts, [t]]))))
    for sizes in sizes_list:
        got, state = _stream(src, f0, v, sizes)
        assert torch.equal(got, whole), sizes
        assert torch.equal(state, end)
    # One item streamed alone gets the noise and phases of its place in the batch (item_ids).
    one, _ = _stream(src, f0[1:], v[1:], [5] * 18, item_ids=torch.tensor([1]))
    assert torch.equal(one[0], whole[1])
    # Many periods later the fixed-point phase is still the closed form, to its frequency quantisation.
    long_t = 20000  # ~4 minutes
    s, _ = HarmonicSource(SR, HOP, harmonics=0).sines(torch.full((1, long_t), 233.3), _voiced(1, long_t))
    n = np.arange(long_t * HOP - 1000, long_t * HOP)
    ref = 0.1 * np.sin(2 * math.pi * ((np.float64(np.float32(233.3)) * n / SR) % 1.0))
    np.testing.assert_allclose(s[0, 0, -1000:].numpy(), ref, rtol=0, atol=_drift(long_t * HOP))


def test_seed_and_sample_offset():
    t = 40
    f0 = torch.full((1, t), 150.0)
    unv = _voiced(1, t, False)
    a = HarmonicSource(SR, HOP, seed=1)(f0, unv)[0]
    assert torch.equal(a, HarmonicSource(SR, HOP, seed=1)(f0, unv)[0])
    c = HarmonicSource(SR, HOP, seed=2)(f0, unv)[0]
    assert abs(float(torch.corrcoef(torch.stack([a.flatten(), c.flatten()]).detach())[0, 1])) < 0.05
    # sample_offset places the noise counter: the tail of an utterance started at its position.
    tail = HarmonicSource(SR, HOP, seed=1)(f0[:, 25:], unv[:, 25:], sample_offset=25 * HOP)[0]
    assert torch.equal(tail, a[..., 25 * HOP:])


def test_gradient_reaches_the_merge_weights():
    src = HarmonicSource(SR, HOP)
    y, _ = src(torch.full((1, 10), 200.0), _voiced(1, 10))
    y.pow(2).sum().backward()
    assert src.merge.weight.grad is not None and src.merge.weight.grad.abs().sum() > 0


def test_bad_input_is_refused():
    src = HarmonicSource(SR, HOP)
    f0, v = torch.full((1, 10), 200.0), _voiced(1, 10)
    with pytest.raises(ValueError, match=r"f0_hz as a float tensor \[B, T\]"):
        src(f0[0], v[0])
    with pytest.raises(ValueError, match="voiced"):
        src(f0, v[:, :5])
    with pytest.raises(ValueError, match="finite and >= 0"):
        src(torch.full((1, 10), float("nan")), v)
    with pytest.raises(ValueError, match="finite and >= 0"):
        src(-f0, v)
    with pytest.raises(ValueError, match="source state"):
        src(f0, v, torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="not both"):
        src(f0, v, src.initial_state(1), sample_offset=256)
    with pytest.raises(ValueError, match="harmonics"):
        HarmonicSource(SR, HOP, harmonics=-1)
    with pytest.raises(ValueError, match="item_ids"):
        src.initial_state(2, item_ids=torch.tensor([0.5, 1.0]))


def test_streaming_layer_equals_the_offline_source_eager_and_scripted():
    src = HarmonicSource(SR, HOP, seed=9)
    with torch.no_grad():
        src.merge.weight.uniform_(-0.5, 0.5)
    g = torch.Generator().manual_seed(2)
    t = 37
    frames = torch.stack([math.log(70.0) + 2.5 * torch.rand(2, t, generator=g), torch.randn(2, t, generator=g)], 1)
    voiced = frames[:, 1] > 0
    f0 = torch.where(voiced, frames[:, 0].exp(), torch.zeros(()))
    with torch.no_grad():
        whole, _ = src(f0, voiced)
    layer = StreamHarmonicSource(src)
    assert layer.out_count(3) == 3 * HOP and layer.in_range(HOP, 2 * HOP - 1) == (1, 1)
    alloc = StateAllocator()
    layer.allocate(alloc)

    class Step(torch.nn.Module):  # as the streaming engine drives a network: the states go in and come back
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x: torch.Tensor, states: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
            states = [s for s in states]
            return self.body(x, states, False), states

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; the streaming engine uses it
        scripted = torch.jit.script(Step(layer))
    for net in (Step(layer), scripted):
        for sizes in ([1] * t, [10, 0, 27]):
            states = [torch.zeros(0)] * alloc.count
            layer.fill_states(states, 2, frames)
            outs, pos = [], 0
            for size in sizes:
                y, states = net(frames[:, :, pos:pos + size], states)
                outs.append(y)
                pos += size
            assert torch.equal(torch.cat(outs, -1), whole), (type(net).__name__, sizes)
