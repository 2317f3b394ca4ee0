"""GANVocoder training: GAN-step bookkeeping, exact resume, atomic checkpoints, SIGTERM, DDP, export."""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from training_helpers import RECIPES_DIR, make_audio_dir, one_thread, tiny_overrides  # noqa: F401
from vocoder.training.recipes import lightning_max_steps, load_recipe

RECIPE = RECIPES_DIR / "hifigan_v2.yaml"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    return make_audio_dir(tmp_path_factory.mktemp("audio"))


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def tiny(*extra, path=RECIPE):
    return load_recipe(path, tiny_overrides(path) + list(extra))


def run_train(recipe, audio_dir, run_dir, resume=None, callbacks=()):
    from vocoder.training.runner import train

    return train(recipe, str(audio_dir), run_dir=run_dir, resume=resume, progress_bar=False,
                 extra_callbacks=callbacks)


def _cli_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["VOCODER_KERNELS"] = "0"
    return env


# ------------------------------------------------------------------------------------------------ GAN steps


def test_warmup_trains_generator_only_and_steps_map_to_lightning(audio_dir, tmp_path):
    """discriminator_start_step=2: D is untouched for 2 steps; Lightning's global_step = 3 + 1 after 3 steps."""
    from vocoder.training.callbacks import load_training_checkpoint

    r = tiny("optim.discriminator_start_step=2", "trainer.max_steps=2")
    res = run_train(r, audio_dir, tmp_path / "run")
    ck2 = load_training_checkpoint(res.last_checkpoint)
    from vocoder.training.lightning_module import GANVocoder

    import pytorch_lightning as pl

    pl.seed_everything(int(r["trainer"]["seed"]), verbose=False)
    fresh = GANVocoder(r)
    d_keys = [k for k in ck2["state_dict"] if k.startswith("discriminator.")]
    fresh_sd = fresh.state_dict()
    assert d_keys and all(torch.equal(ck2["state_dict"][k], fresh_sd[k]) for k in d_keys), "D changed in warm-up"
    assert any(not torch.equal(ck2["state_dict"][k], fresh_sd[k]) for k in ck2["state_dict"] if k.startswith("generator."))
    assert ck2["gan_step"] == 2 and ck2["global_step"] == 2  # generator steps only

    r3 = tiny("optim.discriminator_start_step=2", "trainer.max_steps=3")
    res3 = run_train(r3, audio_dir, tmp_path / "run", resume="auto")
    ck3 = load_training_checkpoint(res3.last_checkpoint)
    assert ck3["gan_step"] == 3 and ck3["global_step"] == lightning_max_steps(3, 2) == 4
    assert any(not torch.equal(ck3["state_dict"][k], ck2["state_dict"][k]) for k in d_keys), "D did not train"


def test_discriminators_can_learn_before_the_generator_hears_them(audio_dir, tmp_path):
    """generator_adv_start_step=2 with discriminator_start_step=0: for 2 steps D trains while G's update is the
    generator-only one (same weights as a run with discriminator_start_step=2); without it G's update differs."""
    from vocoder.training.callbacks import load_training_checkpoint

    def run(name, *overrides):
        res = run_train(tiny(*overrides, "trainer.max_steps=2"), audio_dir, tmp_path / name)
        return load_training_checkpoint(res.last_checkpoint)["state_dict"]

    d_first = run("d_first", "optim.discriminator_start_step=0", "optim.generator_adv_start_step=2")
    g_only = run("g_only", "optim.discriminator_start_step=2")
    joint = run("joint", "optim.discriminator_start_step=0")
    g_keys = [k for k in d_first if k.startswith("generator.")]
    d_keys = [k for k in d_first if k.startswith("discriminator.")]
    assert all(torch.equal(d_first[k], g_only[k]) for k in g_keys)
    assert any(not torch.equal(d_first[k], g_only[k]) for k in d_keys), "D did not train"
    assert any(not torch.equal(joint[k], g_only[k]) for k in g_keys)
    with pytest.raises(ValueError, match="generator_adv_start_step must be null or an int >= discriminator_start"):
        tiny("optim.discriminator_start_step=5", "optim.generator_adv_start_step=3")


def test_lr_decays_every_n_gan_steps(audio_dir, tmp_path):
    from vocoder.training.callbacks import load_training_checkpoint

    r = tiny("optim.lr=1e-3", "optim.lr_decay=0.5", "optim.lr_decay_every=2", "trainer.max_steps=5")
    res = run_train(r, audio_dir, tmp_path / "run")
    ck = load_training_checkpoint(res.last_checkpoint)
    for opt in ck["optimizer_states"]:
        assert opt["param_groups"][0]["lr"] == pytest.approx(1e-3 * 0.5 ** (5 // 2))


# ------------------------------------------------------------------------------------------------ resume


def test_resume_continues_exactly(audio_dir, tmp_path):
    """3 steps in one go == 2 steps, stop, resume, 1 more step: same gan_step, optimiser state and weights."""
    from vocoder.training.callbacks import load_training_checkpoint

    full = run_train(tiny("trainer.max_steps=3"), audio_dir, tmp_path / "full")
    part = run_train(tiny("trainer.max_steps=2"), audio_dir, tmp_path / "part")
    ck_part = load_training_checkpoint(part.last_checkpoint)
    assert ck_part["gan_step"] == 2

    # Resuming restores the optimiser state as saved (checked at the first resumed batch).
    seen = {}

    import pytorch_lightning as pl

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if not seen:
                seen["gan_step"] = module.gan_step
                # deep copies: state_dict() shares the live tensors, which the step below updates in place
                seen["opt"] = [copy.deepcopy(o.state_dict()) for o in trainer.optimizers]
                seen["lr_sched"] = [copy.deepcopy(s.scheduler.state_dict()) for s in trainer.lr_scheduler_configs]

    resumed = run_train(tiny("trainer.max_steps=3"), audio_dir, tmp_path / "part", resume="auto", callbacks=[Probe()])
    assert seen["gan_step"] == 2
    for live, saved in zip(seen["opt"], ck_part["optimizer_states"]):
        assert live["state"].keys() == saved["state"].keys()
        for pid in saved["state"]:
            for name, t in saved["state"][pid].items():
                assert torch.equal(torch.as_tensor(live["state"][pid][name]), torch.as_tensor(t)), (pid, name)
    assert seen["lr_sched"] == ck_part["lr_schedulers"]

    ck_full = load_training_checkpoint(full.last_checkpoint)
    ck_res = load_training_checkpoint(resumed.last_checkpoint)
    assert ck_res["gan_step"] == ck_full["gan_step"] == 3
    assert ck_res["global_step"] == ck_full["global_step"] == 6
    for k, v in ck_full["state_dict"].items():
        torch.testing.assert_close(ck_res["state_dict"][k], v, rtol=0, atol=0, msg=f"weights differ at {k}")
    # CPU time is carried across the resume: the resumed run's count starts from the first process's.
    assert 0 < ck_part["cpu_seconds"] < ck_res["cpu_seconds"]
    from vocoder import Vocoder

    assert Vocoder.from_pretrained(str(resumed.last_checkpoint)).meta["cpu_hours"] == round(
        ck_res["cpu_seconds"] / 3600.0, 3)


def test_resume_takes_the_recipes_new_lr_schedule(audio_dir, tmp_path):
    """`--resume auto optim.lr=...`: the restored optimiser moves to the new recipe's schedule at the resumed step
    (the saved scheduler state would otherwise keep the old one), and decays from there."""
    from vocoder.training.callbacks import load_training_checkpoint

    run_train(tiny("optim.lr=1e-3", "optim.lr_decay=0.5", "optim.lr_decay_every=2", "trainer.max_steps=2"),
              audio_dir, tmp_path / "run")
    import pytorch_lightning as pl

    seen = []

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append([g["lr"] for o in trainer.optimizers for g in o.param_groups])

    res = run_train(tiny("optim.lr=4e-4", "optim.lr_decay=0.5", "optim.lr_decay_every=2", "trainer.max_steps=5"),
                    audio_dir, tmp_path / "run", resume="auto", callbacks=[Probe()])
    # steps 2, 3, 4 ran at 4e-4 * 0.5 ** (step // 2); the LR after step 5 is 4e-4 * 0.5 ** 2
    assert [lrs[0] for lrs in seen] == pytest.approx([4e-4 * 0.5, 4e-4 * 0.5, 4e-4 * 0.25])
    assert all(len(set(lrs)) == 1 for lrs in seen)  # generator and discriminator alike
    ck = load_training_checkpoint(res.last_checkpoint)
    for opt in ck["optimizer_states"]:
        assert opt["param_groups"][0]["lr"] == pytest.approx(4e-4 * 0.5 ** (5 // 2))


# ------------------------------------------------------------------------------------------------ checkpoint IO


def test_atomic_checkpoint_keeps_previous_file(tmp_path, monkeypatch):
    from vocoder.training.callbacks import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"gan_step": 1, "w": torch.ones(3)}, path)

    real_save = torch.save

    def broken_save(obj, f, *a, **k):
        real_save({"partial": True}, f)  # some bytes reach the temp file, then the write dies
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"gan_step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    back = torch.load(path, weights_only=True)
    assert back["gan_step"] == 1 and torch.equal(back["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left behind


def test_periodic_checkpoints_keep_last_k(audio_dir, tmp_path):
    r = tiny("trainer.max_steps=4", "trainer.checkpoint_every_n_steps=1", "trainer.keep_last_checkpoints=2",
             "trainer.export_every_n_steps=2")
    res = run_train(r, audio_dir, tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["last.ckpt", "last.pt", "step_00000002.pt", "step_00000003.ckpt", "step_00000004.ckpt",
                     "step_00000004.pt"]
    assert torch.load(res.last_checkpoint, weights_only=True)["gan_step"] == 4


# ------------------------------------------------------------------------------------------------ export


def test_export_loads_in_vocoder(audio_dir, tmp_path):
    from vocoder.cli.main import main
    from vocoder.training.callbacks import load_training_checkpoint

    res = run_train(tiny("trainer.max_steps=1"), audio_dir, tmp_path / "run")
    out = tmp_path / "model.pt"
    assert main(["export", str(res.last_checkpoint), str(out)]) == 0
    ck = torch.load(out, map_location="cpu", weights_only=True)
    assert ck["format"] == "vocoder" and ck["meta"]["gan_step"] == 1 and ck["meta"]["recipe"] == "hifigan_v2"
    assert not any(k.endswith(("weight_g", "weight_v")) or "parametrizations" in k for k in ck["state_dict"])

    from vocoder import Vocoder
    from vocoder.training.lightning_module import GANVocoder

    voc = Vocoder.from_pretrained(str(out))
    module = GANVocoder(tiny())
    state = load_training_checkpoint(res.last_checkpoint)["state_dict"]
    module.load_state_dict(state)
    mel = torch.randn(1, 80, 12)
    with torch.no_grad():
        want = module.generator.eval()(mel)
        got = voc.generator(mel) if hasattr(voc, "generator") else voc(mel)
    torch.testing.assert_close(got.reshape(-1), want.reshape(-1), rtol=1e-4, atol=1e-5)

    # The Lightning checkpoint itself loads as a model (no export step): same audio, the run's step in meta.
    direct = Vocoder.from_pretrained(str(res.last_checkpoint))
    assert direct.meta["gan_step"] == 1 and direct.meta["recipe"] == "hifigan_v2"
    torch.testing.assert_close(direct(mel).reshape(-1), want.reshape(-1), rtol=1e-4, atol=1e-5)
    # ...and a .ckpt without generator weights is refused by name.
    bad = load_training_checkpoint(res.last_checkpoint)
    bad["state_dict"] = {k: v for k, v in bad["state_dict"].items() if not k.startswith("generator.")}
    torch.save(bad, tmp_path / "no_generator.ckpt")
    with pytest.raises(ValueError, match="no 'generator.\\*' weights"):
        Vocoder.from_pretrained(str(tmp_path / "no_generator.ckpt"))

    assert main(["export", str(tmp_path / "nope.ckpt"), str(out)]) == 2  # clear error, no traceback


# ------------------------------------------------------------------------------------------------ CLI processes


def _cli_args(run_dir, audio_dir, *extra):
    return [sys.executable, "-m", "vocoder.cli.main", "-v", "train", "--config", str(RECIPE), "--data",
            str(audio_dir), "--out", str(run_dir), *tiny_overrides(RECIPE), *extra]


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [False, True], ids=["main-process", "process-group"])
def test_sigterm_saves_then_resumes(audio_dir, tmp_path, to_group):
    """SIGTERM to the trainer alone, or to its whole process group with a DataLoader worker in it (what SLURM's
    preemption and `timeout` do): either way last.ckpt is written and the run resumes from it."""
    run_dir = tmp_path / "run"
    extra = ["data.num_workers=1"] if to_group else []
    proc = subprocess.Popen(_cli_args(run_dir, audio_dir, "trainer.max_steps=100000", "trainer.log_every_n_steps=1",
                                      *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_cli_env(), cwd=tmp_path,
                            start_new_session=to_group)
    lines = []
    deadline = time.time() + 120
    try:
        for line in proc.stdout:  # wait until it is training
            lines.append(line)
            if "step 2/100000" in line or time.time() > deadline:
                break
        assert any("step 2/100000" in l for l in lines), "".join(lines[-30:])
        if to_group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(lines) + rest
    assert proc.returncode == 0, log[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file(), log[-3000:]
    step = torch.load(last, weights_only=True)["gan_step"]
    assert step >= 2 and "SIGTERM" in log

    # resume (in this process: one interpreter start less) and take one more step
    res = run_train(tiny(f"trainer.max_steps={step + 1}"), audio_dir, run_dir, resume="auto")
    assert res.gan_step == step + 1 and torch.load(last, weights_only=True)["gan_step"] == step + 1


@pytest.mark.slow
def test_ddp_two_cpu_processes(audio_dir, tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(_cli_args(run_dir, audio_dir, "trainer.max_steps=2", "--devices", "2",
                                    "--accelerator", "cpu"),
                          capture_output=True, text=True, env=_cli_env(), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "MEMBER: 2/2" in done.stdout + done.stderr  # Lightning started two ranks
    ck = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck["gan_step"] == 2 and ck["global_step"] == 4
    assert (run_dir / "checkpoints" / "last.pt").is_file()


def test_validation_logs_metrics_audio_and_spectrograms(audio_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_train(tiny("trainer.max_steps=1", "trainer.val_check_interval=1", "trainer.val_log_samples=1"), audio_dir,
              tmp_path / "run")
    ea = EventAccumulator(str(tmp_path / "run" / "logs"), size_guidance={"images": 0, "audio": 0, "scalars": 0})
    ea.Reload()
    tags = ea.Tags()
    assert {"val/mel_l1", "val/mrstft", "train/loss_g", "train/loss_d", "train/mel", "train/fm"} <= set(tags["scalars"])
    assert {"val/0/generated", "val/0/real"} <= set(tags["audio"]) and "val/0/mel" in tags["images"]
    mel_l1 = ea.Scalars("val/mel_l1")[-1].value
    assert 0 < mel_l1 < 20  # an untrained generator's log-mel distance: positive and finite


# ------------------------------------------------------------------------------------------------ fine-tuning


def _spread(generator, seed=0):
    """Random weights of a useful size (the default init is near silent, which would make any comparison easy)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in generator.named_parameters():
            if name.endswith("weight_g"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.4 + 0.2)
            elif name.endswith(("alpha", "beta")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return generator


def _our_checkpoint(path, recipe, fold=True):
    from vocoder.checkpoints import fold_weight_norm, save_checkpoint
    from vocoder.training.settings import TrainingRecipe

    plan = TrainingRecipe.from_dict(recipe)
    gen = plan.build_generator()
    _spread(gen)
    if fold:
        fold_weight_norm(gen)
    save_checkpoint(path, gen.eval(), plan.mel)
    return path


@pytest.mark.parametrize("fold", [True, False])
def test_init_from_our_checkpoint_reproduces_its_forward(tmp_path, fold):
    """generator.init: the training generator keeps weight norm and computes what the checkpoint computes."""
    from vocoder import Vocoder
    from vocoder.training.runner import build_module

    ckpt = _our_checkpoint(tmp_path / "g.pt", tiny(), fold=fold)
    module, resolved = build_module(tiny(f"generator.init={ckpt}"))
    assert any(k.endswith("weight_g") for k in module.generator.state_dict())  # still trainable in g/v form
    ref = Vocoder.from_pretrained(str(ckpt)).generator
    mel = torch.randn(1, 80, 10, generator=torch.Generator().manual_seed(1)) - 3
    fresh, _ = build_module(tiny())
    with torch.no_grad():
        want, got, other = ref(mel), module.generator(mel), fresh.generator(mel)
    diff = (got - want).abs().max().item()
    print(f"\n[init from our .pt, folded={fold}] max abs diff: {diff:.2e} (peak {want.abs().max():.3f})")
    assert want.abs().max() > 0.05 and (other - want).abs().max() > 0.05  # the init changed something audible
    assert diff < 1e-6
    assert resolved["generator"]["init"] == str(ckpt)


def _official_bigvgan_folder(folder):
    """A tiny official BigVGAN-v2 (made by the `bigvgan` package) at 24 kHz / 100 mels, folded like the published
    files, as config.json + bigvgan_generator.pt. Returns (folder, official model)."""
    import json

    bigvgan = pytest.importorskip("bigvgan")
    from bigvgan.env import AttrDict

    h = dict(resblock="1", num_mels=100, upsample_rates=[4, 4, 4, 4], upsample_kernel_sizes=[8, 8, 8, 8],
             upsample_initial_channel=32, resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]],
             activation="snakebeta", snake_logscale=True, use_tanh_at_final=False, use_bias_at_final=False,
             sampling_rate=24000, n_fft=1024, hop_size=256, win_size=1024, fmin=0, fmax=None)
    official = _spread(bigvgan.BigVGAN(AttrDict(dict(h)), use_cuda_kernel=False).eval())
    official.remove_weight_norm()
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(h))
    torch.save({"generator": official.state_dict()}, folder / "bigvgan_generator.pt")
    return folder, official


@pytest.mark.filterwarnings("ignore:.*weight_norm.*deprecated:FutureWarning")
def test_init_from_official_bigvgan_folder_trains(audio_dir, tmp_path, caplog):
    """The README's command: the BigVGAN-v2 recipe with --init-generator on an official folder takes the folder's
    generator config and mel, starts from its weights and trains."""
    import logging

    import yaml

    from vocoder.cli.main import main
    from vocoder.training.runner import build_module

    folder, official = _official_bigvgan_folder(tmp_path / "official")
    recipe_path = RECIPES_DIR / "bigvgan_v2_24khz.yaml"
    overrides = [o for o in tiny_overrides(recipe_path) if not o.startswith("generator.")]

    module, _ = build_module(load_recipe(recipe_path, overrides + [f"generator.init={folder}"]))
    mel = torch.randn(1, 100, 8, generator=torch.Generator().manual_seed(2)) - 3
    with torch.no_grad():
        want, got = official(mel), module.generator(mel)
    assert want.abs().max() > 0.05
    assert (got - want).abs().max().item() < 1e-4  # anti-aliased activations: same tolerance as test_checkpoints

    caplog.set_level(logging.INFO, logger="vocoder")
    caplog.clear()  # build_module above logged too when an earlier test left the logger at INFO
    run_dir = tmp_path / "run"
    code = main(["train", "--config", str(recipe_path), "--data", str(audio_dir), "--out", str(run_dir),
                 "--init-generator", str(folder), *overrides, "trainer.max_steps=1"])
    assert code == 0
    lines = [r.getMessage() for r in caplog.records if "generator initialised from" in r.getMessage()]
    assert len(lines) == 1 and "bigvgan format" in lines[0] and "folded -> g/v" in lines[0], lines
    saved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert saved["generator"]["init"] == str(folder)
    assert saved["generator"]["config"]["upsample_initial_channel"] == 32 and saved["mel"]["n_mels"] == 100
    ck = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck["gan_step"] == 1


def test_init_mismatches_are_errors(tmp_path):
    from vocoder.training.generator_init import resolve_generator_init
    from vocoder.training.runner import build_module

    ckpt = _our_checkpoint(tmp_path / "g.pt", tiny())
    with pytest.raises(ValueError, match="init checkpoint has 80 mels, recipe says 100"):
        build_module(tiny(f"generator.init={ckpt}", "mel.n_mels=100"))
    with pytest.raises(ValueError, match=r"mel\.sample_rate: init checkpoint has 22050, recipe says 16000"):
        build_module(tiny(f"generator.init={ckpt}", "mel.sample_rate=16000", "mel.fmax=null"))
    with pytest.raises(ValueError, match="upsample_initial_channel: init checkpoint has 32, recipe says 48"):
        build_module(tiny(f"generator.init={ckpt}", "generator.config.upsample_initial_channel=48"))
    big = RECIPES_DIR / "bigvgan_v2_24khz.yaml"
    with pytest.raises(ValueError, match="holds a 'hifigan' generator, recipe says 'bigvgan'"):
        resolve_generator_init(load_recipe(big, [f"generator.init={ckpt}"]))
    with pytest.raises(ValueError, match="generator.init: model path not found"):
        resolve_generator_init(tiny(f"generator.init={tmp_path / 'missing.pt'}"))
    # resuming (load=False) with an explicit config and mel does not need the init file
    r, init = resolve_generator_init(tiny(f"generator.init={tmp_path / 'missing.pt'}"), load=False)
    assert init is None and r["generator"]["init"] == str(tmp_path / "missing.pt")


def test_resume_wins_over_init(audio_dir, tmp_path):
    """A resumed run takes its weights from last.ckpt: the init file is not read again (here it is gone)."""
    ckpt = _our_checkpoint(tmp_path / "g.pt", tiny())
    run_dir = tmp_path / "run"
    run_train(tiny(f"generator.init={ckpt}", "trainer.max_steps=1"), audio_dir, run_dir)
    ckpt.unlink()
    res = run_train(load_recipe(run_dir / "recipe.yaml", ["trainer.max_steps=2"]), audio_dir, run_dir, resume="auto")
    assert res.gan_step == 2


# ------------------------------------------------------------------------------------------- discriminator init


def test_init_discriminator_continues_an_adversarial_phase(audio_dir, tmp_path, caplog):
    """A run's discriminators, cut down to a small file, start the next run (from the CLI): weights equal, then
    it trains; resume wins over it."""
    import logging

    from vocoder.cli.main import main
    from vocoder.training.callbacks import discriminator_checkpoint, load_training_checkpoint
    from vocoder.training.runner import build_module, load_discriminator_init

    r = tiny("optim.discriminator_start_step=0", "trainer.max_steps=2")
    first = run_train(r, audio_dir, tmp_path / "first")
    cut = discriminator_checkpoint(first.last_checkpoint, tmp_path / "d.pt")
    full = load_training_checkpoint(first.last_checkpoint)
    assert cut.stat().st_size < first.last_checkpoint.stat().st_size / 2  # no optimiser states, no generator
    want = {k[len("discriminator."):]: v for k, v in full["state_dict"].items() if k.startswith("discriminator.")}

    module, _ = build_module(r)
    fresh = {k: v.clone() for k, v in module.discriminator.state_dict().items()}
    load_discriminator_init(module, cut)
    got = module.discriminator.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert any(not torch.equal(fresh[k], want[k]) for k in want)  # training had moved them
    module2, _ = build_module(r)
    load_discriminator_init(module2, first.last_checkpoint)  # the full Lightning checkpoint works too
    assert all(torch.equal(module2.discriminator.state_dict()[k], want[k]) for k in want)

    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text((tmp_path / "first" / "recipe.yaml").read_text())
    caplog.set_level(logging.INFO, logger="vocoder")
    code = main(["train", "--config", str(recipe_path), "--data", str(audio_dir), "--out", str(tmp_path / "second"),
                 "--init-discriminator", str(cut), "trainer.max_steps=1"])
    assert code == 0
    assert any(f"discriminators initialised from {cut}" in rec.getMessage() for rec in caplog.records)
    assert load_training_checkpoint(tmp_path / "second" / "checkpoints" / "last.ckpt")["gan_step"] == 1
    # resuming takes the discriminators from last.ckpt: the init file is not read again (here it is gone)
    cut.unlink()
    code = main(["train", "--out", str(tmp_path / "second"), "--data", str(audio_dir), "--resume", "auto",
                 "--init-discriminator", str(cut), "trainer.max_steps=2"])
    assert code == 0
    assert load_training_checkpoint(tmp_path / "second" / "checkpoints" / "last.ckpt")["gan_step"] == 2


def test_init_discriminator_that_does_not_fit_is_an_error(audio_dir, tmp_path):
    from vocoder.training.callbacks import discriminator_checkpoint
    from vocoder.training.runner import build_module, load_discriminator_init

    r = tiny("optim.discriminator_start_step=0", "trainer.max_steps=1")
    first = run_train(r, audio_dir, tmp_path / "first")
    cut = discriminator_checkpoint(first.last_checkpoint, tmp_path / "d.pt")
    wider, _ = build_module(tiny("discriminators.0.args.channel_mult=0.125"))
    with pytest.raises(ValueError, match="discriminators .* differ from the recipe's"):
        load_discriminator_init(wider, cut)
    # without the recorded recipe, the key/shape check still names the problem
    raw = torch.load(cut, weights_only=True)
    raw["hyper_parameters"] = {}
    torch.save(raw, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="bare.pt does not fit the recipe's discriminators: .*shape mismatches"):
        load_discriminator_init(wider, tmp_path / "bare.pt")
    module, _ = build_module(r)
    with pytest.raises(ValueError, match="checkpoint file not found: .*missing.ckpt"):
        load_discriminator_init(module, tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk.ckpt cannot be loaded with torch.load\(weights_only=True\)"):
        load_discriminator_init(module, tmp_path / "junk.ckpt")
    torch.save({"state_dict": {"generator.x": torch.zeros(1)}}, tmp_path / "gen_only.ckpt")
    with pytest.raises(ValueError, match="holds no discriminator weights"):
        load_discriminator_init(module, tmp_path / "gen_only.ckpt")
