"""SpeechBrain export: a folder that SpeechBrain's own ``HIFIGAN.from_hparams(source=DIR)`` loads.

    export_speechbrain(voc, "sb_vocoder/")          # or: vocoder export --format speechbrain MODEL sb_vocoder/
    from speechbrain.inference.vocoders import HIFIGAN
    hifi_gan = HIFIGAN.from_hparams(source="sb_vocoder/")
    wav = hifi_gan.decode_batch(mel)                # [B, n_mels, T] -> [B, 1, T * hop], our audio

The folder holds ``hyperparams.yaml`` (``generator``: a :class:`SpeechBrainGenerator` built from the generator's
name, config and mel settings; ``modules``; a ``Pretrainer`` whose ``loadables`` map ``generator`` to
``generator.ckpt``) and ``generator.ckpt`` (the folded weights). It needs this package where it is loaded, for every
generator family. SpeechBrain's own ``HifiganGenerator`` is not used: its convolutions pad by reflection ("same"
with ``padding_mode="reflect"``) and its ``inference`` adds 5 replicated frames on each side, so no weights make it
compute what the official HiFi-GAN (and ours) computes.

SpeechBrain loads the weights with ``load_state_dict(strict=False)``, which would leave a mismatched layer with its
random initial weights and only log a warning: :class:`SpeechBrainGenerator` checks every load itself (a missing or
unexpected key is a ``ValueError``) and refuses to run before its weights arrived; :func:`export_speechbrain` loads
what it wrote back strictly.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import yaml

from ..audio.mel import MelConfig
from ..checkpoints.state import registry_name, unwrap_generator
from ..generators.registry import build_generator
from ..nn.weight_normalization import fold_weight_norm
from ..utils import atomic_torch_save, atomic_write_bytes

__all__ = ["SpeechBrainGenerator", "export_speechbrain", "SB_HPARAMS", "SB_WEIGHTS"]

SB_HPARAMS = "hyperparams.yaml"
SB_WEIGHTS = "generator.ckpt"


def _plain(value):
    """Tuples (nested) -> lists, for YAML."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


class SpeechBrainGenerator(nn.Module):
    """The ``generator`` of an exported SpeechBrain folder: ``inference(mel [B, n_mels, T]) -> [B, 1, T * hop]``
    and ``remove_weight_norm()`` (a no-op: the weights are folded), what SpeechBrain's ``HIFIGAN`` calls.

    Args:
        name: the registered generator family (``"hifigan"``, ``"bigvgan"``, ...).
        config: its config as a dict.
        mel: the :class:`MelConfig` as a dict (kept as ``mel_config``; SpeechBrain passes mels as they come).
    """

    def __init__(self, name: str, config: dict, mel: dict):
        super().__init__()
        self.generator = fold_weight_norm(build_generator(name, dict(config)))
        self.generator.eval().requires_grad_(False)
        self.mel_config = MelConfig.from_dict(mel)
        self.sample_rate = self.mel_config.sample_rate
        self.hop_length = self.mel_config.hop_length
        self.weights_loaded = False
        self.register_load_state_dict_post_hook(SpeechBrainGenerator._check_load)

    @staticmethod
    def _check_load(module, incompatible) -> None:
        missing, unexpected = list(incompatible.missing_keys), list(incompatible.unexpected_keys)
        if missing or unexpected:
            raise ValueError(f"SpeechBrainGenerator: the weights do not fit the generator ({len(missing)} missing: "
                             f"{missing[:5]}, {len(unexpected)} unexpected: {unexpected[:5]}); refusing to run with "
                             f"random weights")
        module.weights_loaded = True

    def inference(self, mel: torch.Tensor) -> torch.Tensor:
        if not self.weights_loaded:
            raise RuntimeError("SpeechBrainGenerator: no weights were loaded into it (generator.ckpt missing?)")
        return self.generator(mel)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.inference(mel)

    def remove_weight_norm(self) -> None:
        """Nothing to do: built folded (SpeechBrain calls this before its first decode)."""


def export_speechbrain(obj, folder, mel_config: Optional[MelConfig] = None) -> Path:
    """Write ``hyperparams.yaml`` + ``generator.ckpt`` to ``folder`` for SpeechBrain's
    ``HIFIGAN.from_hparams(source=folder)``.

    ``obj`` is a :class:`~vocoder.inference.Vocoder` or a registered generator (then ``mel_config`` is needed). The
    written weights are loaded back strictly into the class the YAML names (``ValueError`` if any key is missing or
    left over). Returns ``folder``.
    """
    generator, mel = unwrap_generator(obj)
    mel = mel_config or mel
    if mel is None:
        raise ValueError("export_speechbrain needs the MelConfig (pass mel_config= or a Vocoder)")
    name = registry_name(generator)
    config = {k: _plain(v) for k, v in dataclasses.asdict(generator.config).items()}
    mel_dict = mel.to_dict()
    module = SpeechBrainGenerator(name, config, mel_dict)
    folded = fold_weight_norm(copy.deepcopy(generator).cpu().float())
    state = {f"generator.{k}": v.detach().clone() for k, v in folded.state_dict().items()}
    module.load_state_dict(state, strict=True)  # every key of the module, nothing left over

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    args = yaml.safe_dump({"name": name, "config": config, "mel": mel_dict}, sort_keys=False)
    text = (
        "# SpeechBrain vocoder interface (speechbrain.inference.vocoders.HIFIGAN.from_hparams(source=<this folder>))\n"
        "# around a `vocoder` package model; written by vocoder.plugins.speechbrain.export_speechbrain.\n"
        f"sample_rate: {mel.sample_rate}\n"
        f"hop_length: {mel.hop_length}\n"
        f"n_mel_channels: {mel.n_mels}\n\n"
        "generator: !new:vocoder.plugins.speechbrain.SpeechBrainGenerator\n"
        + "".join(f"    {line}\n" for line in args.splitlines())
        + "\nmodules:\n    generator: !ref <generator>\n\n"
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n"
        "    loadables:\n        generator: !ref <generator>\n"
    )
    atomic_write_bytes(text.encode(), folder / SB_HPARAMS)
    atomic_torch_save(state, folder / SB_WEIGHTS)
    return folder

