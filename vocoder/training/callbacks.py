"""Checkpoint IO and callbacks for training runs.

- :class:`AtomicCheckpointIO`: Lightning checkpoints go through a temporary file in the same folder and an atomic
  ``os.replace``, so a crash or a full disk mid-write leaves the previous checkpoint intact.
- :class:`VocoderCheckpoint`: every N GAN steps writes ``step_XXXXXXXX.ckpt`` and ``last.ckpt`` (and optionally
  our inference ``.pt`` next to it); on SIGTERM writes ``last.ckpt`` before Lightning stops the run; at the end
  writes the final checkpoint and its inference export.
- :class:`ProgressLog`: one ``logging`` line every ``log_every_n_steps`` GAN steps (scripts and tests read it).

The checkpoint files themselves (reading a training checkpoint, exporting our inference ``.pt``, cutting one down
to its discriminators) are :mod:`vocoder.training.checkpointing`; its functions are importable from here too
(``vocoder.training.callbacks.export_inference_checkpoint``, as the release script has it).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import pytorch_lightning as pl
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException

from ..utils import atomic_torch_save
from .checkpointing import (discriminator_checkpoint, export_inference_checkpoint, find_last_checkpoint,
                            load_training_checkpoint)

__all__ = ["AtomicCheckpointIO", "VocoderCheckpoint", "ProgressLog", "export_inference_checkpoint",
           "load_training_checkpoint", "find_last_checkpoint", "discriminator_checkpoint"]

log = logging.getLogger(__name__)

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic (temp file in the same folder, then ``os.replace``)."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO.save_checkpoint takes no storage_options, got {storage_options!r}")
        if _URL.match(str(path)):  # remote filesystems: fsspec does its own thing
            return super().save_checkpoint(checkpoint, path)
        atomic_torch_save(checkpoint, path)


def _link_or_copy_atomic(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src`` atomically (a hard link when the filesystem allows it)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class VocoderCheckpoint(pl.Callback):
    """Periodic, final and SIGTERM checkpoints, keyed by the module's ``gan_step``.

    Args:
        dirpath: folder for ``step_XXXXXXXX.ckpt``, ``last.ckpt`` and the ``.pt`` exports.
        every_n_steps: GAN steps between checkpoints (0 = only at the end and on SIGTERM).
        keep_last: how many ``step_*.ckpt`` files to keep (0 = all).
        export_every_n_steps: also write our inference checkpoint every N GAN steps (0 = only the final one).
    """

    def __init__(self, dirpath, every_n_steps: int = 5000, keep_last: int = 5, export_every_n_steps: int = 0):
        super().__init__()
        self.dirpath = Path(dirpath)
        self.every_n_steps = int(every_n_steps or 0)
        self.keep_last = int(keep_last or 0)
        self.export_every_n_steps = int(export_every_n_steps or 0)
        self._saved_at: Optional[int] = None

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def step_path(self, step: int) -> Path:
        return self.dirpath / f"step_{step:08d}.ckpt"

    def save(self, trainer: pl.Trainer, module, step_file: bool, export: bool) -> None:
        """Save ``last.ckpt`` (and ``step_N.ckpt``); every rank must call this (Lightning syncs inside)."""
        step = int(module.gan_step)
        target = self.step_path(step) if step_file else self.last_path
        trainer.save_checkpoint(str(target), weights_only=False)  # full state: optimisers, loops, data position
        if trainer.is_global_zero:
            if step_file:
                _link_or_copy_atomic(target, self.last_path)
                self._prune()
            if export:
                export_inference_checkpoint(module, self.dirpath / f"step_{step:08d}.pt")
                _link_or_copy_atomic(self.dirpath / f"step_{step:08d}.pt", self.dirpath / "last.pt")
        trainer.strategy.barrier("vocoder_checkpoint")
        self._saved_at = step
        log.info("saved checkpoint at GAN step %d -> %s", step, target)

    def _prune(self) -> None:
        if self.keep_last <= 0:
            return
        steps = sorted(self.dirpath.glob("step_*.ckpt"))
        for old in steps[:-self.keep_last]:
            old.unlink(missing_ok=True)

    def on_train_start(self, trainer, pl_module) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        self._saved_at = int(pl_module.gan_step)  # the checkpoint we resumed from (or nothing to save yet)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(pl_module.gan_step)
        if getattr(trainer, "received_sigterm", False):
            # Lightning raises SIGTERMException right after this hook: save first.
            if self._saved_at != step:
                log.warning("SIGTERM: saving %s at GAN step %d before stopping", self.last_path, step)
                self.save(trainer, pl_module, step_file=False, export=False)
            return
        if self.every_n_steps and step % self.every_n_steps == 0 and self._saved_at != step:
            export = bool(self.export_every_n_steps) and step % self.export_every_n_steps == 0
            self.save(trainer, pl_module, step_file=True, export=export)

    def on_train_end(self, trainer, pl_module) -> None:
        step = int(pl_module.gan_step)
        if self._saved_at != step:
            self.save(trainer, pl_module, step_file=True, export=True)
        elif trainer.is_global_zero and not (self.dirpath / f"step_{step:08d}.pt").exists():
            export_inference_checkpoint(pl_module, self.dirpath / f"step_{step:08d}.pt")
            _link_or_copy_atomic(self.dirpath / f"step_{step:08d}.pt", self.dirpath / "last.pt")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # SIGTERM during validation (or between the flag and the batch end) still leaves a checkpoint behind.
        if isinstance(exception, SIGTERMException) and self._saved_at != int(pl_module.gan_step):
            try:
                self.save(trainer, pl_module, step_file=False, export=False)
            except Exception:  # never mask the original exception
                log.exception("could not save a checkpoint after SIGTERM")


class ProgressLog(pl.Callback):
    """Log ``step N/M`` and the main losses every ``every`` GAN steps through :mod:`logging`."""

    def __init__(self, every: int, max_steps: int):
        self.every, self.max_steps = max(1, int(every)), int(max_steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(pl_module.gan_step)
        if trainer.is_global_zero and (step % self.every == 0 or step == 1):
            m = trainer.callback_metrics
            parts = [f"{k.split('/')[-1]}={float(m[k]):.4f}" for k in ("train/loss_g", "train/loss_d", "train/mel")
                     if k in m]
            cpu_h = getattr(pl_module, "cpu_seconds", 0.0) / 3600.0
            log.info("step %d/%d %s cpu_h=%.2f", step, self.max_steps, " ".join(parts), cpu_h)
