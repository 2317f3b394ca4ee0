"""The model arguments every subcommand that runs a model shares (``--model``, ``--config``, the Hub's ``--revision``,
``--cache-dir`` and ``--local-files-only``, ``--device``, ``--dtype``, ``--random-init``, and for offline decoding
``--phase`` and ``--phase-iterations``), and loading the model they name."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..nn.phase_retrieval import PHASE_METHODS

DTYPES = ("float32", "bfloat16", "float16")
MODEL_HELP = ("the model: our .pt or save_pretrained folder (config.json + model.safetensors), a `vocoder train` "
              ".ckpt, an official BigVGAN / HiFi-GAN / ParallelWaveGAN / Vocos folder or file, or a Hugging Face "
              "Hub repo id org/name[@REVISION] holding one of these (a local path of the same spelling wins; "
              "default: the shipped model)")


def add_hub_arguments(p: argparse.ArgumentParser) -> None:
    """``--revision``, ``--cache-dir``, ``--local-files-only``: how a Hub repo id given as the model is fetched."""
    g = p.add_argument_group("Hugging Face Hub (when the model is a repo id org/name)")
    g.add_argument("--revision", default=None, metavar="REV",
                   help="branch, tag or commit of the repo (default: main; also written org/name@REV)")
    g.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="the Hub cache to use (default: huggingface_hub's, $HF_HUB_CACHE or ~/.cache/huggingface/hub)")
    g.add_argument("--local-files-only", action="store_true",
                   help="never download: use the cached files (as HF_HUB_OFFLINE=1 does)")


def hub_options(args: argparse.Namespace) -> dict:
    """The :func:`add_hub_arguments` values as ``Vocoder.from_pretrained`` keyword arguments."""
    return {"revision": getattr(args, "revision", None), "cache_dir": getattr(args, "cache_dir", None),
            "local_files_only": getattr(args, "local_files_only", False)}


def add_model_arguments(p: argparse.ArgumentParser, device: bool = True, random_init: bool = True,
                        device_help: str = "cpu, cuda, cuda:1, ... (default: cpu)",
                        phase_iterations: bool = False, several_models: bool = False) -> None:
    """``--model/-m``, ``--config``, the Hub's ``--revision`` / ``--cache-dir`` / ``--local-files-only``, and
    optionally ``--device`` with ``--dtype``, ``--random-init`` and ``--phase-iterations``. With
    ``several_models``, ``--model`` may be repeated: ``args.model`` is then a list (``None`` when not given)."""
    p.add_argument("--model", "-m", default=None, action="append" if several_models else "store",
                   help=MODEL_HELP + ("; a preset name with --random-init" if random_init else "")
                   + ("; repeat it to compare models" if several_models else ""))
    p.add_argument("--config", default=None, help="official config.json (config.yml / config.yaml) when it is not "
                                                  "next to the model file")
    add_hub_arguments(p)
    if device:
        p.add_argument("--device", default="cpu", help=device_help)
        p.add_argument("--dtype", choices=DTYPES, default="float32",
                       help="the network's precision (audio is float32 either way; bfloat16 is faster on CPUs with "
                            "AVX-512 BF16 / AMX and on GPUs; default: float32)")
    if random_init:
        p.add_argument("--random-init", action="store_true",
                       help="allow a preset name as --model (random weights: tests and benchmarks)")
    if phase_iterations:
        p.add_argument("--phase-iterations", type=int, default=None, metavar="K",
                       help="Fourier-head (vocos) models: refine the predicted phase with K fast Griffin-Lim "
                            "iterations (offline; 0: off; default: the model's stored setting, e.g. the shipped "
                            "model's, else 0)")
        p.add_argument("--phase", choices=PHASE_METHODS, default=None,
                       help="Fourier-head (vocos) models: the phase before any iterations: the network's own "
                            "(model) or computed from its amplitude (pghi: whole utterance; rtpghi: frame by frame); "
                            "offline; default: the model's stored setting, else model")


def check_output_dir(path, flag: str = "--output") -> Path:
    """Make sure ``path`` is (or can become) a folder we can write files in, before any model is loaded:
    created if missing, probed with a temporary file; ``ValueError`` (one line, exit 2) saying what is wrong."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out}: exists and is not a folder (it names the folder to write .wav files in)")
    parent = out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{flag} {out}: cannot create a folder under {parent}, which is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out, prefix=".vocoder-probe-"):
            pass
    except OSError as e:
        raise ValueError(f"{flag} {out}: cannot write there: {e.strerror or e}") from None
    return out


def check_output_file(path, flag: str) -> Path:
    """Make sure a file can be written at ``path`` (its folder created if missing, probed with a temporary file)
    before any model is loaded; ``ValueError`` (one line, exit 2) saying what is wrong."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{flag} {out}: is a folder; expected a file name")
    check_output_dir(out.parent if str(out.parent) else ".", f"{flag} {out}: its folder")
    return out


def load_model(args: argparse.Namespace):
    """The :class:`vocoder.Vocoder` the arguments of :func:`add_model_arguments` name."""
    from ..inference import Vocoder  # deferred: start-up time of the CLI

    import torch

    voc = Vocoder.from_pretrained(args.model, device=getattr(args, "device", "cpu"), config=args.config,
                                  random_init=getattr(args, "random_init", False),
                                  phase_iterations=getattr(args, "phase_iterations", None),
                                  phase=getattr(args, "phase", None), **hub_options(args))
    dtype = getattr(args, "dtype", "float32")
    return voc if dtype == "float32" else voc.to(getattr(torch, dtype))
