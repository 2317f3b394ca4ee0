"""FA-GAN's multi-resolution real/imaginary STFT loss (vocoder.losses.real_imag): zero for identical signals, a
hand-computed case, an independent numpy computation, gradients, bad input, and a recipe that names it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vocoder.losses.real_imag import MultiResolutionRealImagLoss


@pytest.fixture(scope="module")
def audio():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(4096) / 22050
    real = (0.4 * torch.sin(2 * np.pi * 220 * t) + 0.05 * torch.randn(4096, generator=g)).repeat(2, 1, 1)
    fake = real + 0.05 * torch.randn(real.shape, generator=g)
    return fake, real


def _numpy_loss(fake: np.ndarray, real: np.ndarray, resolutions) -> float:
    """The same loss from explicit frames: reflect-pad n_fft / 2 each side, a periodic Hann window of ``win``
    samples centred in ``n_fft``, a one-sided DFT by matrix product; mean |d re| + mean |d im|, mean over
    resolutions."""
    total = 0.0
    for n, hop, win in resolutions:
        w = np.zeros(n)
        start = (n - win) // 2
        w[start:start + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
        dft = np.exp(-2j * np.pi * np.outer(np.arange(n // 2 + 1), np.arange(n)) / n)  # [F, n]

        def stft(x):
            x = np.pad(x, (n // 2, n // 2), mode="reflect")
            frames = np.stack([x[i:i + n] * w for i in range(0, len(x) - n + 1, hop)], axis=1)  # [n, frames]
            return dft @ frames

        d = np.stack([stft(f) - stft(r) for f, r in zip(fake, real)])
        total += np.abs(d.real).mean() + np.abs(d.imag).mean()
    return total / len(resolutions)


def test_zero_for_identical_signals(audio):
    _, real = audio
    assert MultiResolutionRealImagLoss()(real, real).item() == 0.0
    assert MultiResolutionRealImagLoss()(real.squeeze(1), real.squeeze(1)).item() == 0.0


def test_a_hand_computed_case():
    """fake = real + c: the STFT is linear, so only the window's spectrum times c is left. A periodic Hann window of
    N = n_fft samples has DFT N/2 at bin 0, -N/4 at bin 1, 0 elsewhere: every frame is (N/2 c, -N/4 c, 0, ...),
    real. Mean |real part| over the N/2 + 1 bins: (3N/4) |c| / (N/2 + 1), i.e. |c| for N = 4, 6/5 |c| for N = 8;
    imaginary part 0. Two resolutions: (1 + 6/5) / 2 |c| = 1.1 |c|, whatever the signal."""
    real = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    c = -0.25
    one = MultiResolutionRealImagLoss([4], [2], [4]).double()
    two = MultiResolutionRealImagLoss([4, 8], [2, 3], [4, 8]).double()
    torch.testing.assert_close(one(real + c, real), torch.tensor(abs(c), dtype=torch.float64))
    torch.testing.assert_close(two(real + c, real), torch.tensor(1.1 * abs(c), dtype=torch.float64))


def test_matches_an_independent_numpy_computation(audio):
    fake, real = audio
    resolutions = [(1024, 120, 600), (2048, 240, 1200), (512, 50, 240)]  # the defaults, win < n_fft
    expect = _numpy_loss(fake[:, 0].double().numpy(), real[:, 0].double().numpy(), resolutions)
    got = MultiResolutionRealImagLoss().double()(fake.double(), real.double()).item()
    assert got == pytest.approx(expect, rel=1e-9)


def test_gradient_reaches_the_generated_audio_only(audio):
    fake, real = audio
    fake = fake.clone().requires_grad_(True)
    real = real.clone().requires_grad_(True)
    MultiResolutionRealImagLoss()(fake, real).backward()
    assert fake.grad.abs().sum() > 0 and real.grad is None  # the target is computed without a graph


def test_it_sees_the_phase_which_a_magnitude_loss_barely_does():
    """A tone shifted by 1 rad costs the magnitude (MR-STFT) loss less than a 20 % gain error does; it costs this
    loss more than 4 times as much."""
    from vocoder.losses import MultiResolutionSTFTLoss

    t = torch.arange(8192) / 22050
    real = torch.sin(2 * np.pi * 440 * t).view(1, 1, -1)
    shifted = torch.sin(2 * np.pi * 440 * t + 1.0).view(1, 1, -1)  # same magnitudes, another phase
    quieter = 0.8 * real
    magnitude, real_imag = MultiResolutionSTFTLoss(), MultiResolutionRealImagLoss()
    assert sum(magnitude(shifted, real)).item() < sum(magnitude(quieter, real)).item()
    assert real_imag(shifted, real).item() > 4 * real_imag(quieter, real).item()


def test_bad_input_is_refused_by_name(audio):
    fake, real = audio
    with pytest.raises(ValueError, match="same shape"):
        MultiResolutionRealImagLoss()(fake, real[:1])
    with pytest.raises(ValueError, match="equally long"):
        MultiResolutionRealImagLoss([512, 1024], [128], [512])
    with pytest.raises(ValueError, match="win_length <= fft_size"):
        MultiResolutionRealImagLoss([512], [128], [1024])
    with pytest.raises(ValueError, match="window"):
        MultiResolutionRealImagLoss(window="hann")
    with pytest.raises(ValueError, match="more than 1024 samples"):
        MultiResolutionRealImagLoss()(fake[..., :1000], real[..., :1000])


def test_a_recipe_names_it():
    from vocoder.training.lightning_module import GANVocoder
    from vocoder.training.recipes import resolve_recipe

    r = resolve_recipe({"generator": {"preset": "hifigan_v2", "config": {"upsample_initial_channel": 32}},
                        "discriminators": [{"name": "mpd"}],
                        "losses": {"mr_real_imag": 2.0, "mr_real_imag_args": {"fft_sizes": [256], "hop_sizes": [64],
                                                                              "win_lengths": [256]}}})
    module = GANVocoder(r)
    assert module.w["mr_real_imag"] == 2.0
    loss = module.loss_modules["mr_real_imag"].module
    assert isinstance(loss, MultiResolutionRealImagLoss) and loss.resolutions == [(256, 64, 256)]
    fake, real = torch.randn(2, 1, 2048), torch.randn(2, 1, 2048)
    terms = module.reconstruction_losses(fake, real)
    assert list(terms) == ["mel", "mr_real_imag"]
    assert torch.equal(terms["mr_real_imag"], MultiResolutionRealImagLoss([256], [64], [256])(fake, real))
    with pytest.raises(ValueError, match="mr_real_imag_args"):
        resolve_recipe({**r, "losses": {"mr_real_imag_args": [512]}})
