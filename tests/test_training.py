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
REPO = Path(__file__).resolve().parent.parent


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
    from vocoder.training.module import GANVocoder

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
    from vocoder.training.module import GANVocoder

    voc = Vocoder.from_pretrained(str(out))
    module = GANVocoder(tiny())
    state = load_training_checkpoint(res.last_checkpoint)["state_dict"]
    module.load_state_dict(state)
    mel = torch.randn(1, 80, 12)
    with torch.no_grad():
        want = module.generator.eval()(mel)
        got = voc.generator(mel) if hasattr(voc, "generator") else voc(mel)
    torch.testing.assert_close(got.reshape(-1), want.reshape(-1), rtol=1e-4, atol=1e-5)

    assert main(["export", str(tmp_path / "nope.ckpt"), str(out)]) == 2  # clear error, no traceback


# ------------------------------------------------------------------------------------------------ CLI processes


def _cli_args(run_dir, audio_dir, *extra):
    return [sys.executable, "-m", "vocoder.cli.main", "-v", "train", "--config", str(RECIPE), "--data",
            str(audio_dir), "--out", str(run_dir), *tiny_overrides(RECIPE), *extra]


@pytest.mark.slow
def test_sigterm_saves_then_resumes(audio_dir, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(_cli_args(run_dir, audio_dir, "trainer.max_steps=100000", "trainer.log_every_n_steps=1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_cli_env(), cwd=tmp_path)
    lines = []
    deadline = time.time() + 120
    try:
        for line in proc.stdout:  # wait until it is training
            lines.append(line)
            if "step 2/100000" in line or time.time() > deadline:
                break
        assert any("step 2/100000" in l for l in lines), "".join(lines[-30:])
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
