"""Checkpoints: our own one-file format, importers for official BigVGAN / HiFi-GAN / ParallelWaveGAN / Vocos files,
and exporters back to the official layouts.

Modules, bottom-up (each imports only those before it): :mod:`.state` (safe file reading, any weight-norm
spelling into a model), :mod:`.training_layout` (the keys of a ``vocoder train`` checkpoint), :mod:`.native` (our
format), :mod:`.official` (BigVGAN, HiFi-GAN), :mod:`.pwg` (ParallelWaveGAN), :mod:`.vocos` (Vocos),
:mod:`.safetensors_folder` (our Hub layout: config.json + model.safetensors), :mod:`.export` (official layouts
back), :mod:`.load` (the dispatcher), :mod:`.hub` (Hugging Face repo ids -> local files).
"""
from ..nn.weight_normalization import fold_weight_norm
from .export import (export_bigvgan, export_hifigan, export_onnx, export_parallel_wavegan, export_torchscript,
                     export_vocos)
from .hub import resolve_repo
from .load import checkpoint_kind, load_checkpoint
from .native import FORMAT_NAME, FORMAT_VERSION, save_checkpoint
from .official import import_bigvgan, import_hifigan
from .pwg import import_parallel_wavegan
from .safetensors_folder import read_safetensors_folder, save_safetensors_folder
from .state import load_generator_state, torch_load
from .vocos import import_vocos, vocos_configs, vocos_hparams

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "load_generator_state",
    "fold_weight_norm", "import_bigvgan", "import_hifigan", "import_parallel_wavegan", "import_vocos",
    "export_bigvgan", "export_hifigan", "export_vocos", "export_parallel_wavegan", "export_torchscript",
    "export_onnx", "checkpoint_kind", "vocos_configs", "vocos_hparams",
    "torch_load", "save_safetensors_folder", "read_safetensors_folder", "resolve_repo",
]
