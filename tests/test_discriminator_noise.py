"""Diffusion noise on the discriminator's inputs (vocoder.training.discriminator_noise): the schedule, the adaptation
of T, the spectrally shaped noise, the recipe section."""
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vocoder.audio.mel import MelConfig, mel_filterbank
from vocoder.training.discriminator_noise import (DiscriminatorNoise, DiscriminatorNoiseConfig, linear_alphas_bar,
                                                  shaped_noise, spectral_envelope)

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _noise(**kw):
    return DiscriminatorNoise(DiscriminatorNoiseConfig(enabled=True, **kw), MelConfig())


def test_alphas_bar_is_the_linear_schedule():
    T, b0, b1 = 37, 1e-4, 2e-2
    expected = np.concatenate([[1.0], np.cumprod(1 - np.linspace(b0, b1, T))])
    assert np.allclose(linear_alphas_bar(T, b0, b1).numpy(), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("t", [1, 40, 150])
def test_noise_level_follows_the_schedule(t):
    """x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps at the schedule's abar_t (T = 150), measured on 64k samples."""
    torch.manual_seed(0)
    noise = _noise(steps_min=150, steps_max=150)
    abar = float(np.prod(1 - np.linspace(1e-4, 2e-2, 150)[:t]))
    real = torch.full((4, 1, 16000), 0.5)
    fake = torch.zeros(4, 1, 16000)
    real_t, fake_t = noise(real, fake, t=t)
    assert noise.last_t == t
    # the same noise on both: their difference is the scaled clean difference
    assert torch.allclose(real_t - fake_t, torch.full_like(real, 0.5 * abar ** 0.5), atol=1e-5)
    assert float(fake_t.var()) == pytest.approx(1 - abar, rel=0.03)
    assert float(real_t.mean()) == pytest.approx(0.5 * abar ** 0.5, abs=0.02)


def test_one_t_per_batch_from_the_priority_distribution():
    torch.manual_seed(0)
    noise = _noise(steps_min=30, steps_max=30)
    ts = [noise.sample_t() for _ in range(6000)]
    assert min(ts) >= 1 and max(ts) <= 30
    assert np.mean(ts) == pytest.approx((2 * 30 + 1) / 3, abs=0.3)  # P(t) ~ t
    uniform = _noise(steps_min=30, steps_max=30, t_distribution="uniform")
    assert np.mean([uniform.sample_t() for _ in range(6000)]) == pytest.approx(15.5, abs=0.3)
    # a drawn t is applied to the whole batch: items of equal content stay equal up to the shared abar
    real = torch.zeros(3, 1, 4000)
    real_t, _ = noise(real, real)
    abar = float(noise.alphas_bar()[noise.last_t])
    assert torch.allclose(real_t.std(dim=-1), torch.full((3, 1), (1 - abar) ** 0.5), rtol=0.08)


def test_adaptation_moves_T_by_the_rule():
    """r_d = mean(sign(D(real) - 0.5)) (LSGAN) against target 0.6: above -> T += C, below -> T -= C, every N steps."""
    noise = _noise(steps_min=5, steps_max=12, adjust_every=4, adjust_step=2.0, target=0.6)
    assert noise.steps == 5
    confident = [torch.full((2, 10), 0.9), torch.full((2, 3), 0.8)]  # all above 0.5: r_d = 1 > 0.6
    results = [noise.update(confident) for _ in range(8)]
    assert results == [None, None, None, 7, None, None, None, 9]
    for _ in range(8):
        noise.update(confident)
    assert noise.steps == 12  # clipped at steps_max
    fooled = [torch.full((2, 10), 0.3)]  # r_d = -1 < 0.6
    for _ in range(4):
        noise.update(fooled)
    assert noise.steps == 10
    # r_d mixes the interval's signs: 3 of 4 calls confident -> r_d = 0.5 < 0.6 -> down
    for logits in (confident, confident, confident, fooled):
        noise.update([torch.full((2, 10), float(logits[0][0, 0]))])
    assert noise.steps == 8
    # hinge: undecided at 0 (the sign of the logits)
    hinge = DiscriminatorNoise(DiscriminatorNoiseConfig(enabled=True, adjust_every=1, adjust_step=1.0), None, "hinge")
    hinge.update([torch.full((2, 4), 0.2)])
    assert hinge.steps == 6


def test_state_dict_resumes_T():
    a = _noise(adjust_every=2, adjust_step=1.5)
    for _ in range(5):
        a.update([torch.ones(2, 3)])
    b = _noise(adjust_every=2, adjust_step=1.5)
    b.load_state_dict(a.state_dict())
    assert b.steps == a.steps == 8
    a.update([torch.ones(2, 3)])
    b.update([torch.ones(2, 3)])
    assert a.state_dict() == b.state_dict() and a.steps == 10
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({"level": 3.0})


def _envelope_pair(frames=64):
    """A known smooth amplitude envelope (two formants on a tilt, below 8 kHz) and the log-mel it gives."""
    mc = MelConfig()
    f = torch.fft.rfftfreq(mc.n_fft, 1 / mc.sample_rate).double()
    env = (0.05 + torch.exp(-((f - 700) / 250) ** 2) + 0.5 * torch.exp(-((f - 2500) / 400) ** 2)) * torch.exp(-f / 3000)
    fb = mel_filterbank(mc, dtype=torch.float64)
    mel = torch.log(torch.clamp(fb @ env, min=1e-5))[None, :, None].expand(2, -1, frames).float()
    return mc, f, env, mel


def _corr(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def _mean_amplitude(x):
    w = torch.hann_window(1024, dtype=torch.float64)
    return torch.stft(x[:, 0].double(), 1024, 256, window=w, return_complex=True).abs().pow(2).mean(dim=(0, 2)).sqrt()


def test_shaped_noise_follows_the_envelope():
    """Log-spectrum correlations below fmax (measured: envelope vs the true one 0.985; shaped noise vs its envelope
    0.999, vs the true envelope 0.985; white noise vs the envelope -0.22). Asserted: > 0.95 and < 0.5."""
    mc, f, true_env, mel = _envelope_pair()
    env = spectral_envelope(mel, mc)
    band = f < mc.fmax
    assert _corr(env[0, band, 10].double().log(), true_env[band].log()) > 0.95
    torch.manual_seed(0)
    shaped = shaped_noise((2, 1, 64 * 256), env, mc)
    assert torch.allclose(shaped.std(dim=-1), torch.ones(2, 1), atol=1e-4)  # unit variance per item
    spectrum = _mean_amplitude(shaped)
    assert _corr(spectrum[band].log(), env[0, band, 10].double().log()) > 0.95
    assert _corr(spectrum[band].log(), true_env[band].log()) > 0.95
    white = _mean_amplitude(torch.randn(2, 1, 64 * 256))
    assert _corr(white[band].log(), env[0, band, 10].double().log()) < 0.5


def test_shaped_noise_in_the_call_is_shared_and_scaled():
    torch.manual_seed(0)
    mc, _, _, mel = _envelope_pair()
    noise = DiscriminatorNoise(DiscriminatorNoiseConfig(enabled=True, shaped=True, steps_min=50, steps_max=50), mc)
    real = torch.zeros(2, 1, 64 * 256)
    real_t, fake_t = noise(real, real.clone(), mel, t=50)
    assert torch.equal(real_t, fake_t)
    abar = float(noise.alphas_bar()[50])
    assert float(real_t.std()) == pytest.approx((1 - abar) ** 0.5, rel=1e-3)
    with pytest.raises(ValueError, match="needs the batch's mel"):
        noise(real, real)


def test_disabled_is_identity_and_gradients_reach_fake():
    off = DiscriminatorNoise(DiscriminatorNoiseConfig(), None)
    real, fake = torch.randn(2, 1, 100), torch.randn(2, 1, 100)
    assert off(real, fake) == (real, fake) and off.update([torch.ones(1)]) is None
    fake.requires_grad_(True)
    _, fake_t = _noise()(real, fake)
    fake_t.sum().backward()
    assert fake.grad is not None and torch.all(fake.grad > 0)


def test_config_from_recipe_section_and_errors():
    c = DiscriminatorNoiseConfig.from_dict({"enabled": True, "beta_start": "1e-4", "steps_max": 200, "shaped": True})
    assert c.enabled and c.beta_start == 1e-4 and c.steps_max == 200 and c.shaped
    assert DiscriminatorNoiseConfig.from_dict(None) == DiscriminatorNoiseConfig()
    with pytest.raises(ValueError, match="unknown keys"):
        DiscriminatorNoiseConfig.from_dict({"enable": True})
    with pytest.raises(ValueError, match="expected true or false"):
        DiscriminatorNoiseConfig.from_dict({"enabled": "yes"})
    with pytest.raises(ValueError, match="steps_min <= steps_max"):
        DiscriminatorNoiseConfig(steps_min=10, steps_max=5)
    with pytest.raises(ValueError, match="t_distribution"):
        DiscriminatorNoiseConfig(t_distribution="cosine")
    with pytest.raises(ValueError, match="needs the recipe's mel config"):
        DiscriminatorNoise(DiscriminatorNoiseConfig(enabled=True, shaped=True), None)
    with pytest.raises(ValueError, match="same shape"):
        _noise()(torch.zeros(2, 1, 10), torch.zeros(2, 1, 12))


def test_specdiff_recipe_is_hifigan_v2_plus_the_noise():
    specdiff = yaml.safe_load((RECIPES / "hifigan_v2_specdiff.yaml").read_text())
    base = yaml.safe_load((RECIPES / "hifigan_v2.yaml").read_text())
    section = specdiff.pop("discriminator_noise")
    assert specdiff == base
    c = DiscriminatorNoiseConfig.from_dict(section)
    assert c.enabled and c.shaped and c.t_distribution == "priority"
