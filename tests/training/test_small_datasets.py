"""Small training sets (issue #14): a few short clips train with the recipe's own batch size and validation
hold-out, write a checkpoint that resumes; a run that takes no step, or stops short of --max-steps for a reason
other than a signal, is an error (exit status 1 from `vocoder train`)."""
from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch

from training_helpers import RECIPES_DIR, make_audio_dir, one_thread, tiny_overrides  # noqa: F401
from vocoder.cli.main import main
from vocoder.training.recipes import load_recipe

RECIPE = RECIPES_DIR / "hifigan_v3.yaml"  # the recipe: batch_size 16, val_clips 8
# tiny networks and 2048-sample segments, but the recipe's batch size and validation hold-out
SMALL = tiny_overrides(RECIPE) + ["data.batch_size=16", "data.val_clips=8"]


@pytest.fixture(autouse=True)
def _threads(one_thread):
    level = logging.getLogger("vocoder").level
    yield
    logging.getLogger("vocoder").setLevel(level)  # `vocoder train` raises it to INFO in this process


def _cli(audio_dir, run_dir, *extra):
    return ["train", "--config", str(RECIPE), "--data", str(audio_dir), "--out", str(run_dir), *SMALL, *extra]


@pytest.mark.parametrize("n_clips", [1, 3, 12])
def test_a_few_short_clips_train_and_resume(tmp_path, n_clips, capsys):
    """12 clips of 1.5 s (the issue's case: 6 held out, 6 < batch 16, no batch, exit 0), 3 and 1 clip: two steps,
    a checkpoint, and a resumed third step, from the command line."""
    audio = make_audio_dir(tmp_path / "audio", n=n_clips, seconds=1.5)
    run_dir = tmp_path / "run"
    assert main(_cli(audio, run_dir, "--max-steps", "2")) == 0, capsys.readouterr().err[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    ck = torch.load(last, weights_only=True)
    assert ck["gan_step"] == 2
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert main(_cli(audio, run_dir, "--max-steps", "3", "--resume", "auto")) == 0, capsys.readouterr().err[-3000:]
    assert torch.load(last, weights_only=True)["gan_step"] == 3


def test_a_run_that_takes_no_step_fails_with_a_message(tmp_path, capsys):
    audio = make_audio_dir(tmp_path / "audio", n=3, seconds=1.5)
    run_dir = tmp_path / "run"
    assert main(_cli(audio, run_dir, "--max-steps", "1")) == 0
    capsys.readouterr()
    # resumed at its target: nothing to do is not a success
    assert main(_cli(audio, run_dir, "--max-steps", "1", "--resume", "auto")) == 1
    err = capsys.readouterr().err
    assert "vocoder train: error: no optimisation step was taken" in err and "already at GAN step 1" in err


class _Stop(pl.Callback):
    """Stops the trainer (as an early-stopping callback would) once ``gan_step`` reaches ``at``."""

    def __init__(self, at: int):
        self.at = at

    def on_train_start(self, trainer, module):
        trainer.should_stop = self.at == 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if module.gan_step >= self.at:
            trainer.should_stop = True


@pytest.mark.parametrize("at, message", [(0, r"no optimisation step was taken \(GAN step 0 of 2\)"),
                                         (1, r"training stopped at GAN step 1 of 2 \(1 steps taken\), not by a signal")])
def test_stopping_short_of_max_steps_is_an_error(tmp_path, at, message):
    from vocoder.training.runner import TrainingIncomplete, train

    audio = make_audio_dir(tmp_path / "audio", n=3, seconds=1.5)
    recipe = load_recipe(RECIPE, SMALL + ["trainer.max_steps=2"])
    with pytest.raises(TrainingIncomplete, match=message) as info:
        train(recipe, str(audio), run_dir=tmp_path / "run", progress_bar=False, extra_callbacks=[_Stop(at)])
    assert info.value.result.gan_step == at and info.value.result.steps_taken == at
