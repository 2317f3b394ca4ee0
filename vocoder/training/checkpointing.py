"""Training checkpoints as files: reading one written by ``vocoder train``, exporting our inference ``.pt`` from it
(or from a live module), and cutting it down to its discriminators (for ``vocoder train --init-discriminator``: an
adversarial phase continues without the optimiser states' bulk)."""
from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import pytorch_lightning as pl
import torch

from ..checkpoints import save_checkpoint
from ..checkpoints.native import read_training
from ..checkpoints.training_layout import REQUIRED_KEYS, discriminators_only, training_meta
from ..nn.weight_normalization import fold_weight_norm as fold
from ..utils import atomic_torch_save

__all__ = ["load_training_checkpoint", "find_last_checkpoint", "export_inference_checkpoint",
           "discriminator_checkpoint"]


def load_training_checkpoint(path) -> Dict[str, Any]:
    """Read a Lightning checkpoint written by ``vocoder train`` (tensors and plain values only)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"training checkpoint {str(path)!r} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, Mapping) or any(k not in ckpt for k in REQUIRED_KEYS):
        expected = " and ".join(repr(k) for k in REQUIRED_KEYS)
        raise ValueError(f"{path} is not a `vocoder train` checkpoint (expected keys {expected}, "
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
    GAN step, the run's CPU-hours (when the checkpoint has them), the date and where it came from.
    """
    if isinstance(source, pl.LightningModule):
        generator = copy.deepcopy(source.generator).cpu()
        mel = source.mel_config
        meta = training_meta(source.plan.name, source.gan_step, "training", source.cpu_seconds)
    else:
        generator, mel, meta = read_training(load_training_checkpoint(source), source)
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
    atomic_torch_save(discriminators_only(load_training_checkpoint(source), source), out_path)
    return Path(out_path)
