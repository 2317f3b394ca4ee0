"""Recipe + data -> a Lightning ``Trainer`` run in ``RUN_DIR``: what ``vocoder train`` does, callable from Python.

Run folder layout::

    RUN_DIR/recipe.yaml                 the resolved recipe (after overrides)
    RUN_DIR/checkpoints/last.ckpt       latest Lightning checkpoint (atomic), step_XXXXXXXX.ckpt, last.pt (inference)
    RUN_DIR/logs/                       TensorBoard events

Fine-tuning: a recipe with ``generator.init: PATH`` (``vocoder train --init-generator PATH``) starts the generator
from PATH (see :func:`vocoder.training.generator_init.resolve_generator_init`); the discriminators, optimisers, LR
schedule and ``gan_step`` start fresh (``--init-discriminator CKPT`` starts the discriminators from a training
checkpoint too). ``--resume`` wins over both: a resumed run already has its weights, so the generator init file
is then read only for settings the recipe leaves to it.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.utilities.exceptions import SIGTERMException

from ..checkpoints import load_generator_state, torch_load
from ..checkpoints.training_layout import STATE_DICT, discriminator_weights, holds_weights, recipe_discriminators
from .callbacks import AtomicCheckpointIO, ProgressLog, VocoderCheckpoint
from .checkpointing import find_last_checkpoint
from .data import VocoderDataModule, default_num_workers
from .generator_init import GeneratorInit, resolve_generator_init
from .lightning_module import GANVocoder
from .recipes import lightning_max_steps, save_recipe
from .settings import TrainerSettings, TrainingRecipe, as_training_recipe

__all__ = ["TrainResult", "TrainingIncomplete", "train", "build_module", "load_generator_init", "load_discriminator_init", "build_trainer", "build_datamodule", "resolve_precision", "resolve_accelerator"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    gan_step: int
    last_checkpoint: Optional[Path]
    terminated: bool  # stopped by SIGTERM (after saving last.ckpt)
    max_steps: Optional[int] = None  # the GAN step the run was asked to reach
    steps_taken: int = 0  # GAN steps this call trained (0 when it ended before its first optimisation step)

    def problem(self) -> Optional[str]:
        """Why the run is not what was asked for (None when it reached ``max_steps`` or was stopped by SIGTERM)."""
        if self.terminated:
            return None
        if self.steps_taken == 0:
            if self.max_steps is not None and self.gan_step >= self.max_steps:
                return (f"no optimisation step was taken: the run is already at GAN step {self.gan_step}, "
                        f"max_steps is {self.max_steps} (raise --max-steps to train further)")
            return (f"no optimisation step was taken (GAN step {self.gan_step} of {self.max_steps}): the trainer "
                    f"ended before its first batch; see the warnings above")
        if self.max_steps is not None and self.gan_step < self.max_steps:
            return (f"training stopped at GAN step {self.gan_step} of {self.max_steps} ({self.steps_taken} steps "
                    f"taken), not by a signal; see the warnings above")
        return None


class TrainingIncomplete(RuntimeError):
    """:func:`train` ended without an optimisation step, or short of ``max_steps`` for a reason other than a
    signal. ``result`` is the :class:`TrainResult` (its checkpoint, if any, was written)."""

    def __init__(self, result: TrainResult):
        super().__init__(result.problem())
        self.result = result


class _StepCounter(pl.Callback):
    """The module's ``gan_step`` when training started (after a resumed checkpoint is restored)."""

    def __init__(self):
        self.start: Optional[int] = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = int(pl_module.gan_step)


def resolve_accelerator(name: str) -> str:
    if name in (None, "auto"):
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "gpu", "cuda"):
        raise ValueError(f"accelerator must be cpu, gpu or auto, got {name!r}")
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError("accelerator 'gpu' asked for, but torch sees no CUDA device")
    return "gpu" if name == "cuda" else name


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` -> ``bf16-mixed`` on a CUDA device that supports bf16, else ``32-true``."""
    if precision in ("auto", None):
        if accelerator == "gpu" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16-mixed"
        return "32-true"
    if precision == "32":
        return "32-true"
    if precision.startswith("bf16") and accelerator == "cpu":
        log.warning("bf16 on CPU is slow and lossy; training in %s as asked", precision)
    return precision


def _strategy(t: TrainerSettings, accelerator: str, devices):
    n = devices if isinstance(devices, int) else (len(devices) if isinstance(devices, (list, tuple)) else None)
    multi = n is None or n == -1 or n > 1
    if t.strategy in ("auto", "ddp") and multi:
        return DDPStrategy(process_group_backend="gloo" if accelerator == "cpu" else "nccl",
                           find_unused_parameters=t.find_unused_parameters)
    return t.strategy


def build_datamodule(recipe: Union[Mapping[str, Any], TrainingRecipe], train: Union[str, Sequence[str]],
                     val: Union[str, Sequence[str], None] = None) -> VocoderDataModule:
    """The data module of ``recipe``; ``data.num_workers`` is a ceiling: at most one worker per CPU but one."""
    plan = as_training_recipe(recipe)
    d = plan.data
    workers = default_num_workers(d.num_workers)
    if workers < d.num_workers:
        log.info("data.num_workers=%d lowered to %d on this machine (one CPU for the trainer)", d.num_workers, workers)
    return VocoderDataModule(train=train, val=val, mel_config=plan.mel, segment_length=d.segment_length,
                             batch_size=d.batch_size, num_workers=workers, val_clips=d.val_clips, seed=d.seed,
                             finetune_mels=d.finetune_mels)


def build_trainer(recipe: Union[Mapping[str, Any], TrainingRecipe], run_dir: "os.PathLike | str",
                  progress_bar: Optional[bool] = None, extra_callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """A ``pl.Trainer`` for ``recipe`` writing into ``run_dir`` (atomic checkpoints, TensorBoard logs)."""
    plan = as_training_recipe(recipe)
    t = plan.trainer
    run_dir = Path(run_dir)
    accelerator = resolve_accelerator(t.accelerator)
    devices = t.devices
    gan_steps = t.max_steps
    ckpt_cb = VocoderCheckpoint(run_dir / "checkpoints", every_n_steps=t.checkpoint_every_n_steps or 0,
                                keep_last=t.keep_last_checkpoints or 0,
                                export_every_n_steps=t.export_every_n_steps or 0)
    try:
        logger = pl.loggers.TensorBoardLogger(save_dir=str(run_dir), name="logs", version="", default_hp_metric=False)
    except ModuleNotFoundError:  # tensorboard missing: CSV still records the losses
        logger = pl.loggers.CSVLogger(save_dir=str(run_dir), name="logs", version="")
    if progress_bar is None:
        progress_bar = os.isatty(2)
    return pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy=_strategy(t, accelerator, devices),
        precision=resolve_precision(t.precision, accelerator),
        max_steps=lightning_max_steps(gan_steps, plan.optim.discriminator_start_step),
        max_epochs=-1,
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=None,  # val_check_interval counts GAN steps across epochs
        num_sanity_val_steps=t.num_sanity_val_steps,
        log_every_n_steps=t.log_every_n_steps,
        enable_checkpointing=False,  # VocoderCheckpoint does it, keyed by gan_step
        callbacks=[ckpt_cb, ProgressLog(t.log_every_n_steps, gan_steps), *extra_callbacks],
        plugins=[AtomicCheckpointIO()],
        logger=logger,
        default_root_dir=str(run_dir),
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=True,
    )


def load_generator_init(module, init: GeneratorInit) -> None:
    """Copy ``init``'s weights into ``module.generator`` (a :class:`GANVocoder`), which keeps its weight norm.

    Folded weights become ``v = w``, ``g = ||w||`` (norm over every dim but the output one), so the generator's
    forward equals the checkpoint's; ``g``/``v`` weights are copied as they are.
    """
    load_generator_state(module.generator, init.state_dict, source=f"generator.init {init.path}")
    n = sum(v.numel() for v in init.state_dict.values())
    log.info("generator initialised from %s (%s format, %s, %d mels, %d Hz, hop %d, %.2fM parameters, weight norm %s); "
             "discriminators start fresh", init.path, init.source, init.name, init.mel.n_mels, init.mel.sample_rate,
             init.mel.hop_length, n / 1e6, "folded -> g/v" if init.folded else "g/v as stored")


def load_discriminator_init(module, path: "os.PathLike | str") -> None:
    """Copy the discriminator weights of a training checkpoint into ``module.discriminator`` (a :class:`GANVocoder`).

    ``path``: a Lightning checkpoint of ours (``RUN_DIR/checkpoints/*.ckpt``) or one cut down to its discriminator
    by :func:`vocoder.training.checkpointing.discriminator_checkpoint`. The recipe's ``discriminators`` must describe
    the same networks; every key and shape must fit, else ``ValueError`` naming the difference.
    """
    source = f"--init-discriminator {path}"
    ckpt = torch_load(path)  # missing, unreadable or unsafe files -> ValueError
    if not holds_weights(ckpt):
        raise ValueError(f"{source}: expected a training checkpoint with a {STATE_DICT}")
    state = discriminator_weights(ckpt)
    if not state:
        raise ValueError(f"{source}: the checkpoint holds no discriminator weights")
    theirs = recipe_discriminators(ckpt)
    ours = module.recipe["discriminators"]
    if theirs is not None and theirs != ours:
        raise ValueError(f"{source}: the checkpoint's discriminators {theirs} differ from the recipe's {ours}")
    # Not checkpoints.load_generator_state: it reads any ``weight_v`` as a weight-norm half, while MSD's
    # spectral-norm layers hold ``weight_orig`` / ``weight_u`` / ``weight_v`` (a vector). Keys must match as saved.
    own = module.discriminator.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(own) & set(state))
              if state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[0]})")
        raise ValueError(f"{source} does not fit the recipe's discriminators: " + "; ".join(parts))
    module.discriminator.load_state_dict(state)
    log.info("discriminators initialised from %s (%.2fM parameters)", path,
             sum(v.numel() for v in state.values()) / 1e6)


def build_module(recipe: Mapping[str, Any], init: bool = True):
    """``(module, recipe)``: a :class:`GANVocoder` for ``recipe`` and the recipe it was built from.

    With ``generator.init`` set, the recipe is completed from (and checked against) that checkpoint, and with
    ``init=True`` the generator starts from its weights.
    """
    recipe, gen_init = resolve_generator_init(recipe, load=init)
    return _module(recipe, gen_init), recipe


def _module(recipe: Union[Mapping[str, Any], TrainingRecipe], gen_init: Optional[GeneratorInit]) -> GANVocoder:
    """A :class:`GANVocoder` for an already resolved ``recipe``, its generator from ``gen_init`` when given."""
    module = GANVocoder(recipe)
    if gen_init is not None:
        load_generator_init(module, gen_init)
    return module


def train(recipe: Mapping[str, Any], data: Union[str, Sequence[str]], val: Union[str, Sequence[str], None] = None,
          run_dir: "os.PathLike | str" = "runs/vocoder", resume: Optional[str] = None,
          progress_bar: Optional[bool] = None, extra_callbacks: Sequence[pl.Callback] = (),
          init_discriminator: "os.PathLike | str | None" = None) -> TrainResult:
    """Train (or resume) ``recipe`` on ``data`` into ``run_dir``.

    ``resume``: a Lightning checkpoint path, ``"auto"`` (``RUN_DIR/checkpoints/last.ckpt`` when it exists) or
    ``None``. Resuming restores weights, optimiser and scheduler state, ``gan_step`` and the data position, and
    takes precedence over ``generator.init`` (whose weights are then not loaded) and ``init_discriminator``.
    ``init_discriminator``: start the discriminators from a training checkpoint (see
    :func:`load_discriminator_init`) instead of from scratch, so an adversarial phase continues where one stopped.

    Raises :class:`TrainingIncomplete` when the run ends without an optimisation step, or before
    ``trainer.max_steps`` for a reason other than SIGTERM (which returns ``terminated=True``).
    """
    run_dir = Path(run_dir)
    ckpt_path: Optional[Path] = None
    if resume == "auto":
        ckpt_path = find_last_checkpoint(run_dir)
    elif resume:
        ckpt_path = Path(resume)
        if not ckpt_path.is_file():
            raise ValueError(f"--resume {resume!r}: no such checkpoint file")
    if ckpt_path is not None and recipe["generator"].get("init"):
        log.info("resuming from %s: generator.init %s is not loaded", ckpt_path, recipe["generator"]["init"])
    # Fill the generator config / mel from generator.init first, so recipe.yaml records what was built.
    recipe, gen_init = resolve_generator_init(recipe, load=ckpt_path is None)
    rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_recipe(recipe, run_dir / "recipe.yaml")
    plan = TrainingRecipe.from_dict(recipe)  # typed once; the module, data and trainer share it
    pl.seed_everything(plan.trainer.seed, workers=True, verbose=False)
    module = _module(plan, gen_init)
    if init_discriminator is not None:
        if ckpt_path is not None:
            log.info("resuming from %s: --init-discriminator %s is not loaded", ckpt_path, init_discriminator)
        else:
            load_discriminator_init(module, init_discriminator)
    dm = build_datamodule(plan, data, val)
    counter = _StepCounter()
    trainer = build_trainer(plan, run_dir, progress_bar=progress_bar, extra_callbacks=[*extra_callbacks, counter])
    if ckpt_path is not None:
        log.info("resuming from %s", ckpt_path)
    terminated = False
    try:
        # weights_only: a checkpoint holds tensors and plain values only, so loading it never runs code
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)
    except SIGTERMException:
        terminated = True
        log.warning("stopped by SIGTERM at GAN step %d; resume with --resume auto", module.gan_step)
    last = run_dir / "checkpoints" / "last.ckpt"
    step = int(module.gan_step)
    result = TrainResult(run_dir, step, last if last.is_file() else None, terminated,
                         max_steps=plan.trainer.max_steps,
                         steps_taken=0 if counter.start is None else step - counter.start)
    if result.problem() is not None:
        raise TrainingIncomplete(result)
    return result
