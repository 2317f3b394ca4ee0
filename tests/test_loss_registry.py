"""The loss registry (vocoder.losses.registry): every registered loss is reachable from a recipe and documented,
the recipe's ``losses`` section is the declarations', and the training step built from them computes exactly what
the loss classes compute when called directly (a plain and a Fourier-head generator, fixed seeds)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

import vocoder.losses as vl
from vocoder.losses import registry
from vocoder.training.recipes import DEFAULTS, apply_override, load_recipe, resolve_recipe

ROOT = Path(__file__).resolve().parents[1]
TRAINING_DOC = ROOT / "docs" / "training.md"

PLAIN = {"generator": {"preset": "hifigan_v2", "config": {"upsample_initial_channel": 32,
                                                          "resblock_kernel_sizes": [3],
                                                          "resblock_dilation_sizes": [[1, 3, 5]]}},
         "discriminators": [{"name": "mpd", "args": {"channel_mult": 0.0625, "periods": [2, 3]}}]}
FOURIER = {"generator": {"preset": "vocos_22khz_80band", "config": {"dim": 16, "intermediate_dim": 32,
                                                                    "num_layers": 2}},
           "discriminators": [{"name": "mrd", "args": {"channel_mult": 0.0625}}]}
# small arguments so that every loss runs on 2048 samples in a blink
SMALL_ARGS = {"multiscale_mel_args": {"n_mels": [5, 10], "window_lengths": [32, 64]},
              "stft_args": {"fft_sizes": [512, 256], "hop_sizes": [64, 32], "win_lengths": [400, 200]},
              "mr_real_imag_args": {"fft_sizes": [256, 128], "hop_sizes": [32, 16], "win_lengths": [256, 100]},
              "phase_retrieval_iterations": 2}


def _module(base, losses, seed=0):
    from vocoder.training.lightning_module import GANVocoder

    torch.manual_seed(seed)
    return GANVocoder(resolve_recipe({**base, "losses": {**SMALL_ARGS, **losses}}))


def _batch(module, seed=1):
    """(spectrum or None, fake, real): the generator's output for the mel of a fixed random clip."""
    g = torch.Generator().manual_seed(seed)
    real = 0.3 * torch.randn(2, 1, 2048, generator=g)
    mel = vl.MelL1Loss(module.mel_config).mel(real.squeeze(1))
    if module.needs_spectrum:
        spectrum = module.generator.spectrum(mel)
        fake = module.generator.synthesize(*spectrum)
    else:
        spectrum, fake = None, module.generator(mel)
    fake, real = module._match(fake, real)
    return spectrum, fake, real


# ------------------------------------------------------------------ the recipe's losses section is the declarations'


def test_the_losses_section_is_the_declarations():
    assert DEFAULTS["losses"] == vl.loss_defaults()
    keys = [k.name for s in vl.loss_specs() for k in s.keys]
    assert list(DEFAULTS["losses"]) == keys and len(set(keys)) == len(keys)
    # the keys recipes and saved runs have always had, in their order, then the ones added since
    assert keys[:22] == ["kind", "adv", "disc", "fm", "mel", "mel_fmax", "multiscale_mel", "multiscale_mel_args",
                         "stft_sc", "stft_mag", "stft_args", "amplitude", "amplitude_floor", "amplitude_gradients",
                         "phase_ip", "phase_gd", "phase_iaf", "phase_weighting", "consistency", "real_imag",
                         "phase_retrieved", "phase_retrieval_iterations"]
    assert vl.reconstruction_terms()[:4] == ("mel", "multiscale_mel", "stft_sc", "stft_mag")
    assert set(vl.terms(("spectrum",))) == {"amplitude", "amplitude_gradients", "phase_ip", "phase_gd", "phase_iaf",
                                            "consistency", "real_imag", "phase_retrieved"}


@pytest.mark.parametrize("spec", vl.loss_specs(), ids=lambda s: s.name)
def test_every_loss_is_reachable_from_a_recipe_and_trains(spec):
    """Each of its keys is a recipe key a dotted override sets; each of its terms, weighted in a recipe, is in the
    training step, which computes a finite value for it."""
    r = resolve_recipe({**PLAIN})
    for key in spec.keys:
        value = key.default if not isinstance(key, registry.Weight) else 3.0
        apply_override(r, f"losses.{key.name}={value if value is not None else 'null'}")
    resolve_recipe(r)  # valid as a whole
    base = FOURIER if spec.inputs == "spectrum" else PLAIN
    for term in spec.terms:
        module = _module(base, {term: 3.0})
        assert module.w[term] == 3.0 and term in module._terms[spec.name][1]
        spectrum, fake, real = _batch(module)
        if spec.inputs in ("audio", "spectrum"):
            value = module.reconstruction_losses(fake, real, spectrum)[term]
        elif spec.inputs == "judgement":
            value = module.adversarial_losses(module.discriminator(real), module.discriminator(fake))[term]
        else:
            logits, _ = module.discriminator(torch.cat([real, fake.detach()]))
            value = module.discriminator_loss([x[:2] for x in logits], [x[2:] for x in logits]) / 3.0
        assert torch.isfinite(value) and value.dim() == 0, (term, value)


def _documented_names(text: str) -> set:
    """The backticked names in the first two columns (loss, recipe keys) of docs/training.md's table of losses."""
    section = text.split("\n## Losses\n", 1)[1].split("\n## ", 1)[0]
    return {name for row in section.splitlines() if row.startswith("| `")
            for name in re.findall(r"`([a-z_]+)`", "|".join(row.split("|")[1:3]))}


@pytest.mark.parametrize("spec", vl.loss_specs(), ids=lambda s: s.name)
def test_every_loss_is_documented(spec):
    """Declared with a line of documentation for the loss and each key, and listed, name and every key, in the table
    of losses in docs/training.md."""
    assert spec.doc.strip() and all(k.doc.strip() for k in spec.keys)
    listed = _documented_names(TRAINING_DOC.read_text())
    missing = [n for n in (spec.name, *(k.name for k in spec.keys)) if n not in listed]
    assert not missing, f"docs/training.md's table of losses lacks {missing} (loss {spec.name!r})"


# ------------------------------------------------------------------ old recipes and checks


SAVED_RUN = """name: old_run
mel: {sample_rate: 22050, n_fft: 1024, hop_length: 256, win_length: 1024, n_mels: 80, fmin: 0, fmax: 8000}
generator: {name: vocos, preset: vocos_22khz_80band, config: {dim: 16, intermediate_dim: 32, num_layers: 2}}
discriminators:
- {name: mrd}
losses:
  kind: hinge
  adv: 1.0
  disc: 1.0
  fm: 2.0
  mel: 1e-3
  mel_fmax: null
  multiscale_mel: 0.0
  multiscale_mel_args: {}
  stft_sc: 15.0
  stft_mag: 15.0
  stft_args: {fft_sizes: [512, 1024], hop_sizes: [128, 256], win_lengths: [512, 1024]}
  amplitude: 45.0
  amplitude_floor: 0.001
  amplitude_gradients: 90
  phase_ip: 0.0
  phase_gd: 100.0
  phase_iaf: 100.0
  phase_weighting: amplitude
  consistency: 20.0
  real_imag: 0.0
  phase_retrieved: 0.0
  phase_retrieval_iterations: 8
"""


def test_a_saved_run_recipe_with_flat_keys_loads_and_types(tmp_path):
    """A recipe.yaml as runs saved it before the registry: flat keys, ``1e-3`` a string to YAML 1.1, no keys of
    losses added since; dotted overrides of its keys work as before."""
    from vocoder.training.settings import TrainingRecipe

    path = tmp_path / "recipe.yaml"
    path.write_text(SAVED_RUN)
    r = load_recipe(path, ["losses.amplitude_gradients=45", "losses.stft_args.window=hann_window"])
    t = TrainingRecipe.from_dict(r)
    assert t.losses.amplitude_gradients == 45.0 and isinstance(t.losses["amplitude_gradients"], float)
    assert t.losses.mel == 1e-3 and t.losses.kind == "hinge" and t.losses.phase_weighting == "amplitude"
    assert t.losses.stft_args == {"fft_sizes": [512, 1024], "hop_sizes": [128, 256], "win_lengths": [512, 1024],
                                  "window": "hann_window"}
    assert t.losses.mr_real_imag == 0.0 and t.losses.phase_retrieval_iterations == 8
    # Lightning's hyper-parameters of a checkpoint from before a loss existed: its keys take their defaults
    old = {k: v for k, v in r["losses"].items() if k not in ("mr_real_imag", "mr_real_imag_args")}
    settings = vl.LossSettings(old)
    assert settings.mr_real_imag == 0.0 and settings.mr_real_imag_args == {}
    with pytest.raises(AttributeError, match="no setting 'nope'"):
        settings.nope


@pytest.mark.parametrize("losses, message", [
    ({"mell": 1.0}, r"unknown recipe key losses\.'mell'; expected one of \[.*'mel'.*'mr_real_imag'"),
    ({"mel": -1}, r"losses\.mel \(mel loss\) must be a finite number >= 0"),
    ({"fm": "two"}, r"losses\.fm"),
    ({"kind": "wgan"}, r"losses\.kind .*'lsgan', 'hinge'"),
    ({"phase_weighting": "loud"}, r"losses\.phase_weighting"),
    ({"phase_retrieval_iterations": 0}, r"losses\.phase_retrieval_iterations .*>= 1"),
    ({"phase_retrieval_iterations": 1.5}, r"losses\.phase_retrieval_iterations .*integer"),
    ({"amplitude_floor": 0}, r"losses\.amplitude_floor .*> 0"),
    ({"stft_args": [512]}, r"losses\.stft_args .*mapping"),
])
def test_bad_loss_settings_are_refused_by_name(losses, message):
    with pytest.raises(ValueError, match=message):
        resolve_recipe({**PLAIN, "losses": losses})


def test_a_key_declared_twice_is_refused():
    spec = registry.LossSpec("copy_of_mel", "audio", (registry.Weight("mel", 1.0, "again"),), lambda ctx: None, "x")
    with pytest.raises(ValueError, match="losses.mel, which loss 'mel' already declares"):
        registry.register_loss(spec)
    with pytest.raises(ValueError, match="inputs must be one of"):
        registry.LossSpec("odd", "video", (registry.Weight("odd", 1.0, "x"),), lambda ctx: None, "x")
    assert "copy_of_mel" not in {s.name for s in vl.loss_specs()}


def test_a_loss_module_registers_itself_without_being_named_by_the_package():
    """Adding a loss is its module and its test: vocoder/losses/__init__.py imports every module of the package, so
    FA-GAN's loss (real_imag.py), which it does not name, is registered and in the recipe's keys."""
    init = (ROOT / "vocoder" / "losses" / "__init__.py").read_text()
    assert "real_imag import" not in init and "MultiResolutionRealImagLoss" not in init
    assert vl.get_loss("mr_real_imag").terms == ("mr_real_imag",)
    assert {"mr_real_imag", "mr_real_imag_args"} <= set(DEFAULTS["losses"])
    modules = {p.stem for p in (ROOT / "vocoder" / "losses").glob("*.py")} - {"__init__", "registry"}
    import inspect
    declaring = {inspect.getmodule(s.build).__name__.rsplit(".", 1)[1] for s in vl.loss_specs()}
    assert modules == declaring  # every module declares a loss, every loss comes from a module here


def test_the_warm_up_needs_a_reconstruction_term_and_the_error_names_them_all():
    from vocoder.training.lightning_module import GANVocoder

    r = resolve_recipe({**PLAIN, "losses": {"mel": 0}, "optim": {"discriminator_start_step": 10}})
    with pytest.raises(ValueError, match="need a reconstruction loss") as e:
        GANVocoder(r)
    assert all(t in str(e.value) for t in vl.reconstruction_terms())


# ------------------------------------------------------------------ the registry-built step = the loss classes


def _direct_plain(module, fake, real):
    """What the step computed before the registry: each loss class called directly."""
    cfg = dataclasses.replace(module.mel_config, fmax=None)
    sc, mag = vl.MultiResolutionSTFTLoss(**SMALL_ARGS["stft_args"])(fake, real)
    return {"mel": vl.MelL1Loss(cfg)(fake, real),
            "multiscale_mel": vl.MultiScaleMelLoss(module.mel_config.sample_rate,
                                                   **SMALL_ARGS["multiscale_mel_args"])(fake, real),
            "stft_sc": sc, "stft_mag": mag}


def _direct_fourier(module, spectrum, fake, real, settings):
    gc = module.generator.config
    out = vl.FourierLosses(gc.n_fft, gc.hop_length, gc.padding, settings["amplitude_floor"],
                           settings["phase_weighting"], retrieval_iterations=2)(*spectrum, fake, real)
    return {k: v for k, v in out.items() if settings.get(k, 0) > 0}


def _direct_adversarial(module, real, fake, kind):
    real_logits, real_fmaps = module.discriminator(real)
    fake_logits, fake_fmaps = module.discriminator(fake)
    return {"adv": vl.generator_adversarial_loss(fake_logits, kind=kind)[0],
            "fm": vl.feature_matching_loss(real_fmaps, fake_fmaps)}


@pytest.mark.parametrize("which", ["plain", "fourier"])
def test_the_step_computes_exactly_what_the_loss_classes_compute(which):
    if which == "plain":
        weights = {"mel": 45.0, "multiscale_mel": 15.0, "stft_sc": 2.0, "stft_mag": 3.0}
        module = _module(PLAIN, weights)
    else:
        weights = {"kind": "hinge", "mel": 45.0, "stft_sc": 15.0, "stft_mag": 15.0, "amplitude": 45.0,
                   "amplitude_floor": 1e-3, "amplitude_gradients": 90.0, "phase_ip": 1.0, "phase_gd": 100.0,
                   "phase_iaf": 100.0, "phase_weighting": "amplitude", "consistency": 20.0, "real_imag": 3.0,
                   "phase_retrieved": 2.0}
        module = _module(FOURIER, weights)
    spectrum, fake, real = _batch(module)
    kind = weights.get("kind", "lsgan")

    got = module.reconstruction_losses(fake, real, spectrum)
    expect = _direct_plain(module, fake, real)
    expect = {k: v for k, v in expect.items() if weights.get(k, 0) > 0}
    if spectrum is not None:
        expect.update(_direct_fourier(module, spectrum, fake, real, weights))
    got.update(module.adversarial_losses(module.discriminator(real), module.discriminator(fake)))
    expect.update(_direct_adversarial(module, real, fake, kind))
    assert list(got) == list(expect)  # the same terms, summed in the same order
    assert all(torch.equal(got[k], expect[k]) for k in expect), {k: (got[k], expect[k]) for k in expect}

    # the generator's loss: the weighted sum in that order; the discriminators': disc * adv_D
    total = torch.zeros(())
    for k, v in expect.items():
        total = total + module.w[k] * v
    assert torch.equal(module._weighted_sum(got), total)
    logits, _ = module.discriminator(torch.cat([real, fake.detach()]))
    d = module.discriminator_loss([x[:2] for x in logits], [x[2:] for x in logits])
    ref = vl.discriminator_adversarial_loss([x[:2] for x in logits], [x[2:] for x in logits], kind=kind)[0]
    assert torch.equal(d, module.w["disc"] * ref)


def test_the_fourier_loss_frames_as_the_generator_does_with_the_mels_hop():
    module = _module(FOURIER, {"amplitude": 1.0})
    frames = module.fourier_loss.stft
    gc = module.generator.config
    assert (frames.n_fft, frames.hop_length, frames.padding) == (gc.n_fft, module.mel_config.hop_length, gc.padding)
    assert _module(FOURIER, {}).fourier_loss is None
    assert not [k for k in module.state_dict() if not k.startswith(("generator.", "discriminator."))]
