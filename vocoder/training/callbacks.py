"""Checkpoint IO and callbacks for training runs.

- :class:`AtomicCheckpointIO`: Lightning checkpoints go through a temporary file in the same folder and an atomic
  ``os.replace``, so a crash or a full disk mid-write leaves the previous checkpoint intact.
- :class:`VocoderCheckpoint`: every N GAN steps writes ``step_XXXXXXXX.ckpt`` and ``last.ckpt`` (and optionally
  our inference ``.pt`` next to it); on SIGTERM writes ``last.ckpt`` before Lightning stops the run; at the end
  writes the final checkpoint and its inference export.
- :class:`ProgressLog`: one ``logging`` line every ``log_every_n_steps`` GAN steps (scripts and tests read it).
- :func:`export_inference_checkpoint`: a Lightning checkpoint (or a live module) -> our ``.pt`` format.
- :func:`discriminator_checkpoint`: a Lightning checkpoint cut down to its discriminators (for
  ``vocoder train --init-discriminator``: an adversarial phase continues without the optimiser states' bulk).
"""
from __future__ import annotations

import copy
import datetime
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from ..utils import atomic_torch_save

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
        from pytorch_lightning.utilities.exceptions import SIGTERMException

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
            log.info("step %d/%d %s", step, self.max_steps, " ".join(parts))


# ------------------------------------------------------------------------------------------------ export


def load_training_checkpoint(path) -> Dict[str, Any]:
    """Read a Lightning checkpoint written by ``vocoder train`` (tensors and plain values only)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"training checkpoint {str(path)!r} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt or "vocoder" not in ckpt:
        raise ValueError(f"{path} is not a `vocoder train` checkpoint (expected keys 'state_dict' and 'vocoder', "
                         f"got {sorted(ckpt) if isinstance(ckpt, Mapping) else type(ckpt).__name__})")
    return ckpt


def find_last_checkpoint(run_dir) -> Optional[Path]:
    """``RUN_DIR/checkpoints/last.ckpt`` if it exists."""
    p = Path(run_dir) / "checkpoints" / "last.ckpt"
    return p if p.is_file() else None


def export_inference_checkpoint(source, out_path, fold_weight_norm: bool = True,
                                extra_meta: Optional[Mapping[str, Any]] = None) -> Path:
    """Write our inference checkpoint from a ``GANVocoder`` or a Lightning checkpoint path.

    The generator's weight norm is folded (unless ``fold_weight_norm=False``); meta records the recipe name, the
    GAN step, the date and where it came from.
    """
    from ..audio.mel import MelConfig
    from ..checkpoints import fold_weight_norm as fold, save_checkpoint
    from ..generators.registry import build_generator

    if isinstance(source, pl.LightningModule):
        generator = copy.deepcopy(source.generator).cpu()
        mel = source.mel_config
        meta = {"recipe": source.recipe.get("name"), "gan_step": int(source.gan_step), "source": "training"}
    else:
        ckpt = load_training_checkpoint(source)
        info = ckpt["vocoder"]
        generator = build_generator(info["generator"]["name"], dict(info["generator"]["config"]))
        prefix = "generator."
        state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f"{source}: no 'generator.*' weights in the checkpoint's state_dict")
        generator.load_state_dict(state, strict=True)
        mel = MelConfig.from_dict(info["mel"])
        meta = {"recipe": info.get("recipe_name"), "gan_step": int(ckpt.get("gan_step", 0)),
                "source": str(Path(source).resolve())}
    generator.eval()
    if fold_weight_norm:
        fold(generator)
    meta["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta["weight_norm_folded"] = bool(fold_weight_norm)
    meta.update(dict(extra_meta or {}))
    save_checkpoint(out_path, generator, mel, meta)
    return Path(out_path)


def discriminator_checkpoint(source, out_path) -> Path:
    """Write the discriminator weights of training checkpoint ``source`` (with its recipe and GAN step) to
    ``out_path``, atomically, in the layout :func:`vocoder.training.runner.load_discriminator_init` reads."""
    ckpt = load_training_checkpoint(source)
    state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("discriminator.")}
    if not state:
        raise ValueError(f"{source}: no 'discriminator.*' weights in the checkpoint's state_dict")
    recipe = (ckpt.get("hyper_parameters") or {}).get("recipe", {})
    out = {"state_dict": state, "hyper_parameters": {"recipe": {"discriminators": recipe.get("discriminators")}},
           "gan_step": int(ckpt.get("gan_step", 0)), "vocoder": ckpt["vocoder"]}
    atomic_torch_save(out, out_path)
    return Path(out_path)
