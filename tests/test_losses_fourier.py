"""Losses on a predicted STFT (vocoder.losses.fourier), each against a case computed by hand."""
import math

import pytest
import torch

from vocoder.losses.fourier import FourierLosses, STFTFrames, anti_wrap
from vocoder.nn.convnext import InverseSTFT

PI = math.pi


def test_anti_wrap_is_the_distance_to_the_nearest_multiple_of_two_pi():
    x = torch.tensor([0.0, 2 * PI, -4 * PI, PI, -PI, 0.5, 2 * PI + 0.5, -1.5 * PI, 3.5 * PI])
    want = torch.tensor([0.0, 0.0, 0.0, PI, PI, 0.5, 0.5, 0.5 * PI, 0.5 * PI])
    assert torch.allclose(anti_wrap(x), want, atol=1e-5)


@pytest.mark.parametrize("padding", ["same", "center"])
def test_stft_frames_and_inverse_stft_are_inverses(padding):
    torch.manual_seed(0)
    wav = torch.randn(2, 40 * 64)
    stft = STFTFrames(256, 64, padding)
    spec = stft(wav)
    assert spec.shape == (2, 129, 40)
    back = InverseSTFT(256, 64, padding)(spec)
    assert back.shape == wav.shape
    # "center" keeps T frames: the last hop lacks the frames past the end, so compare all but the last hop
    n = wav.shape[-1] if padding == "same" else wav.shape[-1] - 64
    assert (back[:, :n] - wav[:, :n]).abs().max() < 1e-5


def _spectrum(wav, n_fft=256, hop=64):
    spec = STFTFrames(n_fft, hop)(wav.squeeze(1))
    return torch.log(spec.abs().clamp_min(1e-12)), torch.angle(spec)


def test_every_term_is_zero_for_the_true_spectrum():
    torch.manual_seed(0)
    wav = 0.3 * torch.randn(2, 1, 32 * 64)
    log_amp, phase = _spectrum(wav)
    out = FourierLosses(256, 64)(log_amp, phase + 2 * PI, wav, wav)  # phase off by a whole turn: no loss
    assert set(out) == {"amplitude", "amplitude_gradients", "phase_ip", "phase_gd", "phase_iaf", "consistency",
                        "real_imag"}
    for k, v in out.items():
        assert v.item() < 1e-6, k


def test_constant_phase_offset_costs_instantaneous_phase_only():
    torch.manual_seed(0)
    wav = 0.3 * torch.randn(1, 1, 32 * 64)
    log_amp, phase = _spectrum(wav)
    loss = FourierLosses(256, 64)
    ip, gd, iaf = loss.phase_terms(phase + 0.5, phase)
    assert ip.item() == pytest.approx(0.5, abs=1e-5)
    assert gd.item() < 1e-5 and iaf.item() < 1e-5
    # a phase that grows by 0.3 rad per frame: the angular frequency is off by 0.3, the group delay not at all
    drift = 0.3 * torch.arange(phase.shape[-1]).float()
    ip, gd, iaf = loss.phase_terms(phase + drift, phase)
    assert iaf.item() == pytest.approx(0.3, abs=1e-5)
    assert gd.item() < 1e-5
    want_ip = anti_wrap(drift).mean().item()
    assert ip.item() == pytest.approx(want_ip, abs=1e-5)


def test_amplitude_weighting_ignores_the_phase_of_empty_bins():
    real_phase = torch.zeros(1, 4, 3)
    phase = torch.zeros(1, 4, 3)
    phase[:, 3] = 2.0  # wrong phase in bin 3 only
    loss = FourierLosses(256, 64)
    weight = torch.ones(1, 4, 3)
    ip_all, _, _ = loss.phase_terms(phase, real_phase, weight)
    assert ip_all.item() == pytest.approx(2.0 / 4, abs=1e-6)
    weight[:, 3] = 0.0  # bin 3 is silent in the reference
    ip, gd, iaf = loss.phase_terms(phase, real_phase, weight)
    assert ip.item() == 0.0 and gd.item() == 0.0 and iaf.item() == 0.0


def test_amplitude_loss_floors_both_sides():
    loss = FourierLosses(256, 64, amplitude_floor=1e-3)
    wav = torch.zeros(1, 1, 8 * 64)  # silence: reference log-amplitude is the floor everywhere
    log_amp = torch.full((1, 129, 8), math.log(1e-5))  # below the floor: no loss
    phase = torch.zeros(1, 129, 8)
    out = loss(log_amp, phase, wav, wav)
    assert out["amplitude"].item() == pytest.approx(0.0, abs=1e-10)
    log_amp = torch.full((1, 129, 8), math.log(1e-2))  # 10x the floor: (log 10)^2 per bin
    assert loss(log_amp, phase, wav, wav)["amplitude"].item() == pytest.approx(math.log(10) ** 2, rel=1e-5)


def test_consistency_penalises_a_spectrum_no_signal_has():
    torch.manual_seed(0)
    wav = 0.3 * torch.randn(1, 1, 32 * 64)
    log_amp, phase = _spectrum(wav)
    loss = FourierLosses(256, 64)
    noisy_phase = phase + torch.randn_like(phase)
    fake = InverseSTFT(256, 64)(torch.polar(torch.exp(log_amp), noisy_phase)).unsqueeze(1)
    out = loss(log_amp, noisy_phase, fake, wav)
    assert out["amplitude"].item() < 1e-6  # the predicted amplitude is right ...
    assert out["consistency"].item() > 1e-3  # ... but re-analysing its audio does not give it back
    assert out["real_imag"].item() > 1e-2


def test_fourier_losses_need_a_fourier_generator():
    from vocoder.training.lightning_module import GANVocoder
    from vocoder.training.recipes import resolve_recipe

    recipe = resolve_recipe({"generator": {"preset": "hifigan_v2"}, "discriminators": [{"name": "mpd"}],
                             "losses": {"amplitude": 1.0}})
    with pytest.raises(ValueError, match="Fourier-head generator"):
        GANVocoder(recipe)


def test_unknown_phase_weighting_is_refused():
    with pytest.raises(ValueError, match="phase_weighting"):
        FourierLosses(256, 64, phase_weighting="loud")


def test_phase_weights_follow_the_reference_amplitude():
    amp = torch.tensor([[[4.0, 1.0], [0.04, 0.0]]])  # [B=1, F=2, T=2], loudest bin 4
    assert FourierLosses(256, 64).phase_weight(amp) is None
    linear = FourierLosses(256, 64, phase_weighting="amplitude").phase_weight(amp)
    torch.testing.assert_close(linear, torch.tensor([[[1.0, 0.25], [0.01, 0.0]]]))
    root = FourierLosses(256, 64, phase_weighting="sqrt_amplitude").phase_weight(amp)
    torch.testing.assert_close(root, torch.tensor([[[1.0, 0.5], [0.1, 0.0]]]))  # -40 dB keeps 1/10, silence 0


def test_recipe_refuses_an_unknown_phase_weighting():
    from vocoder.training.recipes import resolve_recipe

    with pytest.raises(ValueError, match="phase_weighting"):
        resolve_recipe({"generator": {"preset": "vocos_22khz_80band"}, "discriminators": [{"name": "mrd"}],
                        "losses": {"phase_weighting": "loud"}})
    r = resolve_recipe({"generator": {"preset": "vocos_22khz_80band"}, "discriminators": [{"name": "mrd"}],
                        "losses": {"phase_weighting": "sqrt_amplitude"}})
    assert r["losses"]["phase_weighting"] == "sqrt_amplitude"


def test_retrieved_phase_loss_is_zero_for_a_consistent_spectrum_and_moves_only_the_phase():
    torch.manual_seed(0)
    t = torch.arange(48 * 64) / 8000
    wav = (0.3 * torch.sin(2 * PI * 440 * t) + 0.05 * torch.randn(t.shape))[None, None]
    log_amp, phase = _spectrum(wav)
    loss = FourierLosses(256, 64, retrieval_iterations=4)
    out = loss(log_amp, phase, wav, wav)
    assert out["phase_retrieved"].item() < 1e-3  # the true spectrum is a fixed point of the retrieval
    assert "phase_retrieved" not in FourierLosses(256, 64)(log_amp, phase, wav, wav)  # off by default
    # a noisy phase: the retrieval moves it, and the gradient reaches the phase but not the amplitude
    log_amp = log_amp.clone().requires_grad_(True)
    noisy = (phase + torch.randn_like(phase)).requires_grad_(True)
    term = loss.retrieved_phase_loss(log_amp, noisy)
    assert term.item() > 0.1
    term.backward()
    assert noisy.grad.abs().sum() > 0 and log_amp.grad is None
    with pytest.raises(ValueError, match="retrieval_iterations"):
        FourierLosses(256, 64, retrieval_iterations=-1)


def test_the_retrieved_phase_loss_trains_through_the_recipe():
    from vocoder.training.lightning_module import GANVocoder
    from vocoder.training.recipes import resolve_recipe

    base = {"generator": {"preset": "vocos_22khz_80band_small"}, "discriminators": [{"name": "mrd"}]}
    module = GANVocoder(resolve_recipe({**base, "losses": {"phase_retrieved": 10.0, "phase_retrieval_iterations": 3}}))
    assert module.fourier_loss.retrieval_iterations == 3
    assert GANVocoder(resolve_recipe(base)).fourier_loss is None  # no Fourier term weighted: no loss built
    with pytest.raises(ValueError, match="phase_retrieval_iterations"):
        resolve_recipe({**base, "losses": {"phase_retrieval_iterations": 0}})


def test_amplitude_gradient_loss_sees_derivatives_weighted_by_loudness():
    torch.manual_seed(0)
    t = torch.arange(32 * 64) / 8000
    wav = (0.5 * torch.sin(2 * math.pi * 440 * t) + 1e-3 * torch.randn_like(t)).reshape(1, 1, -1)
    log_amp, _ = _spectrum(wav)
    real_amp = torch.exp(log_amp)
    term = FourierLosses.amplitude_gradient_loss
    assert term(log_amp, log_amp, real_amp).item() == 0
    assert term(log_amp + 0.7, log_amp, real_amp).item() < 1e-6   # a gain changes no derivative
    loud_bin = int(real_amp[0].mean(-1).argmax())
    ripple = torch.zeros_like(log_amp)
    ripple[:, :, ::2] = 0.5                                        # flicker along time ...
    at_loud, at_quiet = ripple.clone(), ripple.clone()
    at_loud[:, [b for b in range(log_amp.shape[1]) if abs(b - loud_bin) > 2]] = 0   # ... on the partial
    at_quiet[:, [b for b in range(log_amp.shape[1]) if abs(b - loud_bin) <= 10]] = 0  # ... in the noise
    loud = term(log_amp + at_loud, log_amp, real_amp).item()
    quiet = term(log_amp + at_quiet, log_amp, real_amp).item()
    assert loud > 10 * quiet > 0                                   # PGHI integrates from the loud bins
    pred = (log_amp + at_loud).requires_grad_(True)
    term(pred, log_amp, real_amp).backward()
    assert pred.grad.abs().sum() > 0


def test_the_amplitude_gradient_loss_trains_through_the_recipe():
    from vocoder.training.lightning_module import GANVocoder
    from vocoder.training.recipes import resolve_recipe

    base = {"generator": {"preset": "vocos_22khz_80band_small"}, "discriminators": [{"name": "mrd"}]}
    module = GANVocoder(resolve_recipe({**base, "losses": {"amplitude_gradients": 5.0}}))
    assert module.fourier_loss is not None and module.w["amplitude_gradients"] == 5.0
